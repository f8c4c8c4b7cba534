package app_test

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/testkit/audiofixture"
	"github.com/butakero/butakero/platform/testkit/loopback"
	"github.com/butakero/butakero/services/notifier/notifier"
	"github.com/nats-io/nats.go/jetstream"
)

// receiver is a webhook receiver on loopback that verifies every delivery
// the way the Standard Webhooks specification says a consumer does, and
// answers status (after failFirst 500s per webhook-id).
type receiver struct {
	t         *testing.T
	key       []byte
	failFirst int
	status    int
	srv       *httptest.Server

	mu       sync.Mutex
	tries    map[string]int      // webhook-id → tries
	accepted map[string][]string // operation id → webhook-ids answered 2xx
	types    map[string]string   // operation id → payload type
	bodies   map[string]string   // webhook-id → the body of its first try
	bad      []string
}

func newReceiver(t *testing.T, key []byte, failFirst, status int) *receiver {
	r := &receiver{t: t, key: key, failFirst: failFirst, status: status, tries: map[string]int{},
		accepted: map[string][]string{}, types: map[string]string{}, bodies: map[string]string{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

// verify is the specification's check: the three headers, a timestamp
// within five minutes, and one of the signatures equal to
// base64(HMAC-SHA256(key, id.timestamp.body)), compared in constant time.
func (r *receiver) verify(h http.Header, body []byte) error {
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return fmt.Errorf("missing headers: id %q timestamp %q signature %q", id, ts, sigs)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute {
		return fmt.Errorf("timestamp %q is not within five minutes of now", ts)
	}
	mac := hmac.New(sha256.New, r.key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	want := mac.Sum(nil)
	for _, s := range strings.Fields(sigs) {
		version, sig, _ := strings.Cut(s, ",")
		got, err := base64.StdEncoding.DecodeString(sig)
		if version == "v1" && err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return fmt.Errorf("no valid v1 signature in %q", sigs)
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.verify(req.Header, body); err != nil || req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/json" {
		r.bad = append(r.bad, fmt.Sprintf("%s %s: %v", req.Method, req.Header.Get("Content-Type"), err))
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	id := req.Header.Get("webhook-id")
	r.tries[id]++
	if first, ok := r.bodies[id]; !ok {
		r.bodies[id] = string(body)
	} else if first != string(body) {
		r.bad = append(r.bad, fmt.Sprintf("%s: the body changed between tries", id))
	}
	if r.tries[id] <= r.failFirst {
		http.Error(w, "try again", http.StatusInternalServerError)
		return
	}
	var p notifier.Payload
	if err := json.Unmarshal(body, &p); err != nil {
		r.bad = append(r.bad, fmt.Sprintf("%s: %v", id, err))
	}
	if r.status/100 == 2 {
		r.accepted[p.Data.OperationID] = append(r.accepted[p.Data.OperationID], id)
		r.types[p.Data.OperationID] = p.Type
	}
	w.WriteHeader(r.status)
}

func (r *receiver) snapshot(f func(r *receiver)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(r)
}

// TestWebhooks runs the all-in-one with two webhook receivers on
// loopback: one answers 500 twice to every delivery before 200, the other
// always 400. Every final outcome (success, failed, cancelled) reaches the
// first exactly once, verified with the specification's algorithm, with
// the same webhook-id and body on every try, even though Butakero is
// restarted between the tries of the first; the second gets each once,
// never retried.
func TestWebhooks(t *testing.T) {
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	secret := "whsec_" + base64.StdEncoding.EncodeToString(raw)
	flaky := newReceiver(t, raw, 2, http.StatusNoContent)
	refusing := newReceiver(t, raw, 0, http.StatusBadRequest)

	media := t.TempDir()
	audiofixture.Make(t, media, audiofixture.M4A("short.m4a", 3*time.Second))
	audiofixture.Make(t, media, audiofixture.Spec{Name: "hour.wav", Duration: time.Hour, Args: []string{"-c:a", "pcm_s16le", "-ar", "8000", "-ac", "1"}})
	if err := os.WriteFile(filepath.Join(media, "corrupt.mp3"), []byte(strings.Repeat("not audio at all ", 4096)), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := audiofixture.Serve(t, media)
	dataDir, natsAddr := t.TempDir(), loopback.Addr(t)
	env := map[string]string{
		"WEBHOOK_URL":           flaky.srv.URL + "/hooks?token=abc," + refusing.srv.URL + "/hooks",
		"WEBHOOK_SECRET":        secret,
		"WEBHOOK_ALLOWED_HOSTS": "127.0.0.1:*",
		"MAX_ATTEMPTS":          "1",
		"NATS_LISTEN":           natsAddr,
		"NATS_TOKEN":            natsToken,
	}

	first := start(t, dataDir, env)
	success := first.createOperation(t, srv.URL("short.m4a"))
	waitFor(t, "the first try of the success's delivery", 2*time.Minute, func() bool {
		n := 0
		flaky.snapshot(func(r *receiver) { n = len(r.tries) })
		return n > 0
	})
	stopping := time.Now()
	if err := first.stop(); err != nil {
		t.Fatal(err)
	}
	flaky.snapshot(func(r *receiver) {
		// The delivery that succeeds is the restarted process's.
		if len(r.accepted) != 0 {
			t.Fatalf("the delivery was accepted before the restart (the stop took %s)", time.Since(stopping))
		}
	})
	in := start(t, dataDir, env)
	failed := in.createOperation(t, srv.URL("corrupt.mp3"))
	cancelled := in.createOperation(t, srv.URL("hour.wav"))
	if code, body := in.cancel(t, cancelled); code != http.StatusAccepted {
		t.Fatalf("DELETE: %d %s", code, body)
	}
	want := map[string]string{success: "operation.success", failed: "operation.failed", cancelled: "operation.cancelled"}
	for op, typ := range want {
		st := in.waitV1Final(t, op, 2*time.Minute)
		if "operation."+st.Status != typ {
			t.Fatalf("operation %s ended %q (%s), want %s", op, st.Status, st.Message, typ)
		}
	}

	js := connectJS(t, natsAddr)
	for _, r := range []*receiver{flaky, refusing} {
		name := notifier.ConsumerName(strings.Split(env["WEBHOOK_URL"], ",")[map[*receiver]int{flaky: 0, refusing: 1}[r]])
		waitFor(t, "every delivery to "+r.srv.URL+" to end", 2*time.Minute, func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, err := js.Consumer(ctx, events.StreamName, name)
			if err != nil {
				return false
			}
			info, err := c.Info(ctx)
			return err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.Delivered.Stream > 0 && deliveredAll(r, want)
		})
	}

	flaky.snapshot(func(r *receiver) {
		for _, b := range r.bad {
			t.Errorf("flaky receiver: %s", b)
		}
		for op, typ := range want {
			ids := r.accepted[op]
			if len(ids) != 1 {
				t.Errorf("%s (%s): accepted %d deliveries, want exactly 1", op, typ, len(ids))
				continue
			}
			if r.types[op] != typ {
				t.Errorf("%s: type %q, want %q", op, r.types[op], typ)
			}
			if r.tries[ids[0]] != 3 {
				t.Errorf("%s: %d tries with webhook-id %s, want 3 (two 500s, then 204)", op, r.tries[ids[0]], ids[0])
			}
		}
		if len(r.tries) != len(want) {
			t.Errorf("%d webhook-ids, want %d (one per outcome): %v", len(r.tries), len(want), r.tries)
		}
	})
	refusing.snapshot(func(r *receiver) {
		for _, b := range r.bad {
			t.Errorf("refusing receiver: %s", b)
		}
		if len(r.tries) != len(want) {
			t.Errorf("refusing receiver got %d webhook-ids, want %d", len(r.tries), len(want))
		}
		for id, n := range r.tries {
			if n != 1 {
				t.Errorf("a 400 was retried: %s tried %d times", id, n)
			}
		}
	})
	if n := in.metric(t, `butakero_webhook_deliveries_total{outcome="rejected"}`); n < 2 {
		t.Errorf("rejected deliveries counted: %v, want the 400s after the restart", n)
	}
	if n := in.metric(t, `butakero_webhook_deliveries_total{outcome="delivered"}`); n != 3 {
		t.Errorf("delivered deliveries counted: %v, want 3", n)
	}
}

// deliveredAll reports whether r has answered a try for every operation
// of want: accepted (a 2xx receiver) or tried (a refusing one).
func deliveredAll(r *receiver, want map[string]string) bool {
	done := true
	r.snapshot(func(r *receiver) {
		if r.status/100 == 2 {
			done = len(r.accepted) == len(want)
			return
		}
		done = len(r.tries) == len(want)
	})
	return done
}

// TestWebhookURLRemoved: an operator removes one of two WEBHOOK_URLs and
// restarts. The notifier deletes the removed URL's consumer at start and
// keeps the other's, which still delivers; consumers that are not its own
// (the stages', one named under its prefix but made by someone else) are
// left alone.
func TestWebhookURLRemoved(t *testing.T) {
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	kept := newReceiver(t, raw, 0, http.StatusNoContent)
	removed := newReceiver(t, raw, 0, http.StatusNoContent)
	media := t.TempDir()
	audiofixture.Make(t, media, audiofixture.M4A("short.m4a", 2*time.Second))
	srv := audiofixture.Serve(t, media)
	dataDir, natsAddr := t.TempDir(), loopback.Addr(t)
	keptURL, removedURL := kept.srv.URL+"/hooks", removed.srv.URL+"/hooks"
	env := map[string]string{
		"WEBHOOK_URL":           keptURL + "," + removedURL,
		"WEBHOOK_SECRET":        "whsec_" + base64.StdEncoding.EncodeToString(raw),
		"WEBHOOK_ALLOWED_HOSTS": "127.0.0.1:*",
		"NATS_LISTEN":           natsAddr,
		"NATS_TOKEN":            natsToken,
	}
	has := func(js jetstream.JetStream, name string) bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := js.Consumer(ctx, events.StreamName, name)
		if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			t.Fatalf("consumer %s: %v", name, err)
		}
		return err == nil
	}

	first := start(t, dataDir, env)
	js := connectJS(t, natsAddr)
	waitFor(t, "both URLs' consumers", time.Minute, func() bool {
		return has(js, notifier.ConsumerName(keptURL)) && has(js, notifier.ConsumerName(removedURL))
	})
	// Someone else's consumers under the notifier's prefix.
	others := []string{"notifier-audit", "notifier-0123456789abcdef"}
	for _, name := range others {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := js.CreateConsumer(ctx, events.StreamName, jetstream.ConsumerConfig{Durable: name, Description: "an audit trail",
			AckPolicy: jetstream.AckExplicitPolicy, FilterSubjects: notifier.FilterSubjects()})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := first.stop(); err != nil {
		t.Fatal(err)
	}

	env["WEBHOOK_URL"] = keptURL
	in := start(t, dataDir, env)
	js = connectJS(t, natsAddr)
	waitFor(t, "the removed URL's consumer to be deleted", time.Minute, func() bool {
		return !has(js, notifier.ConsumerName(removedURL))
	})
	for _, name := range append(others, notifier.ConsumerName(keptURL), events.ConsumerFetcher, events.ConsumerEncoder) {
		if !has(js, name) {
			t.Errorf("consumer %s was deleted, want it kept", name)
		}
	}

	op := in.createOperation(t, srv.URL("short.m4a"))
	if st := in.waitV1Final(t, op, 2*time.Minute); st.Status != "success" {
		t.Fatalf("operation ended %q: %s", st.Status, st.Message)
	}
	waitFor(t, "the kept URL's delivery", time.Minute, func() bool {
		n := 0
		kept.snapshot(func(r *receiver) { n = len(r.accepted[op]) })
		return n == 1
	})
	removed.snapshot(func(r *receiver) {
		if len(r.tries) != 0 {
			t.Errorf("the removed URL got %d deliveries, want none", len(r.tries))
		}
	})
}
