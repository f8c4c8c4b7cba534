package resolver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/media/songquery"
	"github.com/butakero/butakero/platform/runtime/config"
	"github.com/butakero/butakero/platform/runtime/metrics"
	"github.com/butakero/butakero/platform/searchcache"
	"github.com/butakero/butakero/platform/store/kvstore"
	"github.com/butakero/butakero/platform/testkit/natstest"
	"github.com/butakero/butakero/platform/testkit/wait"
	"github.com/butakero/butakero/services/resolver/youtubetest"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// scriptedSearcher stands in for YouTube, which cannot be reached from
// here, for the texts it knows; other texts go to the real yt-dlp.
type scriptedSearcher struct {
	mu      sync.Mutex
	results map[string][]error // per text, the errors to return first
	songs   map[string]searchcache.Video
	calls   map[string]int
}

func (s *scriptedSearcher) Search(ctx context.Context, text string) (searchcache.Video, error) {
	s.mu.Lock()
	song, ok := s.songs[text]
	if !ok {
		s.mu.Unlock()
		return (&YTDLPSearcher{}).Search(ctx, text)
	}
	n := s.calls[text]
	s.calls[text]++
	errs := s.results[text]
	s.mu.Unlock()
	if n < len(errs) {
		return searchcache.Video{}, errs[n]
	}
	return song, nil
}

func testConfig(t *testing.T) config.Config {
	t.Helper()
	cfg, err := config.Load(config.FromMap(map[string]string{
		"ALLOWED_MEDIA_HOSTS": "cdn.example.com,127.0.0.1:8000",
		"MAX_ATTEMPTS":        "3",
		"STAGE_TIMEOUT":       "30s",
		"SHUTDOWN_GRACE":      "5s",
	}))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// request publishes song.requested for query as a new operation.
func request(t *testing.T, env *natstest.Env, query string) events.Envelope {
	t.Helper()
	req, err := events.New(events.NewID(), "", events.SongRequested{Query: query})
	if err != nil {
		t.Fatal(err)
	}
	env.Publish(t, req)
	return req
}

// wantFailed waits for operation opID's operation.failed and checks that
// it is want.
func wantFailed(ctx context.Context, t *testing.T, env *natstest.Env, opID string, want events.OperationFailed) {
	t.Helper()
	_, ev := env.Next(ctx, t, events.KindOperationFailed, opID)
	if got := ev.(events.OperationFailed); got != want {
		t.Fatalf("failed\n got %+v\nwant %+v", got, want)
	}
}

// startResolver runs the resolver on env until the test ends, and checks
// that it then stops cleanly.
func startResolver(t *testing.T, env *natstest.Env, search Searcher) {
	t.Helper()
	wait.Go(t, 15*time.Second, func(ctx context.Context) error {
		return Run(ctx, Deps{JS: env.JS, Search: search, Config: testConfig(t),
			Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	})
}

func TestResolver(t *testing.T) {
	env := natstest.Start(t)
	foundVideo := searchcache.Video{ID: "abcdefghijk", URL: songquery.WatchURL("abcdefghijk"), Title: "A song", DurationMs: 201000, Live: "none"}
	found := events.Song{ID: "abcdefghijk", URL: songquery.WatchURL("abcdefghijk"), Source: "youtube", Title: "A song", DurationMs: 201000}
	search := &scriptedSearcher{
		songs: map[string]searchcache.Video{"a song": foundVideo, "flaky song": foundVideo},
		results: map[string][]error{
			"flaky song": {events.Fail(events.CodeDownloadFailed, "search failed")},
		},
		calls: map[string]int{},
	}
	startResolver(t, env, search)

	tests := []struct {
		name  string
		query string
		// want is the resolved song, or zero when the operation must fail.
		want         events.Song
		wantCode     events.Code
		wantMessage  string
		wantAttempts int
	}{
		{name: "youtube url", query: "https://youtu.be/" + rick + "?t=3",
			want: events.Song{ID: rick, URL: songquery.WatchURL(rick), Source: "youtube"}},
		{name: "bare id", query: rick,
			want: events.Song{ID: rick, URL: songquery.WatchURL(rick), Source: "youtube"}},
		{name: "allowed direct url", query: "http://127.0.0.1:8000/tone.m4a#x",
			want: events.Song{ID: directID("http://127.0.0.1:8000/tone.m4a"), URL: "http://127.0.0.1:8000/tone.m4a", Source: "direct"}},
		{name: "search", query: "a song", want: found},
		{name: "search retried after a transient failure", query: "flaky song", want: found},
		{name: "host not allowed", query: "https://evil.example/a.mp3",
			wantCode: events.CodeInvalidInput, wantMessage: "host evil.example is not allowed", wantAttempts: 1},
		{name: "other scheme", query: "ftp://cdn.example.com/a.mp3",
			wantCode: events.CodeInvalidInput, wantMessage: "only http and https URLs are accepted, not ftp", wantAttempts: 1},
		{name: "control characters", query: "a\x1bsong",
			wantCode: events.CodeInvalidInput, wantMessage: "the query holds control characters", wantAttempts: 1},
		// The real yt-dlp, without network: permanent, at the first attempt.
		{name: "search finds nothing", query: "never gonna give you up",
			wantCode: events.CodeNotFound, wantMessage: `no video found for "never gonna give you up"`, wantAttempts: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			req := request(t, env, tc.query)
			if tc.wantCode == "" {
				got, ev := env.Next(ctx, t, events.KindVideoResolved, req.OperationID)
				if song := ev.(events.VideoResolved).Song; song != tc.want {
					t.Fatalf("resolved\n got %+v\nwant %+v", song, tc.want)
				}
				if got.SongID != tc.want.ID {
					t.Errorf("envelope song_id %q; want %q", got.SongID, tc.want.ID)
				}
				if want := events.DeriveID(req.ID, events.TypeVideoResolved); got.ID != want {
					t.Errorf("event id %q; want the id derived from the request, %q", got.ID, want)
				}
				return
			}
			wantFailed(ctx, t, env, req.OperationID, events.OperationFailed{Stage: StageName, Code: tc.wantCode, Message: tc.wantMessage, Attempts: tc.wantAttempts})
		})
	}
}

// TestYTDLPSearcherNoNetwork runs the real yt-dlp: without network it
// answers "entries": [null] and exits 1, which must be a permanent
// not_found, not a success with an empty song.
func TestYTDLPSearcherNoNetwork(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	song, err := (&YTDLPSearcher{}).Search(ctx, "--version")
	var f *events.Failure
	if !errors.As(err, &f) || f.Code != events.CodeNotFound {
		t.Fatalf("Search = %+v, %v; want a not_found failure", song, err)
	}
	if f.Message != `no video found for "--version"` {
		t.Errorf("message %q", f.Message)
	}
}

// TestYTDLPSearcherCancelled checks that a cancelled search stops and is
// not reported as not_found.
func TestYTDLPSearcherCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := (&YTDLPSearcher{}).Search(ctx, "anything")
	if err == nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("Search with a cancelled ctx = %v; want context.Canceled", err)
	}
}

// TestRunWithDataAPI runs the stage as the all-in-one does with a key: the
// Data API (the fake) from Config, the KV cache, the counters registered.
func TestRunWithDataAPI(t *testing.T) {
	env := natstest.Start(t)
	srv := fakeYouTube(t)
	cfg := testConfig(t)
	cfg.YouTubeAPIKey, cfg.YouTubeAPIBaseURL = youtubetest.Key, srv.URL
	cache, err := kvstore.OpenCache(context.Background(), env.JS, 1, cfg.SearchCacheTTL)
	if err != nil {
		t.Fatal(err)
	}
	reg := metrics.New(metrics.NewRegistry())
	wait.Go(t, 15*time.Second, func(ctx context.Context) error {
		return Run(ctx, Deps{JS: env.JS, Cache: cache, Metrics: reg, Config: cfg, Log: quietLog()})
	})

	tests := []struct {
		name, query  string
		want         events.Song
		wantCode     events.Code
		wantMessage  string
		wantAPICalls int
	}{
		{name: "search", query: "never gonna give you up", want: rickSong(), wantAPICalls: 2},
		{name: "search again", query: "Never Gonna Give You Up", want: rickSong()},
		{name: "id", query: rick, want: rickSong()},
		{name: "private", query: "https://youtu.be/privateprvt", wantAPICalls: 1,
			wantCode: events.CodeUnavailable, wantMessage: "the video is private"},
		{name: "no result", query: "no such song", wantAPICalls: 1,
			wantCode: events.CodeNotFound, wantMessage: `no video found for "no such song"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tctx, tcancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer tcancel()
			calls := srv.TotalCalls()
			req := request(t, env, tc.query)
			if tc.wantCode == "" {
				_, ev := env.Next(tctx, t, events.KindVideoResolved, req.OperationID)
				if song := ev.(events.VideoResolved).Song; song != tc.want {
					t.Fatalf("resolved\n got %+v\nwant %+v", song, tc.want)
				}
			} else {
				wantFailed(tctx, t, env, req.OperationID, events.OperationFailed{Stage: StageName, Code: tc.wantCode, Message: tc.wantMessage, Attempts: 1})
			}
			if got := srv.TotalCalls() - calls; got != tc.wantAPICalls {
				t.Errorf("%d API calls; want %d", got, tc.wantAPICalls)
			}
		})
	}
	if n, err := testutil.GatherAndCount(reg.Registry(), "butakero_resolver_api_calls_total", "butakero_cache_hits_total", "butakero_cache_misses_total"); err != nil || n != 6 {
		t.Errorf("exported series %d, %v; want 6 (two methods; hits and misses of two caches)", n, err)
	}
}

// blockedSearcher holds every search until release is closed.
type blockedSearcher struct {
	started chan struct{}
	release chan struct{}
}

func (s *blockedSearcher) Search(ctx context.Context, text string) (searchcache.Video, error) {
	s.started <- struct{}{}
	select {
	case <-s.release:
		return searchcache.Video{ID: "abcdefghijk", URL: songquery.WatchURL("abcdefghijk"), Live: "none"}, nil
	case <-ctx.Done():
		return searchcache.Video{}, ctx.Err()
	}
}

// TestQuickBesideSearches: while searches hold every one of the
// resolver's slots, a query it can answer without a call (a YouTube id
// with no Data API key, a direct URL) is resolved at once, not queued
// behind them.
func TestQuickBesideSearches(t *testing.T) {
	env := natstest.Start(t)
	search := &blockedSearcher{started: make(chan struct{}, Concurrency+1), release: make(chan struct{})}
	defer close(search.release)
	startResolver(t, env, search)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	publish := func(query string) string { return request(t, env, query).OperationID }
	for i := range Concurrency {
		publish(fmt.Sprintf("slow search %d", i))
	}
	for range Concurrency {
		select {
		case <-search.started:
		case <-ctx.Done():
			t.Fatal("the searches never started")
		}
	}
	for _, q := range []string{rick, "http://127.0.0.1:8000/tone.m4a"} {
		op := publish(q)
		env.Next(ctx, t, events.KindVideoResolved, op)
	}
}
