package resolver

import (
	"context"

	"github.com/butakero/butakero/platform/searchcache"
)

// Cache is what the resolver uses of the search cache port
// (searchcache.Cache, whose methods say what each entry is): its reads and
// writes, not its Ping, so that the resolver's role is granted no more
// than these (deploy/ecs derives the grants from this interface).
//
// A lookup that fails for another reason than searchcache.ErrNotFound is
// the store's failure: the resolver logs it and goes on without the cache.
//
// Implementations are safe for concurrent use: the resolver's searches run
// at once.
type Cache interface {
	// QueryVideo returns the video id cached for q (normalized).
	QueryVideo(ctx context.Context, q string) (string, error)
	// PutQueryVideo caches id as the answer to q.
	PutQueryVideo(ctx context.Context, q, id string) error
	// Video returns the cached metadata of video id.
	Video(ctx context.Context, id string) (searchcache.Video, error)
	// PutVideo caches v under v.ID.
	PutVideo(ctx context.Context, v searchcache.Video) error
	// Playlist returns the listing cached for playlist id.
	Playlist(ctx context.Context, id string) (searchcache.Playlist, error)
	// PutPlaylist caches p under p.ID.
	PutPlaylist(ctx context.Context, p searchcache.Playlist) error
}

var _ Cache = searchcache.Cache(nil)
