package resolver

import (
	"context"

	"github.com/butakero/butakero/platform/projection"
	"github.com/butakero/butakero/platform/store/kvstore"
)

// Cache keeps what searches and the Data API answered, so that a repeated
// query costs no quota: a normalized query's video id, each video's
// metadata, and each YouTube playlist's listing. Entries expire after SEARCH_CACHE_TTL. Implementations must be
// safe for concurrent use; kvstore.Cache is the JetStream KV one.
//
// A lookup of what the cache does not hold returns projection.ErrNotFound.
// Any other error is the store's failure: the resolver logs it and goes on
// without the cache.
type Cache interface {
	// QueryVideo returns the video id cached for q, a query as
	// projection.NormalizeQuery returns it.
	QueryVideo(ctx context.Context, q string) (string, error)
	// PutQueryVideo caches id as the answer to q.
	PutQueryVideo(ctx context.Context, q, id string) error
	// Video returns the cached metadata of video id.
	Video(ctx context.Context, id string) (projection.Video, error)
	// PutVideo caches v under v.ID.
	PutVideo(ctx context.Context, v projection.Video) error
	// Playlist returns the cached listing of YouTube playlist id.
	Playlist(ctx context.Context, id string) (projection.Playlist, error)
	// PutPlaylist caches p under p.ID.
	PutPlaylist(ctx context.Context, p projection.Playlist) error
}

var _ Cache = (*kvstore.Cache)(nil)
