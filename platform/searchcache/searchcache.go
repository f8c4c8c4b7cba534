// Package searchcache is the port of the resolver's search cache: what
// searches and the YouTube Data API answered, kept for SEARCH_CACHE_TTL so
// that a repeated query costs no quota. It holds a normalized query's
// video id (projection.NormalizeQuery, under QueryKey), each video's
// metadata (Video) and each YouTube playlist's listing (Playlist).
//
// The adapters keep it beside the projections (platform/store/kvstore in
// JetStream KV, platform/store/dynamostore in DynamoDB's songs table; the
// opener is store.Cache) and pass the contract suite
// platform/testkit/projectiontest (RunCache). Its consumers declare the
// smaller interfaces they need (the resolver's has no Ping).
package searchcache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/projection"
)

// ErrNotFound is a cache's answer for an entry it does not hold (never
// written, expired, or under a key no entry can have). It is
// projection.ErrNotFound itself: the adapters keep the cache in the
// projections' store and answer a missing entry as they answer a missing
// record.
var ErrNotFound = projection.ErrNotFound

// Cache is the search cache port. A lookup of what the cache does not hold
// returns ErrNotFound; any other error is the store's failure, which says
// nothing about the entry. Implementations are safe for concurrent use.
type Cache interface {
	// QueryVideo returns the video id cached for q, a query as
	// projection.NormalizeQuery returns it.
	QueryVideo(ctx context.Context, q string) (string, error)
	// PutQueryVideo caches id (a valid video id) as the answer to q (not
	// empty).
	PutQueryVideo(ctx context.Context, q, id string) error
	// Video returns the cached metadata of video id.
	Video(ctx context.Context, id string) (Video, error)
	// PutVideo caches v under v.ID, stamping CachedAt when it is empty.
	PutVideo(ctx context.Context, v Video) error
	// Playlist returns the listing cached for YouTube playlist id.
	Playlist(ctx context.Context, id string) (Playlist, error)
	// PutPlaylist caches p under p.ID (a valid id: letters, digits, '-'
	// and '_'), stamping CachedAt when it is empty.
	PutPlaylist(ctx context.Context, p Playlist) error
	// Ping checks that the store holding the cache answers.
	Ping(ctx context.Context) error
}

// Video is what the resolver caches about one video: its metadata and what
// decides whether it can be had. Kept per video id with a TTL
// (SEARCH_CACHE_TTL), so a repeated request costs no Data API call.
type Video struct {
	ID           string `json:"id"`
	Title        string `json:"title,omitempty"`
	DurationMs   int64  `json:"duration_ms,omitempty"`
	URL          string `json:"url,omitempty"`
	ThumbnailURL string `json:"thumbnail_url,omitempty"`
	Channel      string `json:"channel,omitempty"`
	// Live is "none", "live" or "upcoming" (the Data API's
	// snippet.liveBroadcastContent).
	Live string `json:"live,omitempty"`
	// Privacy is "public", "unlisted" or "private"; Removed marks a video the
	// API no longer returns.
	Privacy string `json:"privacy,omitempty"`
	Removed bool   `json:"removed,omitempty"`
	// CachedAt is when the entry was written (RFC 3339).
	CachedAt string `json:"cached_at,omitempty"`
}

// Playlist is what the resolver caches about one YouTube playlist: its
// items as listed (playlistItems.list, or yt-dlp --flat-playlist without
// a key), so that the same playlist asked for again within
// SEARCH_CACHE_TTL costs no Data API call.
type Playlist struct {
	// ID is the playlist's list id.
	ID string `json:"id"`
	// Items are the listed videos, in order, at most Max of them.
	Items []events.Song `json:"items"`
	// Total is how many items the playlist has, as its lister said.
	Total int `json:"total"`
	// Max is the bound the listing was made with (PLAYLIST_MAX_ITEMS):
	// a listing cut at Max does not answer a larger bound.
	Max int `json:"max"`
	// CachedAt is when the entry was written (RFC 3339).
	CachedAt string `json:"cached_at,omitempty"`
}

// Answers reports whether the listing holds the first max items of the
// playlist: it was made with a bound at least max, or it was not cut by
// its own bound.
func (p Playlist) Answers(max int) bool {
	return max <= p.Max || len(p.Items) < p.Max
}

// QueryKey is the key a cache stores the answer of normalized query q
// under: its SHA-256 in hex, of the id alphabet whatever q holds.
func QueryKey(q string) string {
	sum := sha256.Sum256([]byte(q))
	return hex.EncodeToString(sum[:])
}
