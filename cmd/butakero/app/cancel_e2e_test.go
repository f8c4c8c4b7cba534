package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/blob"
	"github.com/butakero/butakero/platform/store/objstore"
	"github.com/butakero/butakero/platform/testkit/audiofixture"
	"github.com/butakero/butakero/platform/testkit/childproc"
	"github.com/butakero/butakero/platform/testkit/loopback"
	"github.com/butakero/butakero/platform/testkit/natstest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestCancel runs the all-in-one and cancels operations the way a bot
// does, with DELETE /v1/operations/{id}:
//
//   - a 60-minute song cancelled mid-encode ends cancelled, its ffmpeg is
//     gone, its staged download deleted, and nothing is published for it
//     after operation.cancelled;
//   - of two operations of one song, the one that holds the download is
//     cancelled (while it encodes, and while it downloads) and the other
//     still succeeds with the whole song;
//   - an operation that has ended answers 409 and stays as it ended; an
//     unknown one 404.
func TestCancel(t *testing.T) {
	media := t.TempDir()
	// 8 kHz mono WAV: ffmpeg writes an hour of it at once, and the encoder
	// resamples it for many seconds.
	const long = 60 * time.Minute
	audiofixture.Make(t, media, audiofixture.Spec{Name: "hour.wav", Duration: long, Args: []string{"-c:a", "pcm_s16le", "-ar", "8000", "-ac", "1"}})
	const shared = 3 * time.Minute
	audiofixture.Make(t, media, audiofixture.Spec{Name: "shared.wav", Duration: shared, Args: []string{"-c:a", "pcm_s16le", "-ar", "16000", "-ac", "1"}})
	const heldLen = 30 * time.Second
	heldPath := audiofixture.Make(t, media, audiofixture.Spec{Name: "held.wav", Duration: heldLen, Args: []string{"-c:a", "pcm_s16le", "-ar", "16000", "-ac", "1"}})
	srv := audiofixture.Serve(t, media)
	// held.wav's first GET sends part of the file and holds the rest until
	// the client goes away; later ones send it whole.
	heldStarted := make(chan struct{})
	var heldMu sync.Mutex
	heldGets, heldWhole := 0, 0
	srv.Handle("/held.wav", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			http.ServeFile(w, r, heldPath)
			return
		}
		heldMu.Lock()
		heldGets++
		first := heldGets == 1
		heldMu.Unlock()
		if !first {
			http.ServeFile(w, r, heldPath)
			heldMu.Lock()
			heldWhole++
			heldMu.Unlock()
			return
		}
		body, err := os.ReadFile(heldPath)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "audio/wav")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body[:64<<10])
		w.(http.Flusher).Flush()
		close(heldStarted)
		<-r.Context().Done()
	}))
	natsAddr := loopback.Addr(t)
	in := start(t, t.TempDir(), map[string]string{
		"NATS_LISTEN":        natsAddr,
		"NATS_TOKEN":         natsToken,
		"STAGE_TIMEOUT":      "5m",
		"ENCODE_CONCURRENCY": "2",
	})
	js := connectJS(t, natsAddr)

	t.Run("a 60-minute song mid-encode", func(t *testing.T) {
		op := in.createOperation(t, srv.URL("hour.wav"))
		waitFor(t, "the encode's ffmpeg to run", 3*time.Minute, func() bool { return hasFFmpeg(tools()) })
		before := in.metric(t, `butakero_stage_duration_seconds_count{outcome="cancelled",stage="encode"}`)
		began := time.Now()
		if code, body := in.cancel(t, op); code != http.StatusAccepted || !strings.Contains(body, `"status":"cancelled"`) {
			t.Fatalf("DELETE: %d %s, want 202 cancelled", code, body)
		}
		answered := time.Since(began)
		if st := in.v1Status(t, op); st.Status != "cancelled" {
			t.Errorf("status right after the DELETE: %q, want cancelled", st.Status)
		}
		waitFor(t, "ffmpeg to be gone", time.Minute, func() bool { return len(tools()) == 0 })
		killed := time.Since(began)
		waitFor(t, "the encoder to end the message", time.Minute, func() bool {
			return in.metric(t, `butakero_stage_duration_seconds_count{outcome="cancelled",stage="encode"}`) > before
		})
		t.Logf("DELETE answered in %s, ffmpeg gone %s after it was sent (under the load of the machine; not asserted)",
			answered.Round(time.Millisecond), killed.Round(time.Millisecond))

		st := in.v1Status(t, op)
		if st.Status != "cancelled" || st.Stage != "cancelled" || st.DCAURL != "" {
			t.Errorf("ended %q at %q (dca %q), want cancelled", st.Status, st.Stage, st.DCAURL)
		}
		kinds := st.kinds()
		if last := kinds[len(kinds)-1]; last != string(events.KindOperationCancelled) {
			t.Errorf("history %v: something was published after operation.cancelled", kinds)
		}
		for _, k := range kinds {
			if k == string(events.KindDCAEncoded) || k == string(events.KindUploadDone) || k == string(events.KindOperationFailed) {
				t.Errorf("history %v has %s", kinds, k)
			}
		}
		if staged := stagedBlobs(t, js, op); len(staged) != 0 {
			t.Errorf("staged audio left behind: %v", staged)
		}
		if code, _ := in.cancel(t, op); code != http.StatusConflict {
			t.Errorf("a second DELETE: %d, want 409", code)
		}
	})

	t.Run("the other operation of the same song carries on", func(t *testing.T) {
		_, second, st := in.cancelOwner(t, srv.URL("shared.wav"), func() {
			waitFor(t, "the first operation's encode", 3*time.Minute, func() bool { return hasFFmpeg(tools()) })
		})
		checkCovers(t, "the second operation's song", in.dca(t, st.SongID), shared)

		// Ended: 409, and it stays as it ended.
		code, body := in.cancel(t, second)
		if code != http.StatusConflict || !strings.Contains(body, `"code":"conflict"`) {
			t.Errorf("DELETE of a finished operation: %d %s, want 409 conflict", code, body)
		}
		if again := in.v1Status(t, second); again.Status != "success" {
			t.Errorf("after the refused DELETE the operation is %q", again.Status)
		}
	})

	t.Run("the owner cancelled mid-download, the other carries on", func(t *testing.T) {
		first, _, st := in.cancelOwner(t, srv.URL("held.wav"), func() {
			select {
			case <-heldStarted:
			case <-time.After(3 * time.Minute):
				t.Fatal("the first operation's download never started")
			}
		})
		checkCovers(t, "the second operation's song", in.dca(t, st.SongID), heldLen)
		// The claim released by the cancel, the waiter took the download
		// over: it downloaded the song itself, whole.
		heldMu.Lock()
		defer heldMu.Unlock()
		if heldWhole != 1 {
			t.Errorf("%d whole downloads of the song after the cancel, want the waiter's one", heldWhole)
		}
		if staged := stagedBlobs(t, js, first); len(staged) != 0 {
			t.Errorf("the cancelled download's staged audio left behind: %v", staged)
		}
	})

	t.Run("unknown and malformed ids", func(t *testing.T) {
		if code, _ := in.cancel(t, "nosuchoperation"); code != http.StatusNotFound {
			t.Errorf("DELETE of an unknown operation: %d, want 404", code)
		}
		if code, _ := in.cancel(t, "bad.id"); code != http.StatusBadRequest {
			t.Errorf("DELETE of a malformed id: %d, want 400", code)
		}
	})
}

// v1Op is GET /v1/operations/{id}, with the fields these tests read.
type v1Op struct {
	ID        string `json:"id"`
	SongID    string `json:"song_id"`
	Status    string `json:"status"`
	Stage     string `json:"stage"`
	Message   string `json:"message"`
	ErrorCode string `json:"error_code"`
	Attempts  int    `json:"attempts"`
	Failures  int    `json:"failures"`
	DCAURL    string `json:"dca_url"`
	Events    []struct {
		Kind string          `json:"kind"`
		Data json.RawMessage `json:"data"`
	} `json:"events"`
	Children []v1Child      `json:"children"`
	Counts   map[string]int `json:"counts"`
}

// v1Child is one child of a playlist's parent operation.
type v1Child struct {
	OperationID string `json:"operation_id"`
	SongID      string `json:"song_id"`
	Title       string `json:"title"`
	Status      string `json:"status"`
	ErrorCode   string `json:"error_code"`
}

func (o v1Op) kinds() []string {
	var ks []string
	for _, e := range o.Events {
		ks = append(ks, e.Kind)
	}
	return ks
}

// createOperation is POST /v1/operations {"query": q}.
// cancelOwner requests the song at url twice: once busy has seen the
// first operation at work, the second joins its download; then the first
// is cancelled. The second must end in success (its final status is
// returned with both ids), the first cancelled.
func (in *instance) cancelOwner(t *testing.T, url string, busy func()) (first, second string, st v1Op) {
	t.Helper()
	first = in.createOperation(t, url)
	busy()
	joins := `butakero_singleflight_joins_total{what="fetch"}`
	joined := in.metric(t, joins)
	second = in.createOperation(t, url)
	waitFor(t, "the second operation to wait for the first's download", time.Minute, func() bool {
		return in.metric(t, joins) > joined
	})
	if code, body := in.cancel(t, first); code != http.StatusAccepted {
		t.Fatalf("DELETE: %d %s", code, body)
	}
	st = in.waitV1Final(t, second, 3*time.Minute)
	if st.Status != "success" {
		t.Fatalf("the second operation ended %q: %s", st.Status, st.Message)
	}
	if st := in.waitV1Final(t, first, time.Minute); st.Status != "cancelled" {
		t.Errorf("the cancelled operation ended %q", st.Status)
	}
	return first, second, st
}

func (in *instance) createOperation(t *testing.T, q string) string {
	t.Helper()
	return in.createWith(t, map[string]any{"query": q})
}

// createWith is POST /v1/operations with body.
func (in *instance) createWith(t *testing.T, body map[string]any) string {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(in.base+"/v1/operations", "application/json", strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var r startResp
	if resp.StatusCode != http.StatusAccepted || json.Unmarshal(raw, &r) != nil || r.OperationID == "" {
		t.Fatalf("POST /v1/operations %s: %d %s", b, resp.StatusCode, raw)
	}
	return r.OperationID
}

// v1Status is GET /v1/operations/{id}.
func (in *instance) v1Status(t *testing.T, opID string) v1Op {
	t.Helper()
	var op v1Op
	getJSON(t, in.base+"/v1/operations/"+url.PathEscape(opID), &op)
	return op
}

// waitV1Final polls GET /v1/operations/{id} until it is no longer in
// progress.
func (in *instance) waitV1Final(t *testing.T, opID string, within time.Duration) v1Op {
	t.Helper()
	var op v1Op
	waitFor(t, "operation "+opID+" to end", within, func() bool {
		op = in.v1Status(t, opID)
		return op.Status != "in_progress"
	})
	return op
}

// cancel is DELETE /v1/operations/{id}: its status and body.
func (in *instance) cancel(t *testing.T, opID string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodDelete, in.base+"/v1/operations/"+url.PathEscape(opID), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

// metric is the value of series on /metrics, 0 when absent.
func (in *instance) metric(t *testing.T, series string) float64 {
	t.Helper()
	resp, err := http.Get(in.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return v
		}
	}
	return 0
}

// waitFor polls cond until it holds, failing the test after within.
func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s after %s", what, within)
		}
		<-time.After(20 * time.Millisecond)
	}
}

// tools lists the media tools (ffmpeg, ffprobe, yt-dlp) running as
// children of this test process, where the all-in-one runs: "pid comm".
// A stage starts them; with Setpgid they stay its children.
func tools() []string {
	var out []string
	for _, c := range childproc.List() {
		if c.State == "Z" {
			continue
		}
		// The version probe's "yt-dlp --version" and "ffmpeg -version"
		// (GET /v1/info) are not a stage's work.
		// A process gone before its cmdline is read is not running.
		cmdline, err := os.ReadFile("/proc/" + c.PID + "/cmdline")
		if err != nil || len(cmdline) == 0 || strings.Contains(string(cmdline), "version\x00") {
			continue
		}
		switch c.Comm {
		case "ffmpeg", "ffprobe", "yt-dlp":
			out = append(out, c.PID+" "+c.Comm)
		}
	}
	return out
}

// connectJS is a JetStream context on the all-in-one's embedded server.
func connectJS(t *testing.T, addr string) jetstream.JetStream {
	t.Helper()
	_, js := natstest.Connect(t, "nats://"+addr, nats.Name("test"), nats.Token(natsToken))
	return js
}

// stagedBlobs lists operation opID's staged downloads in the Object Store.
func stagedBlobs(t *testing.T, js jetstream.JetStream, opID string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	store := natstest.Open(ctx, t, objstore.Open, js, 1)
	infos, err := store.List(ctx, blob.StagingPrefix+opID+".")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, i := range infos {
		keys = append(keys, fmt.Sprintf("%s (%d bytes)", i.Key, i.Size))
	}
	return keys
}

// hasFFmpeg reports whether procs (tools) has an ffmpeg: an encode runs.
func hasFFmpeg(procs []string) bool {
	for _, p := range procs {
		if strings.HasSuffix(p, " ffmpeg") {
			return true
		}
	}
	return false
}
