package projectiontest

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/searchcache"
)

// RunCache runs the cache contract against caches made by newCache, which
// returns a fresh, empty cache (with a TTL far longer than the test) for
// each case.
func RunCache(t *testing.T, newCache func(t *testing.T) searchcache.Cache) {
	cases := []struct {
		name string
		run  func(t *testing.T, ctx context.Context, c searchcache.Cache)
	}{
		{"a query's video", func(t *testing.T, ctx context.Context, c searchcache.Cache) {
			if _, err := c.QueryVideo(ctx, "never asked"); !errors.Is(err, searchcache.ErrNotFound) {
				t.Errorf("QueryVideo of an unknown query: %v, want searchcache.ErrNotFound", err)
			}
			q := "canción de prueba «en vivo» / 2026"
			if err := c.PutQueryVideo(ctx, q, "dQw4w9WgXcQ"); err != nil {
				t.Fatal(err)
			}
			if id, err := c.QueryVideo(ctx, q); err != nil || id != "dQw4w9WgXcQ" {
				t.Errorf("QueryVideo = %q, %v", id, err)
			}
			if err := c.PutQueryVideo(ctx, q, "otherVideo1"); err != nil {
				t.Fatal(err)
			}
			if id, err := c.QueryVideo(ctx, q); err != nil || id != "otherVideo1" {
				t.Errorf("QueryVideo after a new answer = %q, %v", id, err)
			}
		}},
		{"refuses what it cannot key", func(t *testing.T, ctx context.Context, c searchcache.Cache) {
			if err := c.PutQueryVideo(ctx, "", "dQw4w9WgXcQ"); err == nil {
				t.Error("PutQueryVideo with an empty query succeeded")
			}
			if err := c.PutQueryVideo(ctx, "q", "not/an id"); err == nil {
				t.Error("PutQueryVideo with a bad id succeeded")
			}
			if _, err := c.Video(ctx, "a.b"); !errors.Is(err, searchcache.ErrNotFound) {
				t.Errorf("Video of a bad id: %v, want searchcache.ErrNotFound", err)
			}
		}},
		{"a video's metadata", func(t *testing.T, ctx context.Context, c searchcache.Cache) {
			if _, err := c.Video(ctx, "unknownVid1"); !errors.Is(err, searchcache.ErrNotFound) {
				t.Errorf("Video of an unknown id: %v, want searchcache.ErrNotFound", err)
			}
			v := searchcache.Video{ID: "dQw4w9WgXcQ", Title: "Título ☃", DurationMs: 213_000, URL: "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
				ThumbnailURL: "https://i.ytimg.com/vi/dQw4w9WgXcQ/hq.jpg", Channel: "Rick", Live: "none", Privacy: "public"}
			checkCached(t, v, func(v searchcache.Video) error { return c.PutVideo(ctx, v) },
				func() (searchcache.Video, error) { return c.Video(ctx, v.ID) },
				func(v *searchcache.Video) *string { return &v.CachedAt })
		}},
		{"a playlist's listing", func(t *testing.T, ctx context.Context, c searchcache.Cache) {
			const id = "PLcontract0000000000000000000000001"
			if _, err := c.Playlist(ctx, id); !errors.Is(err, searchcache.ErrNotFound) {
				t.Errorf("Playlist of an unknown id: %v, want searchcache.ErrNotFound", err)
			}
			p := searchcache.Playlist{ID: id, Total: 3, Max: 200, Items: []events.Song{
				{ID: "aaaaaaaaaa1", URL: "https://www.youtube.com/watch?v=aaaaaaaaaa1", Source: "youtube", Title: "Uno «1»", Channel: "Band",
					ThumbnailURL: "https://i.ytimg.com/vi/aaaaaaaaaa1/hq.jpg"},
				{ID: "bbbbbbbbbb2", URL: "https://www.youtube.com/watch?v=bbbbbbbbbb2", Source: "youtube", Title: "Dos", DurationMs: 180_000},
				{ID: "ccccccccc3c", URL: "https://www.youtube.com/watch?v=ccccccccc3c", Source: "youtube"},
			}}
			checkCached(t, p, func(p searchcache.Playlist) error { return c.PutPlaylist(ctx, p) },
				func() (searchcache.Playlist, error) { return c.Playlist(ctx, id) },
				func(p *searchcache.Playlist) *string { return &p.CachedAt })
			// A new listing replaces the old one.
			p.Items, p.Total = p.Items[:1], 1
			if err := c.PutPlaylist(ctx, p); err != nil {
				t.Fatal(err)
			}
			if got, err := c.Playlist(ctx, id); err != nil || len(got.Items) != 1 || got.Total != 1 {
				t.Errorf("Playlist after a new listing = %+v, %v; want its one item", got, err)
			}
			if err := c.PutPlaylist(ctx, searchcache.Playlist{ID: "not/a list"}); err == nil {
				t.Error("PutPlaylist with a bad id succeeded")
			}
			if _, err := c.Playlist(ctx, "a.b"); !errors.Is(err, searchcache.ErrNotFound) {
				t.Errorf("Playlist of a bad id: %v, want searchcache.ErrNotFound", err)
			}
		}},
		{"ping", func(t *testing.T, ctx context.Context, c searchcache.Cache) {
			if err := c.Ping(ctx); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			tc.run(t, ctx, newCache(t))
		})
	}
}

// checkCached puts v and checks that get reads back v with its CachedAt
// (the field cachedAt points to) stamped.
func checkCached[T any](t *testing.T, v T, put func(T) error, get func() (T, error), cachedAt func(*T) *string) {
	t.Helper()
	if err := put(v); err != nil {
		t.Fatal(err)
	}
	got, err := get()
	if err != nil {
		t.Fatal(err)
	}
	if *cachedAt(&got) == "" {
		t.Error("CachedAt not stamped")
	}
	*cachedAt(&got) = ""
	if !reflect.DeepEqual(got, v) {
		t.Errorf("read back %+v, want %+v", got, v)
	}
}
