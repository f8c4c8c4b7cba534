package app_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/butakero/butakero/platform/testkit/audiofixture"
	"github.com/butakero/butakero/services/encoder/dcafile"
)

// followed is what one client of /v1/operations/{id}/dca (or /ogg) read.
type followed struct {
	status int
	header http.Header
	body   []byte
	err    error // the body's read error: a body cut short
}

// follow GETs path and reads the whole answer; headers, when not nil, is
// closed once the answer's headers are in.
func (in *instance) follow(path string, headers ...chan struct{}) followed {
	resp, err := http.Get(in.base + path)
	for _, h := range headers {
		close(h)
	}
	if err != nil {
		return followed{err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return followed{status: resp.StatusCode, header: resp.Header, body: body, err: err}
}

// followers reads the gateway's butakero_audio_followers gauge.
func (in *instance) followers(t *testing.T) int {
	t.Helper()
	return int(in.metric(t, "butakero_audio_followers"))
}

// waitFollowers waits until n clients follow songs in the making.
func (in *instance) waitFollowers(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for in.followers(t) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d followers after 30s, want %d", in.followers(t), n)
		}
		<-time.After(20 * time.Millisecond)
	}
}

// gated serves data as a media file once gate is closed.
func gated(data []byte, gate <-chan struct{}) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-gate
		w.Header().Set("Content-Type", "audio/mp4")
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		_, _ = w.Write(data)
	})
}

// TestFollowBeforeStored plays a song through GET /v1/operations/{id}/dca
// and /ogg while it is made. The source is held back until three clients
// follow the operation (two on /dca, one on /ogg), so they read the DCA as
// the encoder makes it: each /dca body is, byte for byte, the DCA stored
// once it is done, and the /ogg body passes the Ogg checks. A fourth
// client joins once the first frames are out. A second song, whose source
// is cut short, fails mid-encode: its follower's body ends without the
// chunked transfer's end, and a client coming after the failure gets 409
// operation_failed. It runs in each profile: in the AWS one the frames
// travel on JetStream as in the embedded one, the DCA is stored in S3 and
// the followers' bytes are compared with the S3 object itself.
func TestFollowBeforeStored(t *testing.T) {
	if os.Getenv(envNodeModules) == "" {
		t.Fatalf("%s is not set: run the tests with scripts/test.sh, which installs prism-media", envNodeModules)
	}
	for _, p := range profiles {
		t.Run(p.name, func(t *testing.T) { followBeforeStored(t, p) })
	}
}

func followBeforeStored(t *testing.T, p profile) {
	media := t.TempDir()
	const d = 40 * time.Second
	song, err := os.ReadFile(audiofixture.Make(t, media, audiofixture.M4A("song.m4a", d)))
	if err != nil {
		t.Fatal(err)
	}
	srv := audiofixture.Serve(t, media)
	env := p.env(t)
	in := start(t, t.TempDir(), env)

	t.Run("followers read the stored DCA", func(t *testing.T) {
		gate := make(chan struct{})
		srv.Handle("/held.m4a", gated(song, gate))
		op := in.startSong(t, srv.URL("held.m4a"))
		path := "/v1/operations/" + op.OperationID
		results := make(chan followed, 3)
		oggs := make(chan followed, 1)
		firstFrames := make(chan struct{})
		go func() { results <- in.follow(path+"/dca", firstFrames) }()
		go func() { results <- in.follow(path + "/dca") }()
		go func() { oggs <- in.follow(path + "/ogg") }()
		in.waitFollowers(t, 3)
		close(gate)

		// A client joining late, once the first frames are out: it reads
		// the song from its first byte too.
		late := make(chan followed, 1)
		go func() {
			<-firstFrames
			late <- in.follow(path + "/dca")
		}()
		st := in.waitFinal(t, op.OperationID, 2*time.Minute)
		if st.Status != "success" {
			t.Fatalf("operation ended %q: %s", st.Status, st.Message)
		}
		stored := in.follow("/v1/songs/" + st.SongID + "/dca")
		if stored.status != 200 || stored.err != nil {
			t.Fatalf("stored DCA: %d %v", stored.status, stored.err)
		}
		info, err := dcafile.Parse(bytes.NewReader(stored.body))
		if err != nil {
			t.Fatalf("stored DCA: %v", err)
		}
		for i := range 2 {
			f := <-results
			if f.err != nil || f.status != 200 || f.header.Get("Cache-Control") != "no-store" || f.header.Get("Content-Length") != "" {
				t.Fatalf("follower %d: %d %v %v: want 200, a body followed as it was made", i, f.status, f.header, f.err)
			}
			if !bytes.Equal(f.body, stored.body) {
				t.Fatalf("follower %d read %d bytes, the stored DCA has %d (equal: false)", i, len(f.body), len(stored.body))
			}
		}
		l := <-late
		if l.err != nil || l.status != 200 || !bytes.Equal(l.body, stored.body) {
			t.Fatalf("late follower: %d %v, %d bytes of the stored %d", l.status, l.err, len(l.body), len(stored.body))
		}
		t.Logf("late follower: Cache-Control %q (no-store: followed live)", l.header.Get("Cache-Control"))
		o := <-oggs
		if o.err != nil || o.status != 200 || o.header.Get("Content-Type") != "audio/ogg; codecs=opus" {
			t.Fatalf("/ogg follower: %d %v %v", o.status, o.header, o.err)
		}
		checkOgg(t, o.body, d, info.Frames)
		if p.object != nil {
			if obj := p.object(t, env, st.SongID); !bytes.Equal(obj, stored.body) {
				t.Fatalf("the %s store holds %d bytes for the song, the followers read %d (equal: false)", p.name, len(obj), len(stored.body))
			}
		}
		// Stored now: the same route answers the file whole.
		again := in.follow(path + "/dca")
		if again.status != 200 || again.header.Get("Content-Length") != strconv.Itoa(len(stored.body)) || !bytes.Equal(again.body, stored.body) {
			t.Fatalf("after success: %d %v", again.status, again.header)
		}
	})

	t.Run("a failure mid-way cuts the body", func(t *testing.T) {
		gate := make(chan struct{})
		// The index says 40 s; the audio stops after a third of it.
		srv.Handle("/cut.m4a", gated(song[:len(song)/3], gate))
		op := in.startSong(t, srv.URL("cut.m4a"))
		path := "/v1/operations/" + op.OperationID + "/dca"
		got := make(chan followed, 1)
		go func() { got <- in.follow(path) }()
		in.waitFollowers(t, 1)
		close(gate)
		f := <-got
		if f.status != 200 || f.err == nil || len(f.body) == 0 {
			t.Fatalf("follower of a failing encode: %d, %d bytes, error %v: want 200, frames, then a broken body", f.status, len(f.body), f.err)
		}
		t.Logf("the body broke after %d bytes: %v", len(f.body), f.err)
		st := in.waitFinal(t, op.OperationID, 2*time.Minute)
		if st.Status != "failed" {
			t.Fatalf("operation ended %q", st.Status)
		}
		after := in.follow(path)
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if err := json.Unmarshal(after.body, &e); err != nil || after.status != 409 || e.Error.Code != "operation_failed" || !strings.Contains(e.Error.Message, st.Message) {
			t.Fatalf("after the failure: %d %s, want 409 operation_failed with %q", after.status, after.body, st.Message)
		}
	})

	t.Run("unknown and malformed operations", func(t *testing.T) {
		for path, want := range map[string]int{"/v1/operations/nosuchop/dca": 404, "/v1/operations/bad..id/ogg": 400} {
			if f := in.follow(path); f.status != want {
				t.Errorf("%s: %d %s, want %d", path, f.status, f.body, want)
			}
		}
	})
}
