package client_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/butakero/butakero/client"
	"github.com/butakero/butakero/cmd/butakero/app/apptest"
	"github.com/butakero/butakero/platform/testkit/audiofixture"
	"github.com/butakero/butakero/services/encoder/dcafile"
)

const testKey = "client-test-key"

// startButakero runs the all-in-one in this process on 127.0.0.1:0 with a temp
// DATA_DIR and API_KEYS=testKey until the test ends, and returns its base URL
// once /readyz answers 200.
func startButakero(t *testing.T) string {
	t.Helper()
	return apptest.Start(t, map[string]string{"API_KEYS": testKey}).Base
}

// TestClient drives the real all-in-one with the client alone: request,
// follow, fetch, browse, and the errors a bot must tell apart.
func TestClient(t *testing.T) {
	media := t.TempDir()
	const songLen = 12 * time.Second
	audiofixture.Make(t, media, audiofixture.M4A("tone.m4a", songLen))
	audiofixture.WriteNotAudio(t, media, "corrupt.mp3")
	fixtures := audiofixture.Serve(t, media)
	base := startButakero(t)
	c := &client.Client{BaseURL: base, APIKey: testKey}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	var stored client.Operation
	t.Run("request, follow and fetch", func(t *testing.T) {
		op, err := c.Start(ctx, fixtures.URL("tone.m4a"), "tone-1")
		if err != nil {
			t.Fatal(err)
		}
		if op.ID == "" || op.SongID == "" || op.Status != client.StatusInProgress || op.Replayed {
			t.Fatalf("Start = %+v, want an id, the song id of a direct URL, in progress", op)
		}
		var kinds []string
		progress := map[string]int{}
		var last client.Event
		final, err := c.Follow(ctx, op.ID, func(e client.Event) {
			last = e
			if e.IsProgress() {
				progress[e.Stage]++
				if e.Percent < 0 || e.Percent > 100 || e.OperationID != op.ID {
					t.Errorf("progress %+v out of range or for another operation", e)
				}
				return
			}
			kinds = append(kinds, e.Kind)
		})
		if err != nil {
			t.Fatal(err)
		}
		want := []string{client.KindSongRequested, client.KindVideoResolved, client.KindAudioDownloaded, client.KindDCAEncoded, client.KindUploadDone}
		if strings.Join(kinds, " ") != strings.Join(want, " ") {
			t.Errorf("events %v, want %v", kinds, want)
		}
		if progress[client.StageFetch]+progress[client.StageEncode] == 0 {
			t.Errorf("no progress seen (%v)", progress)
		}
		if !last.Final() || last.Kind != client.KindUploadDone {
			t.Errorf("last message %+v, want upload.done", last)
		}
		if final.Status != client.StatusSuccess || final.Err() != nil || final.SongID != op.SongID || final.DCAURL == "" {
			t.Fatalf("final state %+v, want success with the song's DCA", final)
		}

		var buf bytes.Buffer
		n, err := c.DownloadDCA(ctx, final.SongID, &buf)
		if err != nil {
			t.Fatal(err)
		}
		info, err := dcafile.Parse(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatalf("the DCA does not parse: %v", err)
		}
		if n != int64(buf.Len()) || info.Size != n {
			t.Errorf("DownloadDCA reported %d bytes, wrote %d, the file has %d", n, buf.Len(), info.Size)
		}
		if diff := (info.Duration - songLen).Abs(); diff > songLen/100 {
			t.Errorf("the DCA covers %s, the song is %s", info.Duration, songLen)
		}
		var ogg bytes.Buffer
		if n, err := c.DownloadOgg(ctx, final.SongID, &ogg); err != nil || n != int64(ogg.Len()) || !bytes.HasPrefix(ogg.Bytes(), []byte("OggS")) {
			t.Fatalf("DownloadOgg: %d bytes, %v", n, err)
		}
		stored = final
	})
	if stored.SongID == "" {
		t.Fatal("no song stored: the cases below need one")
	}

	t.Run("the same idempotency key replays the operation", func(t *testing.T) {
		again, err := c.Start(ctx, fixtures.URL("tone.m4a"), "tone-1")
		if err != nil {
			t.Fatal(err)
		}
		if again.ID != stored.ID || !again.Replayed {
			t.Errorf("Start again = %+v, want operation %s replayed", again, stored.ID)
		}
	})

	t.Run("state, song and catalog", func(t *testing.T) {
		op, err := c.Operation(ctx, stored.ID)
		if err != nil {
			t.Fatal(err)
		}
		if op.Status != client.StatusSuccess || len(op.Events) != 5 || op.Events[4].Kind != client.KindUploadDone {
			t.Errorf("Operation = %s with %d events, want success with its 5 events", op.Status, len(op.Events))
		}
		// The status is read live from the stream; the catalog follows
		// once the recorder has applied upload.done (the projection lag).
		var song client.Song
		for deadline := time.Now().Add(10 * time.Second); ; {
			song, err = c.Song(ctx, stored.SongID)
			if err != nil {
				t.Fatal(err)
			}
			if song.Stored || time.Now().After(deadline) {
				break
			}
			<-time.After(20 * time.Millisecond)
		}
		if !song.Stored || song.DCASize == 0 || song.Title == "" {
			t.Errorf("Song = %+v, want it stored with a title", song)
		}
		page, err := c.Songs(ctx, "tone", 10, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Songs) != 1 || page.Songs[0].ID != stored.SongID || page.NextCursor != "" {
			t.Errorf("Songs(tone) = %+v, want the one song", page)
		}
	})

	t.Run("resume a download", func(t *testing.T) {
		// Once the catalog has the loudness, the DCA's header carries it
		// for good: every download below is of that one version.
		for deadline := time.Now().Add(10 * time.Second); ; {
			song, err := c.Song(ctx, stored.SongID)
			if err != nil {
				t.Fatal(err)
			}
			if song.LoudnessLUFS != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("song %+v: no loudness after 10 s", song)
			}
			<-time.After(20 * time.Millisecond)
		}
		var whole bytes.Buffer
		if _, err := c.DownloadDCA(ctx, stored.SongID, &whole); err != nil {
			t.Fatal(err)
		}
		// From an offset: the rest of the file.
		var tail bytes.Buffer
		off := int64(whole.Len() / 3)
		if _, err := c.DownloadDCAFrom(ctx, stored.SongID, off, &tail); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(tail.Bytes(), whole.Bytes()[off:]) {
			t.Errorf("DownloadDCAFrom(%d) gave %d bytes, not the file's last %d", off, tail.Len(), int64(whole.Len())-off)
		}
		// Through a proxy that breaks the first answer halfway: the
		// client resumes where it stopped and gets the file once.
		proxied := &client.Client{BaseURL: cuttingProxy(t, base, int64(whole.Len()/2)), APIKey: testKey}
		var got bytes.Buffer
		n, err := proxied.DownloadDCA(ctx, stored.SongID, &got)
		if err != nil {
			t.Fatal(err)
		}
		if n != int64(whole.Len()) || !bytes.Equal(got.Bytes(), whole.Bytes()) {
			t.Errorf("resumed download: %d bytes, equal %v; want the %d bytes of the file", n, bytes.Equal(got.Bytes(), whole.Bytes()), whole.Len())
		}
	})

	t.Run("a failure says why", func(t *testing.T) {
		op, err := c.Start(ctx, fixtures.URL("corrupt.mp3"), "")
		if err != nil {
			t.Fatal(err)
		}
		var failure *client.OperationError
		final, err := c.Follow(ctx, op.ID, func(e client.Event) {
			if f := e.Failure(); f != nil {
				failure = f
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		var oe *client.OperationError
		if final.Status != client.StatusFailed || !errors.As(final.Err(), &oe) {
			t.Fatalf("final %+v, want failed with an *OperationError", final)
		}
		if oe.Code != "invalid_audio" || oe.Message == "" || failure == nil || failure.Code != oe.Code {
			t.Errorf("failure %+v (event %+v), want invalid_audio with a message", oe, failure)
		}
	})

	t.Run("API errors", func(t *testing.T) {
		wrongKey := &client.Client{BaseURL: base, APIKey: "not-the-key"}
		tests := []struct {
			name   string
			call   func() error
			status int
			code   string
		}{
			{"unknown operation", func() error { _, err := c.Operation(ctx, "doesnotexist"); return err }, 404, client.CodeNotFound},
			{"follow an unknown operation", func() error { _, err := c.Follow(ctx, "doesnotexist", nil); return err }, 404, client.CodeNotFound},
			{"unknown song", func() error { _, err := c.Song(ctx, "nosuchsong"); return err }, 404, client.CodeNotFound},
			{"DCA of an unknown song", func() error { _, err := c.DownloadDCA(ctx, "nosuchsong", io.Discard); return err }, 404, client.CodeNotFound},
			{"blank query", func() error { _, err := c.Start(ctx, "  ", ""); return err }, 400, client.CodeBadRequest},
			{"limit too large", func() error { _, err := c.Songs(ctx, "", 1000, ""); return err }, 400, client.CodeBadRequest},
			{"idempotency key reused", func() error { _, err := c.Start(ctx, "another song", "tone-1"); return err }, 422, client.CodeIdempotencyReused},
			{"wrong API key", func() error { _, err := wrongKey.Songs(ctx, "", 0, ""); return err }, 401, client.CodeUnauthorized},
			{"wrong API key on the socket", func() error { _, err := wrongKey.Follow(ctx, stored.ID, nil); return err }, 401, client.CodeUnauthorized},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				err := tc.call()
				var ae *client.APIError
				if !errors.As(err, &ae) {
					t.Fatalf("error %v, want an *APIError", err)
				}
				if ae.Status != tc.status || ae.Code != tc.code || ae.Message == "" || !client.IsCode(err, tc.code) {
					t.Errorf("APIError %+v, want %d %s with a message", ae, tc.status, tc.code)
				}
			})
		}
	})
}

// cuttingProxy forwards requests to upstream; the first DCA answer is cut
// after limit bytes of its body, as a dropped connection would.
func cuttingProxy(t *testing.T, upstream string, limit int64) string {
	t.Helper()
	var cut atomic.Bool
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := http.NewRequestWithContext(r.Context(), r.Method, upstream+r.URL.RequestURI(), nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		req.Header = r.Header.Clone()
		res, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer res.Body.Close()
		for k, v := range res.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(res.StatusCode)
		if strings.HasSuffix(r.URL.Path, "/dca") && res.StatusCode == http.StatusOK && cut.CompareAndSwap(false, true) {
			_, _ = io.CopyN(w, res.Body, limit)
			panic(http.ErrAbortHandler) // drop the connection mid-body
		}
		_, _ = io.Copy(w, res.Body)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

// TestPlayDCA plays songs while they are made: PlayDCA writes what is,
// byte for byte, the DCA stored once done, even when its first answer
// breaks off mid-body (it asks again and skips what it wrote); PlayOgg
// writes an Ogg Opus stream; a song that fails before its first frame is
// an *APIError operation_failed.
func TestPlayDCA(t *testing.T) {
	media := t.TempDir()
	audiofixture.Make(t, media, audiofixture.M4A("play.m4a", 20*time.Second))
	audiofixture.Make(t, media, audiofixture.MP3("play.mp3", 5*time.Second))
	audiofixture.WriteNotAudio(t, media, "corrupt.mp3")
	fixtures := audiofixture.Serve(t, media)
	base := startButakero(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	direct := &client.Client{BaseURL: base, APIKey: testKey}
	cut := &client.Client{BaseURL: cuttingProxy(t, base, 20<<10), APIKey: testKey}

	op, err := direct.Start(ctx, fixtures.URL("play.m4a"), "")
	if err != nil {
		t.Fatal(err)
	}
	var played bytes.Buffer
	n, err := cut.PlayDCA(ctx, op.ID, &played)
	if err != nil || n != int64(played.Len()) {
		t.Fatalf("PlayDCA: %d bytes, %v", n, err)
	}
	// The stored bytes as they are: the operation's route once stored.
	if _, err := direct.Wait(ctx, op.ID); err != nil {
		t.Fatal(err)
	}
	var stored bytes.Buffer
	if _, err := direct.PlayDCA(ctx, op.ID, &stored); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(played.Bytes(), stored.Bytes()) {
		t.Fatalf("played %d bytes, stored %d: not the same", played.Len(), stored.Len())
	}
	// The song's DCA: the same length and frames, the header's metadata
	// completed with the loudness once measured.
	var song bytes.Buffer
	if _, err := direct.DownloadDCA(ctx, op.SongID, &song); err != nil {
		t.Fatal(err)
	}
	frames := func(b []byte) []byte { return b[8+binary.LittleEndian.Uint32(b[4:8]):] }
	if song.Len() != stored.Len() || !bytes.Equal(frames(song.Bytes()), frames(stored.Bytes())) {
		t.Fatalf("the song's DCA has %d bytes, the stored one %d: not the same frames", song.Len(), stored.Len())
	}

	op, err = direct.Start(ctx, fixtures.URL("play.mp3"), "")
	if err != nil {
		t.Fatal(err)
	}
	var ogg bytes.Buffer
	if _, err := direct.PlayOgg(ctx, op.ID, &ogg); err != nil || !bytes.HasPrefix(ogg.Bytes(), []byte("OggS")) {
		t.Fatalf("PlayOgg: %d bytes, %v", ogg.Len(), err)
	}

	op, err = direct.Start(ctx, fixtures.URL("corrupt.mp3"), "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = direct.PlayDCA(ctx, op.ID, io.Discard)
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Code != "operation_failed" || !strings.Contains(ae.Message, "not audio") {
		t.Fatalf("PlayDCA of a corrupt file: %v, want operation_failed saying why", err)
	}
}
