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
type Cache interface {
	QueryVideo(ctx context.Context, q string) (string, error)
	PutQueryVideo(ctx context.Context, q, id string) error
	Video(ctx context.Context, id string) (searchcache.Video, error)
	PutVideo(ctx context.Context, v searchcache.Video) error
	Playlist(ctx context.Context, id string) (searchcache.Playlist, error)
	PutPlaylist(ctx context.Context, p searchcache.Playlist) error
}

var _ Cache = searchcache.Cache(nil)
