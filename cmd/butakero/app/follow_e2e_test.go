package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/butakero/butakero/platform/blob"
	"github.com/butakero/butakero/platform/media/dcahead"
	"github.com/butakero/butakero/platform/store/objstore"
	"github.com/butakero/butakero/platform/testkit/audiofixture"
	"github.com/butakero/butakero/platform/testkit/loopback"
	"github.com/butakero/butakero/platform/testkit/natstest"
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
// once it is done (the object in the profile's store, read with the
// store's own client), and the /ogg body passes the Ogg checks; GET
// /v1/songs/{id}/dca then serves those bytes with the song's loudness
// added to the header's metadata (the header was written before the
// loudness was known), the same length and frames, while the operation's
// route serves the stored bytes as they are. A fourth client joins once
// the first frames are out. A second song, whose source
// is cut short, fails mid-encode: its follower's body ends without the
// chunked transfer's end, and a client coming after the failure gets 409
// operation_failed. It runs in each profile: in the AWS one the frames
// travel on JetStream as in the embedded one and the DCA is stored in S3.
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
	object := p.object
	if object == nil {
		// The embedded profile: its Object Store, read over the
		// process's NATS listener.
		if env == nil {
			env = map[string]string{}
		}
		env["NATS_LISTEN"], env["NATS_TOKEN"] = loopback.Addr(t), natsToken
		object = embeddedObject
	}
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
		obj := object(t, env, st.SongID)
		info, err := dcafile.Parse(bytes.NewReader(obj))
		if err != nil {
			t.Fatalf("stored DCA: %v", err)
		}
		for i := range 2 {
			f := <-results
			if f.err != nil || f.status != 200 || f.header.Get("Cache-Control") != "no-store" || f.header.Get("Content-Length") != "" {
				t.Fatalf("follower %d: %d %v %v: want 200, a body followed as it was made", i, f.status, f.header, f.err)
			}
			if !bytes.Equal(f.body, obj) {
				t.Fatalf("follower %d read %d bytes, the store holds %d (equal: false)", i, len(f.body), len(obj))
			}
		}
		l := <-late
		if l.err != nil || l.status != 200 || !bytes.Equal(l.body, obj) {
			t.Fatalf("late follower: %d %v, %d bytes of the stored %d", l.status, l.err, len(l.body), len(obj))
		}
		t.Logf("late follower: Cache-Control %q (no-store: followed live)", l.header.Get("Cache-Control"))
		o := <-oggs
		if o.err != nil || o.status != 200 || o.header.Get("Content-Type") != "audio/ogg; codecs=opus" {
			t.Fatalf("/ogg follower: %d %v %v", o.status, o.header, o.err)
		}
		checkOgg(t, o.body, d, info.Frames)

		// Once the catalog has the loudness, the song's DCA is the stored
		// frames behind a header that carries it.
		song := in.storedSong(t, st.SongID)
		if song.TruePeakDB == nil {
			t.Fatalf("the catalog has no true peak: %+v", song)
		}
		stored := in.follow("/v1/songs/" + st.SongID + "/dca")
		if stored.status != 200 || stored.err != nil {
			t.Fatalf("GET the song's DCA: %d %v", stored.status, stored.err)
		}
		served, err := dcafile.Parse(bytes.NewReader(stored.body))
		if err != nil {
			t.Fatalf("the song's DCA: %v", err)
		}
		b := served.Metadata.Butakero
		if b == nil || b.LoudnessLUFS == nil || *b.LoudnessLUFS != *song.LoudnessLUFS || b.TruePeakDB == nil || *b.TruePeakDB != *song.TruePeakDB {
			t.Fatalf("the song's DCA metadata %+v, want the catalog's loudness %v LUFS %v dBTP", b, *song.LoudnessLUFS, *song.TruePeakDB)
		}
		if len(stored.body) != len(obj) {
			t.Fatalf("the song's DCA has %d bytes, the store %d: the loudness did not go in the header's room", len(stored.body), len(obj))
		}
		storedHead, servedHead := dcaHeaderLen(t, obj), dcaHeaderLen(t, stored.body)
		if !bytes.Equal(stored.body[servedHead:], obj[storedHead:]) {
			t.Fatalf("the song's DCA has %d bytes of frames, the store %d (equal: false)", len(stored.body)-servedHead, len(obj)-storedHead)
		}
		// Stored now: the operation's route answers the stored file whole,
		// as it is (a follower that resumes there reads on the same bytes).
		again := in.follow(path + "/dca")
		if again.status != 200 || again.header.Get("Content-Length") != strconv.Itoa(len(obj)) || !bytes.Equal(again.body, obj) {
			t.Fatalf("after success: %d %v, %d bytes, want the stored %d", again.status, again.header, len(again.body), len(obj))
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

// embeddedObject reads a stored song's DCA from the all-in-one's Object
// Store, over the NATS listener env names (NATS_LISTEN), with the store's
// own client: not through the gateway.
func embeddedObject(t *testing.T, env map[string]string, songID string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store := natstest.Open(ctx, t, objstore.Open, connectJS(t, env["NATS_LISTEN"]), 1)
	rc, _, err := store.Open(ctx, blob.DCAKey(songID))
	if err != nil {
		t.Fatalf("open the stored DCA: %v", err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read the stored DCA: %v", err)
	}
	return b
}

// dcaHeaderLen is the length of dca's header: where its frames start.
func dcaHeaderLen(t *testing.T, dca []byte) int {
	t.Helper()
	n, err := dcahead.Len(dca)
	if err != nil {
		t.Fatal(err)
	}
	return int(n)
}
