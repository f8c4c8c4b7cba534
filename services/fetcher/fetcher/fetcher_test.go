package fetcher

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/blob"
	"github.com/butakero/butakero/platform/media/sourcestream"
	"github.com/butakero/butakero/platform/runtime/config"
	"github.com/butakero/butakero/platform/store/objstore"
	"github.com/butakero/butakero/platform/testkit/audiofixture"
	"github.com/butakero/butakero/platform/testkit/natstest"
	"github.com/butakero/butakero/platform/testkit/wait"
	"github.com/nats-io/nats.go"
)

func testConfig(t *testing.T) config.Config {
	t.Helper()
	cfg, err := config.Load(config.FromMap(map[string]string{
		"ALLOWED_MEDIA_HOSTS": "127.0.0.1:*",
		"MAX_ATTEMPTS":        "3",
		"STAGE_TIMEOUT":       "60s",
		"MAX_DURATION":        "1h",
		"SHUTDOWN_GRACE":      "5s",
	}))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// startStore starts a JetStream server for t and opens the Object Store
// on it.
func startStore(t *testing.T) (*natstest.Env, *objstore.Store) {
	t.Helper()
	env := natstest.Start(t)
	blobs := natstest.Open(context.Background(), t, objstore.Open, env.JS, 1)
	return env, blobs
}

// startFetcher runs the fetcher on env until the test ends, and checks that
// it then stops cleanly.
func startFetcher(t *testing.T, env *natstest.Env, blobs Blobs) {
	t.Helper()
	wait.Go(t, 20*time.Second, func(ctx context.Context) error {
		return Run(ctx, Deps{NC: env.NC, JS: env.JS, Blobs: blobs, Config: testConfig(t), Log: quietLog()})
	})
}

func TestFetch(t *testing.T) {
	env, blobs := startStore(t)
	dir := t.TempDir()
	tone := audiofixture.Make(t, dir, audiofixture.M4A("tone.m4a", 3*time.Second))
	clip := audiofixture.Make(t, dir, audiofixture.MP4Video("clip.mp4", 3*time.Second))
	long := audiofixture.Make(t, dir, audiofixture.WAV("long.wav", 90*time.Second))
	audiofixture.Write(t, dir, "empty.m4a", nil)
	srv := audiofixture.Serve(t, dir)
	// A page that embeds a file on the same, allowed, server: yt-dlp's
	// generic extractor fetched it; a direct fetch refuses the page.
	audiofixture.Write(t, dir, "page.html", fmt.Appendf(nil, `<!DOCTYPE html><html><head><title>A Tone</title></head><body>
<audio src="%s"></audio></body></html>`, srv.URL("tone.m4a")))
	startFetcher(t, env, blobs)

	tests := []struct {
		name string
		file string // served file the song's URL names
		// want, for a success: the stored bytes' source, ext and song.
		source   string
		ext      string
		wantSong func(url string) events.Song
		// for a failure: code, a fragment of the message and attempts.
		wantCode     events.Code
		wantMessage  string
		wantAttempts int
		// progress: at least one progress message must be seen.
		progress bool
		// songSource is the song's Source; "" means "direct".
		songSource string
		// wantHits, when set, is how many requests each file named gets.
		wantHits map[string]int
	}{
		{name: "m4a", file: "tone.m4a", source: tone, ext: "m4a",
			wantSong: func(u string) events.Song {
				return events.Song{ID: "url-tone", URL: u, Source: "direct", Title: "tone"}
			}},
		{name: "mp4 with a video track", file: "clip.mp4", source: clip, ext: "mp4",
			wantSong: func(u string) events.Song {
				return events.Song{ID: "url-tone", URL: u, Source: "direct", Title: "clip"}
			}},
		{name: "longer file reports progress", file: "long.wav", source: long, ext: "wav", progress: true,
			wantSong: func(u string) events.Song {
				return events.Song{ID: "url-tone", URL: u, Source: "direct", Title: "long"}
			}},
		{name: "empty file", file: "empty.m4a",
			wantCode: events.CodeEmptyAudio, wantMessage: "the source gave no audio: the file is empty", wantAttempts: 1},
		{name: "missing file", file: "missing.m4a",
			wantCode: events.CodeNotFound, wantMessage: "no audio was found at this URL: the server answered HTTP 404 Not Found", wantAttempts: 1},
		{name: "web page: refused, what it embeds not fetched", file: "page.html",
			wantCode: events.CodeInvalidInput, wantMessage: "the URL serves a web page (text/html), not a media file", wantAttempts: 1,
			wantHits: map[string]int{"page.html": 1, "tone.m4a": 0}},
		// A YouTube song runs yt-dlp's YouTube extractor alone: a page on
		// another host is not followed, and not even requested.
		{name: "youtube song on another host: generic extractor off", file: "page.html", songSource: SourceYouTube,
			wantCode: events.CodeInvalidInput, wantMessage: "the URL is not one of this song's source", wantAttempts: 1,
			wantHits: map[string]int{"page.html": 0, "tone.m4a": 0}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			opID := events.NewID()
			// A channel subscription receives in the connection's read
			// loop, so after a Flush every message sent is in the channel.
			progress := make(chan *nats.Msg, 4096)
			sub, err := env.NC.ChanSubscribe(events.ProgressSubject(opID), progress)
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Unsubscribe()

			u := srv.URL(tc.file)
			source := tc.songSource
			if source == "" {
				source = "direct"
			}
			// One song id per case: the claim of a song downloaded and
			// not yet encoded (no encoder runs here) stays held.
			songID := fmt.Sprintf("url-tone-%d", i)
			hitsBefore := map[string]int{}
			for f := range tc.wantHits {
				hitsBefore[f] = srv.Hits("/" + f)
			}
			song := events.Song{ID: songID, URL: u, Source: source}
			resolved, err := events.New(opID, song.ID, events.VideoResolved{Song: song})
			if err != nil {
				t.Fatal(err)
			}
			env.Publish(t, resolved)
			key := "staging/" + opID + "." + tc.ext

			if tc.wantCode != "" {
				_, ev := env.Next(ctx, t, events.KindOperationFailed, opID)
				got := ev.(events.OperationFailed)
				if got.Stage != StageName || got.Code != tc.wantCode || got.Attempts != tc.wantAttempts ||
					!strings.Contains(got.Message, tc.wantMessage) {
					t.Fatalf("failed with %+v; want stage %s, code %s, attempts %d, message with %q",
						got, StageName, tc.wantCode, tc.wantAttempts, tc.wantMessage)
				}
				if strings.Contains(got.Message, "127.0.0.1") {
					t.Errorf("message %q names an internal address", got.Message)
				}
				if _, err := blobs.Stat(ctx, "staging/"+opID+".m4a"); !errors.Is(err, blob.ErrNotFound) {
					t.Errorf("a failed fetch left a blob: %v", err)
				}
				for f, want := range tc.wantHits {
					if got := srv.Hits("/"+f) - hitsBefore[f]; got != want {
						t.Errorf("%s was requested %d times; want %d", f, got, want)
					}
				}
				return
			}

			envl, ev := env.Next(ctx, t, events.KindAudioDownloaded, opID)
			got := ev.(events.AudioDownloaded)
			wantSong := tc.wantSong(u)
			wantSong.ID = songID
			want := events.AudioDownloaded{Song: wantSong, Key: key, Size: fileSize(t, tc.source), Ext: tc.ext, Run: got.Run}
			if got != want || got.Run == "" {
				t.Fatalf("audio.downloaded\n got %+v\nwant %+v and a run", got, want)
			}
			// The download was announced, and its run carried the source
			// as it arrived: byte for byte the staged file.
			_, aev := env.Next(ctx, t, events.KindAudioArriving, opID)
			if arr := aev.(events.AudioArriving); arr.Run != got.Run || arr.Song.ID != songID || arr.Ext != tc.ext {
				t.Errorf("audio.arriving %+v, want run %s of song %s (%s)", arr, got.Run, songID, tc.ext)
			}
			r, err := sourcestream.NewReader(ctx, env.JS, opID, got.Run, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			carried, err := io.ReadAll(r)
			if source, _ := os.ReadFile(tc.source); err != nil || !bytes.Equal(carried, source) {
				t.Errorf("the run carried %d bytes (%v), the file has %d", len(carried), err, len(source))
			}
			if envl.SongID != song.ID || envl.ID != events.DeriveID(resolved.ID, events.TypeAudioDownloaded) {
				t.Errorf("envelope song_id %q id %q; want %q and the id derived from video.resolved", envl.SongID, envl.ID, song.ID)
			}
			assertBlob(ctx, t, blobs, key, tc.source)

			if tc.progress {
				// The final 100 is published before audio.downloaded; a
				// flush makes sure every message sent has arrived.
				if err := env.NC.Flush(); err != nil {
					t.Fatal(err)
				}
				var seen []float64
				for len(progress) > 0 {
					var p events.Progress
					if err := json.Unmarshal((<-progress).Data, &p); err != nil {
						t.Fatal(err)
					}
					if p.Type != "progress" || p.OperationID != opID || p.Stage != StageName || p.Percent < 0 || p.Percent > 100 {
						t.Fatalf("bad progress message %+v", p)
					}
					seen = append(seen, p.Percent)
				}
				if len(seen) < 2 || seen[len(seen)-1] != 100 {
					t.Fatalf("progress %v; want some progress, then 100", seen)
				}
				for i := 1; i < len(seen); i++ {
					if seen[i] < seen[i-1] {
						t.Fatalf("progress went backwards: %v", seen)
					}
				}
			}
		})
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

func assertBlob(ctx context.Context, t *testing.T, blobs *objstore.Store, key, source string) {
	t.Helper()
	rc, info, err := blobs.Open(ctx, key)
	if err != nil {
		t.Fatalf("open %s: %v", key, err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(source)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("blob %s: %d bytes differ from %s (%d bytes)", key, len(got), filepath.Base(source), len(want))
	}
	if info.ContentType == "" {
		t.Errorf("blob %s has no content type", key)
	}
}

// slowServer serves body's first part, then holds the response until the
// client goes away, on 127.0.0.1. It stands for a source whose download is
// under way when the fetch is cancelled.
type slowServer struct {
	URL string
	// gone is closed when the client of the download has disconnected.
	gone chan struct{}
	once sync.Once
}

func serveSlow(t *testing.T, body []byte) *slowServer {
	t.Helper()
	s := &slowServer{gone: make(chan struct{})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "audio/wav")
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(body[:len(body)/10])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		s.once.Do(func() { close(s.gone) })
	})}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })
	s.URL = "http://" + ln.Addr().String() + "/slow.wav"
	return s
}

// TestFetchCancelled cancels a direct download under way: the connection
// must be closed, Fetch must return the cancellation, and the store must
// keep nothing, not even the chunks already sent.
func TestFetchCancelled(t *testing.T) {
	env, blobs := startStore(t)
	wav := audiofixture.Make(t, t.TempDir(), audiofixture.WAV("slow.wav", 60*time.Second))
	body, err := os.ReadFile(wav)
	if err != nil {
		t.Fatal(err)
	}
	srv := serveSlow(t, body)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	opID := events.NewID()
	sub, err := env.NC.Subscribe(events.ProgressSubject(opID), func(*nats.Msg) { cancel() })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	f := &Fetcher{NC: env.NC, Blobs: blobs, Config: testConfig(t)}
	done := make(chan error, 1)
	go func() {
		_, err := f.Fetch(ctx, opID, events.Song{ID: "url-slow", URL: srv.URL, Source: "direct"}, quietLog())
		done <- err
	}()
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("Fetch did not return after its context was cancelled")
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Fetch = %v; want context.Canceled", err)
	}
	select {
	case <-srv.gone:
	case <-time.After(10 * time.Second):
		t.Fatal("the download is still held open")
	}
	check := context.Background()
	if _, err := blobs.Stat(check, "staging/"+opID+".wav"); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("a cancelled fetch left a blob: %v", err)
	}
	stream, err := env.JS.Stream(check, "OBJ_"+objstore.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := stream.Info(check); err != nil || st.State.Msgs != 0 {
		t.Fatalf("object store holds %d messages after a cancelled fetch (%v); want 0", st.State.Msgs, err)
	}
}
