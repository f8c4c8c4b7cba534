package kvstore

import (
	"errors"
	"testing"
	"time"

	"github.com/butakero/butakero/platform/projection"
	"github.com/butakero/butakero/platform/searchcache"
	"github.com/butakero/butakero/platform/testkit/natstest"
)

func TestCache(t *testing.T) {
	env, ctx := natstest.StartWithin(t, 30*time.Second)
	c, err := OpenCache(ctx, env.JS, 1, 7*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}

	t.Run("queries", func(t *testing.T) {
		tests := []struct {
			name, query, id string
		}{
			{name: "plain", query: "never gonna give you up", id: "dQw4w9WgXcQ"},
			{name: "unicode and punctuation", query: "sigur rós – hoppípolla *.>", id: "abcdefghijk"},
			{name: "long", query: string(make([]byte, 600)), id: "a-b_c-d_e-f"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				if _, err := c.QueryVideo(ctx, tc.query); !errors.Is(err, projection.ErrNotFound) {
					t.Fatalf("QueryVideo before put = %v; want ErrNotFound", err)
				}
				if err := c.PutQueryVideo(ctx, tc.query, tc.id); err != nil {
					t.Fatal(err)
				}
				got, err := c.QueryVideo(ctx, tc.query)
				if err != nil || got != tc.id {
					t.Fatalf("QueryVideo = %q, %v; want %q", got, err, tc.id)
				}
			})
		}
	})

	t.Run("a hash collision is a miss", func(t *testing.T) {
		// Another query stored under this query's key.
		if err := put(ctx, c.queries, searchcache.QueryKey("one"), queryEntry{Query: "other", VideoID: "dQw4w9WgXcQ"}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.QueryVideo(ctx, "one"); !errors.Is(err, projection.ErrNotFound) {
			t.Fatalf("QueryVideo = %v; want ErrNotFound", err)
		}
	})

	t.Run("bad puts", func(t *testing.T) {
		for _, tc := range []struct{ q, id string }{{"", "dQw4w9WgXcQ"}, {"q", ""}, {"q", "a.b"}, {"q", "a b"}} {
			if err := c.PutQueryVideo(ctx, tc.q, tc.id); err == nil {
				t.Errorf("PutQueryVideo(%q, %q) succeeded", tc.q, tc.id)
			}
		}
		if err := c.PutVideo(ctx, searchcache.Video{ID: "a.b"}); err == nil {
			t.Error("PutVideo with an invalid id succeeded")
		}
	})

	t.Run("videos", func(t *testing.T) {
		if _, err := c.Video(ctx, "dQw4w9WgXcQ"); !errors.Is(err, projection.ErrNotFound) {
			t.Fatalf("Video before put = %v; want ErrNotFound", err)
		}
		if _, err := c.Video(ctx, "not a key"); !errors.Is(err, projection.ErrNotFound) {
			t.Fatalf("Video of an invalid id = %v; want ErrNotFound", err)
		}
		v := searchcache.Video{ID: "dQw4w9WgXcQ", Title: "Never Gonna Give You Up", DurationMs: 213000,
			URL: "https://www.youtube.com/watch?v=dQw4w9WgXcQ", ThumbnailURL: "https://i.ytimg.com/vi/dQw4w9WgXcQ/maxresdefault.jpg",
			Channel: "Rick Astley", Live: "none", Privacy: "public"}
		if err := c.PutVideo(ctx, v); err != nil {
			t.Fatal(err)
		}
		got, err := c.Video(ctx, v.ID)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := time.Parse(time.RFC3339, got.CachedAt); err != nil {
			t.Errorf("CachedAt %q is not RFC 3339", got.CachedAt)
		}
		got.CachedAt = ""
		if got != v {
			t.Fatalf("Video\n got %+v\nwant %+v", got, v)
		}
	})

	t.Run("buckets expire entries after the TTL", func(t *testing.T) {
		// Reopening with another TTL updates the buckets.
		c2, err := OpenCache(ctx, env.JS, 1, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range []string{SearchQueriesBucket, VideosBucket, PlaylistsBucket} {
			kv, err := env.JS.KeyValue(ctx, b)
			if err != nil {
				t.Fatal(err)
			}
			st, err := kv.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st.TTL() != time.Hour {
				t.Errorf("bucket %s TTL %s; want 1h", b, st.TTL())
			}
		}
		// What was cached is still there.
		if got, err := c2.QueryVideo(ctx, "never gonna give you up"); err != nil || got != "dQw4w9WgXcQ" {
			t.Errorf("after reopening: %q, %v", got, err)
		}
	})

	t.Run("TTL must be positive", func(t *testing.T) {
		if _, err := OpenCache(ctx, env.JS, 1, 0); err == nil {
			t.Fatal("OpenCache with TTL 0 succeeded")
		}
	})
}
