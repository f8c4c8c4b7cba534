package app_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/testkit/audiofixture"
	"github.com/butakero/butakero/platform/testkit/loopback"
	"github.com/butakero/butakero/platform/testkit/wait"
	"github.com/butakero/butakero/services/encoder/dcafile"
)

// paced serves data as a media file in small flushed writes, and stops
// once it has sent heldAt bytes until release is closed: the source is
// being downloaded, not yet whole, for as long as the test wants. sent is
// closed once its last byte is written.
type paced struct {
	typ     string // Content-Type
	data    []byte
	heldAt  int
	release chan struct{}
	held    chan struct{} // closed once heldAt bytes are out
	sent    chan struct{}
	once    sync.Once
	whole   sync.Once
}

func newPaced(data []byte, heldAt int) *paced {
	return &paced{typ: "audio/mp4", data: data, heldAt: heldAt, release: make(chan struct{}), held: make(chan struct{}), sent: make(chan struct{})}
}

func (p *paced) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", p.typ)
	w.Header().Set("Content-Length", strconv.Itoa(len(p.data)))
	for off := 0; off < len(p.data); {
		if off == p.heldAt {
			p.once.Do(func() { close(p.held) })
			select {
			case <-p.release:
			case <-r.Context().Done():
				return
			}
		}
		end := min(off+8<<10, len(p.data))
		if off < p.heldAt {
			end = min(end, p.heldAt)
		}
		if _, err := w.Write(p.data[off:end]); err != nil {
			return
		}
		w.(http.Flusher).Flush()
		off = end
	}
	p.whole.Do(func() { close(p.sent) })
}

// firstFrameReader follows path and closes first once the DCA's header
// and first frame are read; the rest of the body, or its error, comes on
// the returned channel.
func firstFrameReader(base, path string, first chan<- struct{}) <-chan followed {
	out := make(chan followed, 1)
	go func() {
		resp, err := http.Get(base + path)
		if err != nil {
			close(first)
			out <- followed{err: err}
			return
		}
		defer resp.Body.Close()
		var body bytes.Buffer
		r := io.TeeReader(resp.Body, &body)
		var hdr [8]byte
		ok := false
		if _, err := io.ReadFull(r, hdr[:]); err == nil && string(hdr[:4]) == "DCA1" {
			if _, err := io.CopyN(io.Discard, r, int64(binary.LittleEndian.Uint32(hdr[4:]))); err == nil {
				var l [2]byte
				if _, err := io.ReadFull(r, l[:]); err == nil {
					_, err = io.CopyN(io.Discard, r, int64(binary.LittleEndian.Uint16(l[:])))
					ok = err == nil
				}
			}
		}
		close(first)
		if !ok {
			out <- followed{status: resp.StatusCode, body: body.Bytes(), err: fmt.Errorf("no whole first frame in %d bytes", body.Len())}
			return
		}
		_, err = io.Copy(io.Discard, r)
		out <- followed{status: resp.StatusCode, header: resp.Header, body: body.Bytes(), err: err}
	}()
	return out
}

// playWhileHeld starts the song at url, whose source src holds, and
// follows its DCA until the first frame is read while src still holds it,
// failing t with why after 2 minutes without one. The rest of what the
// follower reads comes on got.
func (in *instance) playWhileHeld(t *testing.T, url string, src *paced, why string) (op startResp, got <-chan followed) {
	t.Helper()
	op = in.startSong(t, url)
	first := make(chan struct{})
	got = firstFrameReader(in.base, "/v1/operations/"+op.OperationID+"/dca", first)
	<-src.held
	select {
	case <-first:
	case <-time.After(2 * time.Minute):
		t.Fatalf("no first frame within 2 minutes while the source is held at %d of %d bytes: %s", src.heldAt, len(src.data), why)
	}
	return op, got
}

// TestPlayWhileDownloading plays songs whose source is still being
// served: a faststart M4A (transcoded) and a WebM/Opus (copied), each sent
// in small writes and held at two thirds. A follower of
// /v1/operations/{id}/dca reads the DCA's first frame while the server has
// not sent the file's last bytes (the encode overlaps the download), the
// source is then let go, and what the follower read is, byte for byte, the
// DCA stored. The song's events are the usual ones, once each, plus the
// download's audio.arriving.
func TestPlayWhileDownloading(t *testing.T) {
	media := t.TempDir()
	const d = 40 * time.Second
	srv := audiofixture.Serve(t, media)
	natsAddr := loopback.Addr(t)
	in := start(t, t.TempDir(), map[string]string{"NATS_LISTEN": natsAddr, "NATS_TOKEN": natsToken})
	obs := observe(t, "nats://"+natsAddr)
	cases := []struct {
		spec     audiofixture.Spec
		typ      string
		wantMode string
	}{
		{audiofixture.M4A("song.m4a", d), "audio/mp4", "transcode"},
		{audiofixture.Spec{Name: "song.webm", Duration: d, Args: []string{"-c:a", "libopus", "-b:a", "96k"}}, "audio/webm", "passthrough"},
	}
	for _, tc := range cases {
		t.Run(tc.spec.Name, func(t *testing.T) {
			song, err := os.ReadFile(audiofixture.Make(t, media, tc.spec))
			if err != nil {
				t.Fatal(err)
			}
			src := newPaced(song, len(song)*2/3)
			src.typ = tc.typ
			srv.Handle("/paced-"+tc.spec.Name, src)
			op, got := in.playWhileHeld(t, srv.URL("paced-"+tc.spec.Name), src, "the encode waits for the download")
			select {
			case <-src.sent:
				t.Fatal("the server sent the whole source before the first frame was read")
			default:
			}
			t.Logf("first frame read with %d of %d bytes of the source sent", src.heldAt, len(song))
			close(src.release)

			f := <-got
			st := in.waitFinal(t, op.OperationID, 2*time.Minute)
			if st.Status != "success" {
				t.Fatalf("operation ended %q: %s", st.Status, st.Message)
			}
			if f.err != nil || f.status != 200 {
				t.Fatalf("follower: %d %v", f.status, f.err)
			}
			// The stored bytes as they are: the operation's route, once
			// the song is stored (the song's route adds the loudness).
			stored := in.follow("/v1/operations/" + op.OperationID + "/dca")
			if stored.status != 200 || !bytes.Equal(f.body, stored.body) {
				t.Fatalf("the follower read %d bytes, the stored DCA has %d (status %d): not the same", len(f.body), len(stored.body), stored.status)
			}
			info, err := dcafile.Parse(bytes.NewReader(stored.body))
			if err != nil {
				t.Fatal(err)
			}
			checkCovers(t, "the DCA made while downloading", info, d)
			if b := info.Metadata.Butakero; b == nil || b.Mode != tc.wantMode {
				t.Errorf("the DCA's metadata %+v, want mode %s", b, tc.wantMode)
			}

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			for _, k := range []events.Kind{events.KindAudioArriving, events.KindAudioDownloaded, events.KindDCAEncoded, events.KindUploadDone} {
				if n, err := obs.count(ctx, k, op.OperationID); err != nil || n != 1 {
					t.Errorf("%d %s events (%v), want 1", n, k, err)
				}
			}
		})
	}
}

// TestKilledMidEarlyEncode runs the five services as processes against
// one NATS server and kills one of them (SIGKILL) while the encoder encodes
// a song whose source is still being served, then starts it again and lets
// the source go.
//
//   - the encoder: the audio.downloaded delivery finds the dead early
//     encode's state gone stale and encodes the staged source as before;
//   - the fetcher: its fetch is redelivered as a new run (a second
//     audio.arriving), the dead run's early encode is abandoned, and the
//     new run is encoded.
//
// Either way the operation ends success with one DCA stored, covering the
// song, one dca.encoded and one upload.done, and no failure.
func TestKilledMidEarlyEncode(t *testing.T) {
	bin := buildServices(t)
	media := t.TempDir()
	const d = 40 * time.Second
	song, err := os.ReadFile(audiofixture.Make(t, media, audiofixture.M4A("song.m4a", d)))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		killed   string
		arriving int // audio.arriving events: one per fetch run
	}{
		{killed: "encoder", arriving: 1},
		{killed: "fetcher", arriving: 2},
	}
	for _, tc := range cases {
		t.Run("the "+tc.killed, func(t *testing.T) {
			killedMidEarlyEncode(t, bin, song, d, tc.killed, tc.arriving)
		})
	}
}

func killedMidEarlyEncode(t *testing.T, bin string, song []byte, d time.Duration, killed string, arriving int) {
	srvNATS := startTokenNATS(t)
	obs := observe(t, srvNATS.ClientURL())
	files := audiofixture.Serve(t, t.TempDir())
	src := newPaced(song, len(song)*2/3)
	files.Handle("/paced.m4a", src)

	httpAddr := loopback.Addr(t)
	env := append(os.Environ(), "NATS_URL="+srvNATS.ClientURL(), "NATS_TOKEN="+natsToken, "HTTP_ADDR="+httpAddr,
		"ALLOWED_MEDIA_HOSTS=127.0.0.1:*", "LOG_LEVEL=info", "SHUTDOWN_GRACE=5s")
	type service struct {
		cmd    *exec.Cmd
		logs   *wait.Output
		exited <-chan struct{}
	}
	run := func(name string) *service {
		s := &service{cmd: exec.Command(filepath.Join(bin, name)), logs: &wait.Output{}}
		s.cmd.Env, s.cmd.Stderr = env, s.logs
		// Registered first, so that it runs once the service has stopped.
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("last lines of %s:\n%s", name, s.logs.Tail(30))
			}
		})
		s.exited = wait.StartTerm(t, s.cmd, 30*time.Second)
		return s
	}
	procs := map[string]*service{}
	for _, s := range services {
		procs[s] = run(s)
	}
	in := &instance{base: "http://" + httpAddr}
	in.waitReady(t)

	op, got := in.playWhileHeld(t, files.URL("paced.m4a"), src, "no early encode to cut short")
	// The encode is under way and the download is not over: kill.
	p := procs[killed]
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.exited
	run(killed)
	close(src.release)

	st := in.waitFinal(t, op.OperationID, 3*time.Minute)
	if st.Status != "success" {
		t.Fatalf("operation ended %q: %s", st.Status, st.Message)
	}
	checkCovers(t, "after the "+killed+" was killed", in.dca(t, st.SongID), d)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for k, want := range map[events.Kind]int{events.KindDCAEncoded: 1, events.KindUploadDone: 1, events.KindOperationFailed: 0, events.KindAudioArriving: arriving} {
		if n, err := obs.count(ctx, k, op.OperationID); err != nil || n != want {
			t.Errorf("%d %s events (%v), want %d", n, k, err, want)
		}
	}
	// The follower of the killed encode's frames was cut off, never
	// handed a short file as a whole one.
	stored := in.follow("/v1/operations/" + op.OperationID + "/dca")
	if f := <-got; f.err == nil && !bytes.Equal(f.body, stored.body) {
		t.Errorf("the follower of the cut encode read %d bytes without error, not the stored %d", len(f.body), len(stored.body))
	}
	// A client following now reads the stored DCA.
	again := in.follow("/v1/operations/" + op.OperationID + "/dca")
	if again.status != 200 || !bytes.Equal(again.body, stored.body) {
		t.Errorf("after success the operation's DCA: %d, %d bytes of %d", again.status, len(again.body), len(stored.body))
	}
}
