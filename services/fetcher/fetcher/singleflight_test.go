package fetcher

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/blob"
	"github.com/butakero/butakero/platform/runtime/claims"
	"github.com/butakero/butakero/platform/runtime/metrics"
	"github.com/butakero/butakero/platform/store/objstore"
	"github.com/butakero/butakero/platform/testkit/audiofixture"
	"github.com/butakero/butakero/platform/testkit/natstest"
	"github.com/butakero/butakero/platform/testkit/wait"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// sfRig is a fetcher running with its claims store and metrics in view.
type sfRig struct {
	env     *natstest.Env
	blobs   *objstore.Store
	claims  *claims.Store
	metrics *metrics.Metrics
}

// startClaimed runs the fetcher with claims of the given TTL (0: default)
// until the test ends.
func startClaimed(t *testing.T, ttl time.Duration) *sfRig {
	t.Helper()
	env := natstest.Start(t)
	ctx := context.Background()
	blobs := natstest.Open(ctx, t, objstore.Open, env.JS, 1)
	cl, err := claims.Open(ctx, env.JS, 1, ttl)
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New(metrics.NewRegistry())
	wait.Go(t, 20*time.Second, func(ctx context.Context) error {
		return Run(ctx, Deps{NC: env.NC, JS: env.JS, Blobs: blobs, Claims: cl, Metrics: m, Config: testConfig(t), Log: quietLog()})
	})
	return &sfRig{env: env, blobs: blobs, claims: cl, metrics: m}
}

// request publishes video.resolved for a new operation on song id at u.
func (r *sfRig) request(t *testing.T, id, u string) string {
	t.Helper()
	opID := events.NewID()
	env, err := events.New(opID, id, events.VideoResolved{Song: events.Song{ID: id, URL: u, Source: "direct"}})
	if err != nil {
		t.Fatal(err)
	}
	r.env.Publish(t, env)
	return opID
}

// storeDCA stores body as song id's DCA, as the encoder would.
func (r *sfRig) storeDCA(t *testing.T, id string, body []byte) blob.Info {
	t.Helper()
	info, err := r.blobs.Put(context.Background(), blob.DCAKey(id), "audio/x-dca", nil, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// joins reads butakero_singleflight_joins_total{what="fetch"} off the
// registry the fetcher runs on (newFetcherMetrics returns the collector
// already registered there).
func (r *sfRig) joins() float64 {
	return testutil.ToFloat64(newFetcherMetrics(r.metrics).joins.WithLabelValues(JoinedWhat))
}

// TestOneDownloadPerSong checks the fetcher's side of "one song, one
// download" against a real JetStream, claims bucket and yt-dlp: what it
// publishes, and that the source is not requested when it must not be.
func TestOneDownloadPerSong(t *testing.T) {
	r := startClaimed(t, 0)
	dir := t.TempDir()
	audiofixture.Make(t, dir, audiofixture.M4A("tone.m4a", 2*time.Second))
	srv := audiofixture.Serve(t, dir)
	dca := []byte("DCA1 stands in for a stored DCA")

	tests := []struct {
		name string
		// before runs before the request (the song's state), after once it
		// is published (what the owner does meanwhile); either may be nil.
		before func(t *testing.T, id string)
		after  func(t *testing.T, id string)
		// the end: upload.done with Cached, or operation.failed with code.
		wantCached bool
		wantCode   events.Code
		wantMsg    string
	}{
		{
			name:       "a stored DCA is answered at once, nothing fetched",
			before:     func(t *testing.T, id string) { r.storeDCA(t, id, dca) },
			wantCached: true,
		},
		{
			name: "a stored DCA is answered even while a stale claim is held",
			before: func(t *testing.T, id string) {
				// The owner stored the DCA and died before releasing.
				mustAcquire(t, r.claims, id, "op-died")
				r.storeDCA(t, id, dca)
			},
			wantCached: true,
		},
		{
			name: "a request waiting on the owner gets the owner's DCA",
			before: func(t *testing.T, id string) {
				mustAcquire(t, r.claims, id, "op-owner")
			},
			after: func(t *testing.T, id string) {
				// The owner's encoder stores the DCA, then releases. Until
				// then the request cannot end: it waits for the claim.
				c := mustAcquire(t, r.claims, id, "op-owner")
				r.storeDCA(t, id, dca)
				if err := c.Release(context.Background()); err != nil {
					t.Fatal(err)
				}
			},
			wantCached: true,
		},
		{
			name: "the owner's permanent failure ends the waiting request the same way",
			before: func(t *testing.T, id string) {
				c := mustAcquire(t, r.claims, id, "op-owner")
				if err := c.Fail(context.Background(), string(events.CodeInvalidAudio), "the downloaded file is not audio ffmpeg can read"); err != nil {
					t.Fatal(err)
				}
			},
			wantCode: events.CodeInvalidAudio, wantMsg: "the downloaded file is not audio ffmpeg can read",
		},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			id := "url-sf-" + string(rune('a'+i))
			hits := srv.Hits("/tone.m4a")
			if tc.before != nil {
				tc.before(t, id)
			}
			opID := r.request(t, id, srv.URL("tone.m4a"))
			if tc.after != nil {
				tc.after(t, id)
			}
			if tc.wantCode != "" {
				_, ev := r.env.Next(ctx, t, events.KindOperationFailed, opID)
				got := ev.(events.OperationFailed)
				if got.Code != tc.wantCode || !strings.Contains(got.Message, tc.wantMsg) || got.Attempts != 1 {
					t.Fatalf("operation.failed %+v, want code %s with %q at attempt 1", got, tc.wantCode, tc.wantMsg)
				}
			} else {
				_, ev := r.env.Next(ctx, t, events.KindUploadDone, opID)
				got := ev.(events.UploadDone)
				want := events.UploadDone{
					Song: events.Song{ID: id, URL: srv.URL("tone.m4a"), Source: "direct"},
					Key:  blob.DCAKey(id), Location: r.blobs.Location(blob.DCAKey(id)), Size: int64(len(dca)), Cached: tc.wantCached,
				}
				if got != want {
					t.Fatalf("upload.done\n got %+v\nwant %+v", got, want)
				}
			}
			if n := srv.Hits("/tone.m4a") - hits; n != 0 {
				t.Errorf("the source was requested %d times; want none", n)
			}
		})
	}
	t.Logf("requests that joined another's download: %v", r.joins())
}

// TestTakeoverAfterOwnerDies holds a song's claim for an owner that never
// refreshes it (it died): the request waits, the claim expires (short
// TTL), and the request takes it over and downloads the song itself.
func TestTakeoverAfterOwnerDies(t *testing.T) {
	// Long enough for the request to find the claim still held, even on a
	// busy machine.
	r := startClaimed(t, 3*time.Second)
	dir := t.TempDir()
	audiofixture.Make(t, dir, audiofixture.M4A("tone.m4a", 2*time.Second))
	srv := audiofixture.Serve(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	const id = "url-orphan"
	mustAcquire(t, r.claims, id, "op-dead")
	opID := r.request(t, id, srv.URL("tone.m4a"))
	_, ev := r.env.Next(ctx, t, events.KindAudioDownloaded, opID)
	if got := ev.(events.AudioDownloaded); got.Song.ID != id || got.Size == 0 {
		t.Fatalf("audio.downloaded %+v", got)
	}
	if srv.Hits("/tone.m4a") == 0 {
		t.Error("the source was never requested")
	}
	if got := r.joins(); got != 1 {
		t.Errorf("joins = %v, want 1 (the request waited for the dead owner)", got)
	}
	// The request now holds the claim, for its encoder.
	c, held, err := r.claims.Acquire(ctx, id, "op-else")
	if err != nil || c != nil || held.Owner != opID {
		t.Errorf("claim after the takeover: held by %+v (err %v), want %s", held, err, opID)
	}
}

func mustAcquire(t *testing.T, s *claims.Store, id, owner string) *claims.Claim {
	t.Helper()
	c, held, err := s.Acquire(context.Background(), id, owner)
	if err != nil || c == nil {
		t.Fatalf("Acquire(%s, %s): held by %+v, %v", id, owner, held, err)
	}
	return c
}
