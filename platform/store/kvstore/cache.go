package kvstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/searchcache"
	"github.com/nats-io/nats.go/jetstream"
)

// Cache bucket names.
const (
	SearchQueriesBucket = "search_queries"
	VideosBucket        = "videos"
	PlaylistsBucket     = "playlists"
)

// Cache is the resolver's search and metadata cache in three JetStream KV
// buckets whose TTL is the cache's: a normalized query's video id (under
// the hex SHA-256 of the query, since a query holds characters no KV key
// may), each video's searchcache.Video (under its id) and each YouTube
// playlist's searchcache.Playlist (under its list id). JetStream drops an
// entry once it is older than the TTL. It is safe for concurrent use.
type Cache struct {
	queries   jetstream.KeyValue
	videos    jetstream.KeyValue
	playlists jetstream.KeyValue
}

// OpenCache creates the cache's buckets if missing, or updates their TTL
// and replicas, and returns a Cache on them. ttl must be positive.
func OpenCache(ctx context.Context, js jetstream.JetStream, replicas int, ttl time.Duration) (*Cache, error) {
	if ttl <= 0 {
		return nil, fmt.Errorf("kvstore: cache TTL %s: want a positive duration", ttl)
	}
	queries, err := openBucket(ctx, js, jetstream.KeyValueConfig{Bucket: SearchQueriesBucket,
		Description: "Butakero search cache: normalized query to video id", Replicas: replicas, TTL: ttl})
	if err != nil {
		return nil, err
	}
	videos, err := openBucket(ctx, js, jetstream.KeyValueConfig{Bucket: VideosBucket,
		Description: "Butakero video metadata cache", Replicas: replicas, TTL: ttl})
	if err != nil {
		return nil, err
	}
	playlists, err := openBucket(ctx, js, jetstream.KeyValueConfig{Bucket: PlaylistsBucket,
		Description: "Butakero playlist listing cache", Replicas: replicas, TTL: ttl})
	if err != nil {
		return nil, err
	}
	return &Cache{queries: queries, videos: videos, playlists: playlists}, nil
}

// queryEntry is a cached search answer. The query is kept to tell a hash
// collision from a hit.
type queryEntry struct {
	Query   string `json:"query"`
	VideoID string `json:"video_id"`
}

// QueryVideo returns the video id cached for normalized query q, or
// searchcache.ErrNotFound.
func (c *Cache) QueryVideo(ctx context.Context, q string) (string, error) {
	var e queryEntry
	if err := get(ctx, c.queries, searchcache.QueryKey(q), &e); err != nil {
		return "", err
	}
	if e.Query != q || e.VideoID == "" {
		return "", searchcache.ErrNotFound
	}
	return e.VideoID, nil
}

// PutQueryVideo caches id as the answer to normalized query q.
func (c *Cache) PutQueryVideo(ctx context.Context, q, id string) error {
	if q == "" || events.ValidSongID(id) != nil {
		return errors.New("kvstore: a cached search needs a query and a valid video id")
	}
	return put(ctx, c.queries, searchcache.QueryKey(q), queryEntry{Query: q, VideoID: id})
}

// Video returns the cached metadata of video id, or searchcache.ErrNotFound.
func (c *Cache) Video(ctx context.Context, id string) (searchcache.Video, error) {
	var v searchcache.Video
	if err := get(ctx, c.videos, id, &v); err != nil {
		return searchcache.Video{}, err
	}
	return v, nil
}

// PutVideo caches v under v.ID, stamping CachedAt when it is empty.
func (c *Cache) PutVideo(ctx context.Context, v searchcache.Video) error {
	if v.CachedAt == "" {
		v.CachedAt = time.Now().UTC().Format(time.RFC3339)
	}
	return put(ctx, c.videos, v.ID, v)
}

// Playlist returns the cached listing of playlist id, or
// searchcache.ErrNotFound.
func (c *Cache) Playlist(ctx context.Context, id string) (searchcache.Playlist, error) {
	if events.ValidSongID(id) != nil {
		return searchcache.Playlist{}, searchcache.ErrNotFound
	}
	var p searchcache.Playlist
	if err := get(ctx, c.playlists, id, &p); err != nil {
		return searchcache.Playlist{}, err
	}
	if p.ID != id {
		return searchcache.Playlist{}, searchcache.ErrNotFound
	}
	return p, nil
}

// PutPlaylist caches p under p.ID, stamping CachedAt when it is empty.
func (c *Cache) PutPlaylist(ctx context.Context, p searchcache.Playlist) error {
	if events.ValidSongID(p.ID) != nil {
		return fmt.Errorf("kvstore: invalid playlist id %q", p.ID)
	}
	if p.CachedAt == "" {
		p.CachedAt = time.Now().UTC().Format(time.RFC3339)
	}
	return put(ctx, c.playlists, p.ID, p)
}

// Ping checks that the buckets answer.
func (c *Cache) Ping(ctx context.Context) error {
	for _, kv := range []jetstream.KeyValue{c.queries, c.videos, c.playlists} {
		if _, err := kv.Status(ctx); err != nil {
			return fmt.Errorf("kvstore: %s: %w", kv.Bucket(), err)
		}
	}
	return nil
}
