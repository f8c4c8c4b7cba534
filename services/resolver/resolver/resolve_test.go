package resolver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/media/songquery"
	"github.com/butakero/butakero/platform/runtime/metrics"
	"github.com/butakero/butakero/platform/searchcache"
	"github.com/butakero/butakero/platform/store/kvstore"
	"github.com/butakero/butakero/platform/testkit/natstest"
	"github.com/butakero/butakero/services/resolver/youtubetest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// rick is a video id the fake Data API knows.
const rick = "dQw4w9WgXcQ"

// The refusals that more than one case expects, by their message.
const (
	liveRefusal    = "the video is a live stream: live streams cannot be fetched"
	removedRefusal = "the video does not exist or was removed from YouTube"
	tooLongRefusal = "the song lasts 10h0m0s, longer than the 3h0m0s limit"
)

// testAllowed is an ALLOWED_MEDIA_HOSTS list in canonical form (as
// mediahosts.Parse returns it).
var testAllowed = []string{"cdn.example.com", "127.0.0.1:*", "[::1]:9000"}

// directID is the song id of direct URL u (normalized): "url-" and 20
// hex digits of its SHA-256.
func directID(u string) string {
	sum := sha256.Sum256([]byte(u))
	return "url-" + hex.EncodeToString(sum[:])[:20]
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// fakeYouTube is the fake Data API with the videos the tests ask for.
func fakeYouTube(t *testing.T) *youtubetest.Server {
	srv := youtubetest.Start(t)
	for _, v := range []youtubetest.Video{
		{ID: rick, Title: "Rick Astley - Never Gonna Give You Up (Official Music Video)", Channel: "Rick Astley", Duration: "PT3M33S"},
		{ID: "liveliveliv", Title: "lofi hip hop radio", Channel: "Lofi Girl", Duration: "P0D", Live: "live"},
		{ID: "upcomingupc", Title: "Premiere tonight", Channel: "Band", Duration: "P0D", Live: "upcoming"},
		{ID: "privateprvt", Title: "Private", Channel: "Someone", Duration: "PT2M", Privacy: "private"},
		{ID: "toolongtool", Title: "10 hours of rain", Channel: "Rain", Duration: "PT10H"},
		{ID: "unlistedunl", Title: "Unlisted", Channel: "Someone", Duration: "PT1M", Privacy: "unlisted"},
	} {
		srv.AddVideo(v)
	}
	srv.AddSearch("never gonna give you up", rick)
	srv.AddSearch("lofi radio", "liveliveliv")
	srv.AddSearch("rain 10 hours", "toolongtool")
	srv.AddSearch("a deleted video", "removedremo")
	return srv
}

// fakeAPI is fakeYouTube, a client of it with the key it accepts, and a
// context for the test's calls that ends after timeout or with the test.
func fakeAPI(t *testing.T, timeout time.Duration) (*youtubetest.Server, *YouTubeAPI, context.Context) {
	t.Helper()
	srv := fakeYouTube(t)
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	t.Cleanup(cancel)
	api, err := NewYouTubeAPI(ctx, youtubetest.Key, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	return srv, api, ctx
}

func rickSong() events.Song {
	return events.Song{ID: rick, URL: songquery.WatchURL(rick), Source: "youtube",
		Title: "Rick Astley - Never Gonna Give You Up (Official Music Video)", Channel: "Rick Astley", DurationMs: 213000,
		ThumbnailURL: "https://i.ytimg.com/vi/" + rick + "/hqdefault.jpg"}
}

// newTestResolver is a Resolver on the fake API and a real KV cache, with
// a yt-dlp searcher that must not be used unless the test says so.
func newTestResolver(t *testing.T, api VideoAPI, search Searcher) (*Resolver, *prometheus.Registry) {
	t.Helper()
	env, ctx := natstest.StartWithin(t, 30*time.Second)
	cache, err := kvstore.OpenCache(ctx, env.JS, 1, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	reg := metrics.NewRegistry()
	m := metrics.New(reg)
	if search == nil {
		search = &scriptedSearcher{songs: map[string]searchcache.Video{}, calls: map[string]int{}}
	}
	return &Resolver{API: api, Search: search, Cache: cache, Allowed: testAllowed, MaxDuration: 3 * time.Hour, metrics: newResolverMetrics(m)}, reg
}

func TestResolve(t *testing.T) {
	srv, api, ctx := fakeAPI(t, 60*time.Second)
	r, _ := newTestResolver(t, api, nil)

	tests := []struct {
		name  string
		query string
		want  events.Song
		// For a refusal: the code and the message.
		wantCode events.Code
		wantMsg  string
		// API calls this resolution may make (search.list, videos.list).
		searches, lookups int
	}{
		{name: "watch URL", query: "https://www.youtube.com/watch?v=" + rick, want: rickSong(), lookups: 1},
		{name: "watch URL with t, list, si", query: "https://www.youtube.com/watch?v=" + rick + "&t=42s&list=PLx&si=abc", want: rickSong()},
		{name: "youtu.be", query: "https://youtu.be/" + rick + "?si=xyz", want: rickSong()},
		{name: "m.", query: "https://m.youtube.com/watch?v=" + rick, want: rickSong()},
		{name: "music.", query: "https://music.youtube.com/watch?v=" + rick + "&feature=share", want: rickSong()},
		{name: "shorts", query: "https://www.youtube.com/shorts/" + rick, want: rickSong()},
		{name: "embed", query: "https://www.youtube.com/embed/" + rick + "?start=3", want: rickSong()},
		{name: "live URL form", query: "https://www.youtube.com/live/" + rick + "?feature=share", want: rickSong()},
		{name: "no scheme", query: "youtube.com/watch?v=" + rick, want: rickSong()},
		{name: "bare id", query: rick, want: rickSong()},
		{name: "text", query: "never gonna give you up", want: rickSong(), searches: 1},
		{name: "text with other case and spacing (cached)", query: "  Never   Gonna Give You UP ", want: rickSong()},
		{name: "unlisted", query: "https://youtu.be/unlistedunl", lookups: 1,
			want: events.Song{ID: "unlistedunl", URL: songquery.WatchURL("unlistedunl"), Source: "youtube", Title: "Unlisted",
				Channel: "Someone", DurationMs: 60000, ThumbnailURL: "https://i.ytimg.com/vi/unlistedunl/hqdefault.jpg"}},
		{name: "direct URL makes no call", query: "http://127.0.0.1:8000/tone.m4a",
			want: events.Song{ID: directID("http://127.0.0.1:8000/tone.m4a"), URL: "http://127.0.0.1:8000/tone.m4a", Source: "direct"}},

		{name: "live", query: "https://www.youtube.com/watch?v=liveliveliv", lookups: 1, wantCode: events.CodeUnavailable, wantMsg: liveRefusal},
		{name: "live again (not cached)", query: "liveliveliv", lookups: 1, wantCode: events.CodeUnavailable, wantMsg: liveRefusal},
		{name: "live found by search", query: "lofi radio", searches: 1, lookups: 1, wantCode: events.CodeUnavailable, wantMsg: liveRefusal},
		{name: "upcoming", query: "https://youtu.be/upcomingupc", lookups: 1, wantCode: events.CodeUnavailable, wantMsg: "the video is a live stream or premiere that has not started yet"},
		{name: "private", query: "https://youtu.be/privateprvt", lookups: 1, wantCode: events.CodeUnavailable, wantMsg: "the video is private"},
		{name: "removed", query: "https://youtu.be/removedremo", lookups: 1, wantCode: events.CodeNotFound, wantMsg: removedRefusal},
		{name: "removed, found by search", query: "a deleted video", searches: 1, lookups: 1, wantCode: events.CodeNotFound, wantMsg: removedRefusal},
		{name: "too long", query: "https://youtu.be/toolongtool", lookups: 1, wantCode: events.CodeUnavailable, wantMsg: tooLongRefusal},
		{name: "too long, cached", query: "rain 10 hours", searches: 1, wantCode: events.CodeUnavailable, wantMsg: tooLongRefusal},
		{name: "no search result", query: "zzzz no such song zzzz", searches: 1, wantCode: events.CodeNotFound, wantMsg: `no video found for "zzzz no such song zzzz"`},
		{name: "host not allowed", query: "https://youtube.com.evil.example/watch?v=" + rick, wantCode: events.CodeInvalidInput, wantMsg: "host youtube.com.evil.example is not allowed"},
		{name: "userinfo", query: "https://youtube.com@evil.example/watch?v=" + rick, wantCode: events.CodeInvalidInput, wantMsg: "URLs with a user name or password are not accepted"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			searches, lookups := srv.Calls(youtubetest.Search), srv.Calls(youtubetest.Videos)
			song, err := r.Resolve(ctx, tc.query, quietLog())
			if tc.wantCode == "" {
				if err != nil || song != tc.want {
					t.Fatalf("Resolve(%q) = %+v, %v\nwant %+v", tc.query, song, err, tc.want)
				}
			} else {
				var f *events.Failure
				if !errors.As(err, &f) || f.Code != tc.wantCode || f.Message != tc.wantMsg {
					t.Fatalf("Resolve(%q) = %+v, %v; want %s %q", tc.query, song, err, tc.wantCode, tc.wantMsg)
				}
				if !f.Code.Permanent() {
					t.Fatalf("code %s is not permanent", f.Code)
				}
			}
			gotSearches := srv.Calls(youtubetest.Search) - searches
			gotLookups := srv.Calls(youtubetest.Videos) - lookups
			if gotSearches != tc.searches || gotLookups != tc.lookups {
				t.Errorf("API calls: %d search.list, %d videos.list; want %d and %d",
					gotSearches, gotLookups, tc.searches, tc.lookups)
			}
		})
	}
}

// TestResolveCache counts the fake API's calls: a repeated query, in any
// spelling that normalizes alike, costs nothing.
func TestResolveCache(t *testing.T) {
	srv, api, ctx := fakeAPI(t, 60*time.Second)
	r, reg := newTestResolver(t, api, nil)
	first, err := r.Resolve(ctx, "never gonna give you up", quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if got := srv.TotalCalls(); got != 2 {
		t.Fatalf("first search made %d API calls; want 2 (search.list, videos.list)", got)
	}
	for _, q := range []string{"never gonna give you up", "NEVER GONNA GIVE YOU UP", " never\u00a0gonna  give you up ", "ｎｅｖｅｒ ｇｏｎｎａ ｇｉｖｅ ｙｏｕ ｕｐ", rick, "https://youtu.be/" + rick} {
		song, err := r.Resolve(ctx, q, quietLog())
		if err != nil || song != first {
			t.Fatalf("Resolve(%q) = %+v, %v; want %+v", q, song, err, first)
		}
	}
	if got := srv.TotalCalls(); got != 2 {
		t.Fatalf("repeated queries made %d API calls in all; want still 2", got)
	}
	want := `
# HELP butakero_resolver_api_calls_total YouTube Data API calls made by the resolver, by method.
# TYPE butakero_resolver_api_calls_total counter
butakero_resolver_api_calls_total{method="search.list"} 1
butakero_resolver_api_calls_total{method="videos.list"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "butakero_resolver_api_calls_total"); err != nil {
		t.Fatal(err)
	}
	// 1 query miss, 1 video miss, then 4 query hits and 6 video hits.
	count := func(v *prometheus.CounterVec, cache string) float64 {
		return testutil.ToFloat64(v.WithLabelValues(cache))
	}
	if hit, miss := count(r.metrics.cacheHits, CacheQueries), count(r.metrics.cacheMisses, CacheQueries); hit != 4 || miss != 1 {
		t.Errorf("query cache hits %v, misses %v; want 4 and 1", hit, miss)
	}
	if hit, miss := count(r.metrics.cacheHits, CacheVideos), count(r.metrics.cacheMisses, CacheVideos); hit != 6 || miss != 1 {
		t.Errorf("video cache hits %v, misses %v; want 6 and 1", hit, miss)
	}
}

// TestResolveFallback: without a key, or when the API fails, free text
// goes to yt-dlp (scripted here: YouTube cannot be reached), and each
// fallback is counted with its reason.
func TestResolveFallback(t *testing.T) {
	srv, api, ctx := fakeAPI(t, 60*time.Second)
	viaYTDLP := searchcache.Video{ID: "ytdlpfound1", URL: songquery.WatchURL("ytdlpfound1"), Title: "Found by yt-dlp", DurationMs: 1000, Live: "none"}
	liveYTDLP := searchcache.Video{ID: "ytdlplive01", URL: songquery.WatchURL("ytdlplive01"), Title: "Live", Live: "live"}
	longYTDLP := searchcache.Video{ID: "ytdlplong01", URL: songquery.WatchURL("ytdlplong01"), Title: "Long", DurationMs: (4 * time.Hour).Milliseconds(), Live: "none"}

	tests := []struct {
		name   string
		noKey  bool
		fail   string // the reason the API fails search.list with
		query  string
		want   events.Song
		reason string
		// a refusal of what yt-dlp found
		wantCode events.Code
		wantMsg  string
		// uncached: what yt-dlp found is not cached (nothing, or live)
		uncached bool
	}{
		{name: "no key", noKey: true, query: "q1", reason: ReasonNoKey},
		{name: "quota exceeded", fail: "quotaExceeded", query: "q2", reason: ReasonQuotaExceeded},
		{name: "key invalid", fail: "keyInvalid", query: "q3", reason: ReasonKeyInvalid},
		{name: "server error", fail: "backendError", query: "q4", reason: ReasonServerError},
		{name: "service unavailable", fail: "serviceUnavailable", query: "q5", reason: ReasonServerError},
		{name: "live found by yt-dlp", noKey: true, query: "live", reason: ReasonNoKey, uncached: true,
			wantCode: events.CodeUnavailable, wantMsg: liveRefusal},
		{name: "too long found by yt-dlp", fail: "quotaExceeded", query: "long", reason: ReasonQuotaExceeded,
			wantCode: events.CodeUnavailable, wantMsg: "the song lasts 4h0m0s, longer than the 3h0m0s limit"},
		{name: "nothing found by yt-dlp", noKey: true, query: "nothing", reason: ReasonNoKey, uncached: true,
			wantCode: events.CodeNotFound, wantMsg: `no video found for "nothing"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			search := &scriptedSearcher{
				songs: map[string]searchcache.Video{"q1": viaYTDLP, "q2": viaYTDLP, "q3": viaYTDLP, "q4": viaYTDLP, "q5": viaYTDLP,
					"live": liveYTDLP, "long": longYTDLP, "nothing": {}},
				results: map[string][]error{"nothing": {events.Fail(events.CodeNotFound, `no video found for "nothing"`)}},
				calls:   map[string]int{},
			}
			var a VideoAPI = api
			if tc.noKey {
				a = nil
			}
			r, _ := newTestResolver(t, a, search)
			if tc.fail != "" {
				srv.FailNext(youtubetest.Search, tc.fail)
			}
			before := srv.TotalCalls()
			song, err := r.Resolve(ctx, tc.query, quietLog())
			if tc.wantCode != "" {
				var f *events.Failure
				if !errors.As(err, &f) || f.Code != tc.wantCode || f.Message != tc.wantMsg {
					t.Fatalf("Resolve = %+v, %v; want %s %q", song, err, tc.wantCode, tc.wantMsg)
				}
			} else {
				want := events.Song{ID: viaYTDLP.ID, URL: viaYTDLP.URL, Source: "youtube", Title: viaYTDLP.Title, DurationMs: 1000}
				if err != nil || song != want {
					t.Fatalf("Resolve = %+v, %v; want %+v", song, err, want)
				}
			}
			if search.calls[tc.query] != 1 {
				t.Fatalf("yt-dlp searched %d times; want 1", search.calls[tc.query])
			}
			if got := testutil.ToFloat64(r.metrics.fallbacks.WithLabelValues(tc.reason)); got != 1 {
				t.Fatalf("butakero_resolver_fallbacks_total{reason=%q} = %v; want 1", tc.reason, got)
			}
			if tc.noKey && srv.TotalCalls() != before {
				t.Fatal("the Data API was called without a key")
			}
			if tc.uncached {
				return
			}
			// What yt-dlp found is cached: asking again searches no more.
			calls := srv.TotalCalls()
			_, err2 := r.Resolve(ctx, tc.query, quietLog())
			if (err == nil) != (err2 == nil) || search.calls[tc.query] != 1 || srv.TotalCalls() != calls {
				t.Fatalf("asking again: %v; yt-dlp searched %d times, %d more API calls; want the cached answer",
					err2, search.calls[tc.query], srv.TotalCalls()-calls)
			}
		})
	}

	t.Run("video lookup failure lets the id through", func(t *testing.T) {
		r, reg := newTestResolver(t, api, nil)
		srv.FailNext(youtubetest.Videos, "quotaExceeded")
		song, err := r.Resolve(ctx, "https://youtu.be/"+rick, quietLog())
		want := events.Song{ID: rick, URL: songquery.WatchURL(rick), Source: "youtube"}
		if err != nil || song != want {
			t.Fatalf("Resolve = %+v, %v; want %+v", song, err, want)
		}
		if n, err := testutil.GatherAndCount(reg, "butakero_resolver_fallbacks_total"); err != nil || n != 1 {
			t.Fatalf("fallback series %d, %v; want 1", n, err)
		}
	})
}

// brokenCache fails every call, as a store that is down.
type brokenCache struct{}

func (*brokenCache) QueryVideo(context.Context, string) (string, error) {
	return "", errors.New("store down")
}
func (*brokenCache) PutQueryVideo(context.Context, string, string) error {
	return errors.New("store down")
}
func (*brokenCache) Video(context.Context, string) (searchcache.Video, error) {
	return searchcache.Video{}, errors.New("store down")
}
func (*brokenCache) PutVideo(context.Context, searchcache.Video) error {
	return errors.New("store down")
}
func (*brokenCache) Playlist(context.Context, string) (searchcache.Playlist, error) {
	return searchcache.Playlist{}, errors.New("store down")
}
func (*brokenCache) PutPlaylist(context.Context, searchcache.Playlist) error {
	return errors.New("store down")
}

// TestResolveCacheDown: a failing cache costs API calls, never the song.
func TestResolveCacheDown(t *testing.T) {
	srv, api, ctx := fakeAPI(t, 30*time.Second)
	r := &Resolver{API: api, Cache: &brokenCache{}, MaxDuration: time.Hour}
	for range 2 {
		song, err := r.Resolve(ctx, "never gonna give you up", quietLog())
		if err != nil || song != rickSong() {
			t.Fatalf("Resolve = %+v, %v", song, err)
		}
	}
	if got := srv.TotalCalls(); got != 4 {
		t.Fatalf("%d API calls; want 4 without a cache", got)
	}
}
