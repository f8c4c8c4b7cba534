package gateway_test

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/projection"
	"github.com/butakero/butakero/platform/runtime/config"
	"github.com/butakero/butakero/platform/runtime/metrics"
	"github.com/butakero/butakero/platform/store/kvstore"
	"github.com/butakero/butakero/platform/store/objstore"
	"github.com/butakero/butakero/platform/testkit/natstest"
	"github.com/butakero/butakero/services/gateway/gateway"
	"github.com/gofiber/fiber/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// startWait is short so that the "nothing resolved" cases stay quick, and
// long next to an in-process resolver's round trip.
const startWait = 2 * time.Second

// harness is a gateway served by Run on 127.0.0.1:0 against a real
// embedded JetStream, with its own NATS connection (so a test can cut it)
// and stores the test writes through the test's connection.
type harness struct {
	env     *natstest.Env
	url     string
	gwNC    *nats.Conn
	store   *kvstore.Store
	blobs   *objstore.Store
	client  *http.Client
	metrics *metrics.Metrics
}

func start(t *testing.T, apiKeys ...string) *harness {
	t.Helper()
	return startWith(t, config.Config{APIKeys: apiKeys})
}

// startWith starts a gateway with cfg (ShutdownGrace defaults to 5 s).
func startWith(t *testing.T, cfg config.Config) *harness {
	t.Helper()
	return startClocked(t, cfg, nil)
}

// startClocked is startWith with now as the rate limits' clock.
func startClocked(t *testing.T, cfg config.Config, now func() time.Time) *harness {
	t.Helper()
	return startWaiting(t, cfg, now, startWait)
}

// startWaiting is startClocked with wait as the seed's wait for a song id.
func startWaiting(t *testing.T, cfg config.Config, now func() time.Time, wait time.Duration) *harness {
	t.Helper()
	env := natstest.Start(t)
	gwNC, err := env.Server.Connect("gateway")
	if err != nil {
		t.Fatal(err)
	}
	return serveWaiting(t, cfg, now, env, gwNC, wait)
}

// serve runs a gateway on gwNC against the server (or cluster) env is
// connected to; cfg.StreamReplicas is the stores' replicas too.
func serve(t *testing.T, cfg config.Config, now func() time.Time, env *natstest.Env, gwNC *nats.Conn) *harness {
	t.Helper()
	return serveWaiting(t, cfg, now, env, gwNC, startWait)
}

// serveWaiting is serve with wait as the seed's wait for a song id.
func serveWaiting(t *testing.T, cfg config.Config, now func() time.Time, env *natstest.Env, gwNC *nats.Conn, wait time.Duration) *harness {
	t.Helper()
	if cfg.ShutdownGrace == 0 {
		cfg.ShutdownGrace = 5 * time.Second
	}
	replicas := max(cfg.StreamReplicas, 1)
	m := metrics.New(metrics.NewRegistry())
	// A bound of the test's own rather than nats.go's 5 s per request: in
	// a cluster a store's first open waits for its new stream's replicas
	// to elect a leader.
	ctx, cancelOpen := context.WithTimeout(context.Background(), time.Minute)
	defer cancelOpen()
	t.Cleanup(gwNC.Close)
	gwJS, err := jetstream.New(gwNC)
	if err != nil {
		t.Fatal(err)
	}
	gwStore := natstest.Open(ctx, t, kvstore.Open, gwJS, replicas)
	gwBlobs := natstest.Open(ctx, t, objstore.Open, gwJS, replicas)
	store := natstest.Open(ctx, t, kvstore.Open, env.JS, replicas)
	blobs := natstest.Open(ctx, t, objstore.Open, env.JS, replicas)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}

	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- gateway.Run(runCtx, gateway.Deps{
			NC:        gwNC,
			JS:        gwJS,
			Store:     gwStore,
			Blobs:     gwBlobs,
			Metrics:   m,
			Config:    cfg,
			Log:       slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
			Listener:  ln,
			StartWait: wait,
			// A stored song's POST may wait the whole startWait for its
			// end (TestStartStoredSong).
			StoredWait: wait,
			Now:        now,
		})
	}()
	client := &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second}
	t.Cleanup(func() {
		client.CloseIdleConnections()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run returned %v after cancel, want nil", err)
		}
	})
	return &harness{env: env, url: "http://" + ln.Addr().String(), gwNC: gwNC, store: store, blobs: blobs, client: client, metrics: m}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// read reads res's body, closing it, into a response.
func read(t *testing.T, res *http.Response) response {
	t.Helper()
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return response{status: res.StatusCode, header: res.Header, body: body}
}

func (h *harness) do(t *testing.T, method, path string, header map[string]string) response {
	t.Helper()
	return h.doBody(t, method, path, "", header)
}

// wantError checks an error response: status, JSON content and code.
func wantError(t *testing.T, r response, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d (body %s)", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want JSON", ct)
	}
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("error body %s: %v", r.body, err)
	}
	if e.Error.Code != code || e.Error.Message == "" {
		t.Errorf("error %+v, want code %q and a message", e.Error, code)
	}
}

// decode checks that r has the status want and decodes its JSON body
// into v.
func (r response) decode(t *testing.T, want int, v any) {
	t.Helper()
	if r.status != want {
		t.Fatalf("status %d, want %d (body %s)", r.status, want, r.body)
	}
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("body %s: %v", r.body, err)
	}
}

// requestedCount is how many song.requested events the stream holds for
// subject filter (one operation, or "*" for all).
func requestedCount(t *testing.T, env *natstest.Env, opID string) uint64 {
	t.Helper()
	filter := events.Subject(events.KindSongRequested, opID)
	info, err := env.Stream.Info(context.Background(), jetstream.WithSubjectFilter(filter))
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n
}

// fakeStage stands in for a stage service: it consumes with the stage's
// durable consumer and publishes what answer returns for each message
// (nothing when ok is false), then acks it.
func fakeStage(t *testing.T, env *natstest.Env, consumer string, answer func(parent events.Envelope, ev events.Event) (next events.Envelope, ok bool, err error)) {
	t.Helper()
	ctx := context.Background()
	cons, err := events.EnsureConsumer(ctx, env.JS, consumer, 3)
	if err != nil {
		t.Fatal(err)
	}
	pub := events.NewPublisher(env.JS)
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		parent, ev, err := events.Decode(msg.Data())
		if err != nil {
			t.Errorf("fake %s: %v", consumer, err)
			_ = msg.Term()
			return
		}
		next, ok, err := answer(parent, ev)
		if err == nil && ok {
			_, err = pub.Publish(ctx, next)
		}
		if err != nil {
			t.Errorf("fake %s: %v", consumer, err)
		}
		_ = msg.Ack()
	})
	if err != nil {
		t.Fatal(err)
	}
	// Wait for a handler in flight: the gateway may have seen its event
	// (on core NATS) before the stream acknowledged it.
	t.Cleanup(func() {
		cc.Stop()
		<-cc.Closed()
	})
}

// fakeResolver stands in for the resolver service: it answers
// song.requested by query: video.resolved for a known one,
// operation.failed for "no such song", nothing for anything else.
func fakeResolver(t *testing.T, env *natstest.Env, known map[string]string) {
	t.Helper()
	fakeStage(t, env, events.ConsumerResolver, func(parent events.Envelope, ev events.Event) (events.Envelope, bool, error) {
		query := ev.(events.SongRequested).Query
		switch id, ok := known[query]; {
		case ok:
			next, err := events.Next(parent, id, events.VideoResolved{Song: events.Song{ID: id, Source: "youtube"}})
			return next, true, err
		case query == "no such song":
			next, err := events.Next(parent, "", events.OperationFailed{Stage: "resolve", Code: events.CodeNotFound, Message: "nothing found", Attempts: 1})
			return next, true, err
		}
		return events.Envelope{}, false, nil
	})
}

func TestStart(t *testing.T) {
	h := start(t)
	fakeResolver(t, h.env, map[string]string{
		"rick astley": "dQw4w9WgXcQ",
		"https://www.youtube.com/watch?v=9bZkp7q19f0": "9bZkp7q19f0",
		"canción ñandú 🎵":                             "abcdefghijk",
	})
	// wantStatus and wantStage are what the status says with no recorder
	// running: the stream's events folded by the recorder's rules.
	tests := []struct {
		name       string
		song       string
		wantQuery  string
		wantSong   string
		wantStatus string
		wantStage  string
	}{
		{name: "title resolved in time", song: "rick astley", wantQuery: "rick astley", wantSong: "dQw4w9WgXcQ", wantStatus: "iniciando", wantStage: "resolved"},
		{name: "URL resolved in time", song: "https://www.youtube.com/watch?v=9bZkp7q19f0", wantQuery: "https://www.youtube.com/watch?v=9bZkp7q19f0", wantSong: "9bZkp7q19f0", wantStatus: "iniciando", wantStage: "resolved"},
		{name: "query trimmed", song: "  rick astley \t", wantQuery: "rick astley", wantSong: "dQw4w9WgXcQ", wantStatus: "iniciando", wantStage: "resolved"},
		{name: "non-ASCII title", song: "canción ñandú 🎵", wantQuery: "canción ñandú 🎵", wantSong: "abcdefghijk", wantStatus: "iniciando", wantStage: "resolved"},
		{name: "operation failed before resolving", song: "no such song", wantQuery: "no such song", wantSong: "", wantStatus: "failed", wantStage: "failed"},
		{name: "resolver silent past the wait", song: "nobody answers", wantQuery: "nobody answers", wantSong: "", wantStatus: "iniciando", wantStage: "requested"},
		{name: "512 bytes accepted", song: strings.Repeat("a", 512), wantQuery: strings.Repeat("a", 512), wantSong: "", wantStatus: "iniciando", wantStage: "requested"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := h.do(t, http.MethodPost, "/api/audio/start?song="+url.QueryEscape(tc.song), nil)
			var got struct {
				OperationID *string `json:"operation_id"`
				SongID      *string `json:"song_id"`
			}
			r.decode(t, http.StatusOK, &got)
			if got.OperationID == nil || got.SongID == nil {
				t.Fatalf("body %s: want operation_id and song_id", r.body)
			}
			opID := *got.OperationID
			if err := events.ValidOperationID(opID); err != nil {
				t.Fatalf("operation_id %q: %v", opID, err)
			}
			if *got.SongID != tc.wantSong {
				t.Errorf("song_id %q, want %q", *got.SongID, tc.wantSong)
			}

			if n := requestedCount(t, h.env, opID); n != 1 {
				t.Errorf("stream holds %d song.requested for the operation, want 1", n)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			env, ev := h.env.Next(ctx, t, events.KindSongRequested, opID)
			if q := ev.(events.SongRequested).Query; q != tc.wantQuery {
				t.Errorf("song.requested query %q, want %q", q, tc.wantQuery)
			}
			if env.SongID != "" {
				t.Errorf("song.requested song id %q, want none", env.SongID)
			}

			// No recorder runs here: the status comes from the stream,
			// which holds what the fake resolver published before the
			// answer (the song id, or the failure).
			st := h.do(t, http.MethodGet, "/api/audio/status?operation_id="+opID, nil)
			var sb struct {
				Status map[string]any `json:"status"`
			}
			st.decode(t, http.StatusOK, &sb)
			want := map[string]any{"id": opID, "status": tc.wantStatus, "stage": tc.wantStage, "attempts": 1.0, "success": false}
			for k, v := range want {
				if sb.Status[k] != v {
					t.Errorf("status.%s = %v, want %v", k, sb.Status[k], v)
				}
			}
		})
	}
}

func TestStartRejectsMalformedInput(t *testing.T) {
	h := start(t)
	tests := []struct {
		name   string
		method string
		query  string
		status int
		code   string
	}{
		{name: "song missing", method: http.MethodPost, query: "", status: 400, code: "bad_request"},
		{name: "song empty", method: http.MethodPost, query: "?song=", status: 400, code: "bad_request"},
		{name: "song blank", method: http.MethodPost, query: "?song=%20%09%20", status: 400, code: "bad_request"},
		{name: "song over 512 bytes", method: http.MethodPost, query: "?song=" + strings.Repeat("a", 513), status: 400, code: "bad_request"},
		{name: "song over 512 bytes in runes under 512", method: http.MethodPost, query: "?song=" + url.QueryEscape(strings.Repeat("ñ", 257)), status: 400, code: "bad_request"},
		{name: "invalid UTF-8", method: http.MethodPost, query: "?song=abc%FF%FE", status: 400, code: "bad_request"},
		{name: "replacement character", method: http.MethodPost, query: "?song=rick%EF%BF%BD", status: 400, code: "bad_request"},
		{name: "newline inside", method: http.MethodPost, query: "?song=rick%0Aastley", status: 400, code: "bad_request"},
		{name: "NUL inside", method: http.MethodPost, query: "?song=rick%00astley", status: 400, code: "bad_request"},
		{name: "DEL inside", method: http.MethodPost, query: "?song=rick%7Fastley", status: 400, code: "bad_request"},
		{name: "GET not allowed", method: http.MethodGet, query: "?song=rick", status: 405, code: "method_not_allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := h.do(t, tc.method, "/api/audio/start"+tc.query, nil)
			wantError(t, r, tc.status, tc.code)
			if n := requestedCount(t, h.env, "*"); n != 0 {
				t.Errorf("stream holds %d song.requested, want none", n)
			}
		})
	}
}

func TestStatus(t *testing.T) {
	h := start(t)
	ctx := context.Background()
	done := projection.Operation{
		ID: "op-done", SongID: "dQw4w9WgXcQ", Status: projection.StatusSuccess,
		Message: "Procesamiento completado", Data: "nats://objects/butakero-blobs/audio/dQw4w9WgXcQ.dca",
		ProcessingDate: "2026-01-02T03:04:05Z", Success: true, Attempts: 1, Stage: projection.StageStored,
		Query: "rick astley", LastSeq: 5,
	}
	failed := projection.Operation{
		ID: "op-failed", SongID: "", Status: projection.StatusFailed,
		Message: "nothing found", ProcessingDate: "2026-01-02T03:04:05Z", Attempts: 3, Failures: 3,
		Stage: projection.StageFailed, ErrorCode: string(events.CodeNotFound), LastSeq: 4,
	}
	for _, op := range []projection.Operation{done, failed} {
		if err := h.store.PutOperation(ctx, op); err != nil {
			t.Fatal(err)
		}
	}
	lagging := events.NewID()
	env, err := events.New(lagging, "", events.SongRequested{Query: "rick astley"})
	if err != nil {
		t.Fatal(err)
	}
	h.env.Publish(t, env)

	// Finished in the stream, not in the projection: the recorder has not
	// caught up, or the record expired after OPERATION_TTL. And one whose
	// projection stopped at song.requested while the stream went on.
	history := func(opID string) []events.Envelope {
		req, err := events.New(opID, "", events.SongRequested{Query: "rick astley"})
		if err != nil {
			t.Fatal(err)
		}
		song := events.Song{ID: "dQw4w9WgXcQ", Source: "youtube"}
		res, _ := events.Next(req, song.ID, events.VideoResolved{Song: song})
		up, _ := events.Next(res, song.ID, events.UploadDone{Song: song, Key: "audio/dQw4w9WgXcQ.dca",
			Location: "nats://objects/butakero-blobs/audio/dQw4w9WgXcQ.dca", Size: 10, Cached: true})
		up.Time = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		return []events.Envelope{req, res, up}
	}
	unprojected, behind := events.NewID(), events.NewID()
	for _, e := range history(unprojected) {
		h.env.Publish(t, e)
	}
	for i, e := range history(behind) {
		ack, err := events.NewPublisher(h.env.JS).Publish(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if err := h.store.PutOperation(ctx, projection.Operation{ID: behind, Status: projection.StatusInProgress,
				Stage: projection.StageRequested, Query: "rick astley", Attempts: 1, LastSeq: ack.Sequence}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A parent in progress takes its status from its children: one of
	// its two is stored.
	parent := events.NewID()
	preq, err := events.New(parent, "", events.SongRequested{Query: "https://www.youtube.com/playlist?list=PLx"})
	if err != nil {
		t.Fatal(err)
	}
	kids := []string{events.NewID(), events.NewID()}
	listed, _ := events.Next(preq, "", events.PlaylistResolved{Source: "youtube", ID: "PLx", Children: []events.PlaylistChild{
		{OperationID: kids[0], Position: 0, Query: "https://www.youtube.com/watch?v=dQw4w9WgXcQ"},
		{OperationID: kids[1], Position: 1, Query: "https://www.youtube.com/watch?v=9bZkp7q19f0"}}})
	h.env.Publish(t, preq)
	h.env.Publish(t, listed)
	for _, e := range history(kids[0]) {
		h.env.Publish(t, e)
	}
	doneFromStream := func(id string) map[string]any {
		return map[string]any{"id": id, "song_id": "dQw4w9WgXcQ", "status": "success", "message": "DCA stored",
			"data": "nats://objects/butakero-blobs/audio/dQw4w9WgXcQ.dca", "processing_date": "2026-01-02T03:04:05Z",
			"success": true, "attempts": 1.0, "failures": 0.0, "stage": "stored"}
	}

	seed := []string{"id", "song_id", "status", "message", "data", "processing_date", "success", "attempts", "failures", "stage"}
	tests := []struct {
		name   string
		query  string
		status int
		code   string         // error code when status is not 200
		want   map[string]any // expected status object, exactly
	}{
		{name: "success", query: "?operation_id=op-done", status: 200, want: map[string]any{
			"id": "op-done", "song_id": "dQw4w9WgXcQ", "status": "success", "message": "Procesamiento completado",
			"data": "nats://objects/butakero-blobs/audio/dQw4w9WgXcQ.dca", "processing_date": "2026-01-02T03:04:05Z",
			"success": true, "attempts": 1.0, "failures": 0.0, "stage": "stored"}},
		{name: "success with its song id", query: "?operation_id=op-done&song_id=dQw4w9WgXcQ", status: 200, want: map[string]any{
			"id": "op-done", "song_id": "dQw4w9WgXcQ", "status": "success", "message": "Procesamiento completado",
			"data": "nats://objects/butakero-blobs/audio/dQw4w9WgXcQ.dca", "processing_date": "2026-01-02T03:04:05Z",
			"success": true, "attempts": 1.0, "failures": 0.0, "stage": "stored"}},
		{name: "failed", query: "?operation_id=op-failed", status: 200, want: map[string]any{
			"id": "op-failed", "song_id": "", "status": "failed", "message": "nothing found", "data": "",
			"processing_date": "2026-01-02T03:04:05Z", "success": false, "attempts": 3.0, "failures": 3.0,
			"stage": "failed", "error_code": "not_found"}},
		{name: "recorder lagging", query: "?operation_id=" + lagging, status: 200},
		{name: "finished in the stream, not projected", query: "?operation_id=" + unprojected, status: 200, want: doneFromStream(unprojected)},
		{name: "projection behind the stream", query: "?operation_id=" + behind, status: 200, want: doneFromStream(behind)},
		{name: "a parent in progress", query: "?operation_id=" + parent, status: 200, want: map[string]any{
			"id": parent, "song_id": "", "status": "iniciando", "message": "1 of 2 songs done", "data": "",
			"processing_date": "", "success": false, "attempts": 1.0, "failures": 0.0, "stage": "requested"}},
		{name: "another song id", query: "?operation_id=op-done&song_id=9bZkp7q19f0", status: 404, code: "not_found"},
		{name: "unknown operation", query: "?operation_id=" + events.NewID(), status: 404, code: "not_found"},
		{name: "operation_id missing", query: "", status: 400, code: "bad_request"},
		{name: "operation_id empty", query: "?operation_id=", status: 400, code: "bad_request"},
		{name: "operation_id with a dot", query: "?operation_id=a.b", status: 400, code: "bad_request"},
		{name: "operation_id with a wildcard", query: "?operation_id=%2A", status: 400, code: "bad_request"},
		{name: "operation_id too long", query: "?operation_id=" + strings.Repeat("a", 65), status: 400, code: "bad_request"},
		{name: "song_id malformed", query: "?operation_id=op-done&song_id=a%20b", status: 400, code: "bad_request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := h.do(t, http.MethodGet, "/api/audio/status"+tc.query, nil)
			if tc.status != http.StatusOK {
				wantError(t, r, tc.status, tc.code)
				return
			}
			var got struct {
				Status map[string]any `json:"status"`
			}
			r.decode(t, http.StatusOK, &got)
			for _, k := range seed {
				if _, ok := got.Status[k]; !ok {
					t.Errorf("status object lacks %q: %s", k, r.body)
				}
			}
			if tc.want == nil {
				if got.Status["status"] != "iniciando" || got.Status["stage"] != "requested" || got.Status["attempts"] != 1.0 {
					t.Errorf("lagging operation: %s, want iniciando, requested, 1 attempt", r.body)
				}
				return
			}
			if len(got.Status) != len(tc.want) {
				t.Errorf("status object has keys %v, want %v", slices.Sorted(maps.Keys(got.Status)), slices.Sorted(maps.Keys(tc.want)))
			}
			for k, v := range tc.want {
				if got.Status[k] != v {
					t.Errorf("status.%s = %#v, want %#v", k, got.Status[k], v)
				}
			}
		})
	}
}

func TestDCA(t *testing.T) {
	h := start(t)
	ctx := context.Background()
	// More than one object store chunk (128 KiB), so ranges cross chunks.
	dca := make([]byte, 300_000)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range dca {
		dca[i] = byte(rng.UintN(256))
	}
	copy(dca, "DCA1")
	// Written in uneven pieces, the object store's chunks are uneven too,
	// as the encoder's are: a Range finds its chunk by the chunks' sizes.
	uneven := io.MultiReader(bytes.NewReader(dca[:1000]), bytes.NewReader(dca[1000:150_000]), bytes.NewReader(dca[150_000:]))
	info, err := h.blobs.Put(ctx, "audio/dQw4w9WgXcQ.dca", "audio/x-dca", nil, uneven)
	if err != nil {
		t.Fatal(err)
	}
	etag := `"` + info.Digest + `"`
	songs := []projection.Song{
		{ID: "dQw4w9WgXcQ", Title: "Never Gonna Give You Up", DCAKey: "audio/dQw4w9WgXcQ.dca", DCASize: int64(len(dca))},
		{ID: "notencoded1", Title: "Not yet"},
		{ID: "blobmissing", DCAKey: "audio/blobmissing.dca"},
	}
	for _, s := range songs {
		if err := h.store.PutSong(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	size := len(dca)
	tests := []struct {
		name         string
		method       string
		path         string
		header       map[string]string
		status       int
		code         string // error code for error statuses
		wantBody     []byte
		contentRange string
		headLength   int // HEAD: the Content-Length of the GET
	}{
		{name: "whole DCA", path: "/v1/songs/dQw4w9WgXcQ/dca", status: 200, wantBody: dca},
		{name: "range inside", path: "/v1/songs/dQw4w9WgXcQ/dca", header: map[string]string{"Range": "bytes=200000-200099"},
			status: 206, wantBody: dca[200000:200100], contentRange: "bytes 200000-200099/300000"},
		{name: "range from the start", path: "/v1/songs/dQw4w9WgXcQ/dca", header: map[string]string{"Range": "bytes=0-3"},
			status: 206, wantBody: []byte("DCA1"), contentRange: "bytes 0-3/300000"},
		{name: "open-ended range", path: "/v1/songs/dQw4w9WgXcQ/dca", header: map[string]string{"Range": "bytes=299990-"},
			status: 206, wantBody: dca[299990:], contentRange: "bytes 299990-299999/300000"},
		{name: "suffix range", path: "/v1/songs/dQw4w9WgXcQ/dca", header: map[string]string{"Range": "bytes=-5"},
			status: 206, wantBody: dca[size-5:], contentRange: "bytes 299995-299999/300000"},
		{name: "range across uneven chunks", path: "/v1/songs/dQw4w9WgXcQ/dca", header: map[string]string{"Range": "bytes=990-131999"},
			status: 206, wantBody: dca[990:132000], contentRange: "bytes 990-131999/300000"},
		{name: "HEAD of a range", method: http.MethodHead, path: "/v1/songs/dQw4w9WgXcQ/dca", header: map[string]string{"Range": "bytes=-100"},
			status: 206, wantBody: []byte{}, contentRange: "bytes 299900-299999/300000", headLength: 100},
		{name: "range past the end is clamped", path: "/v1/songs/dQw4w9WgXcQ/dca", header: map[string]string{"Range": "bytes=131000-999999999"},
			status: 206, wantBody: dca[131000:], contentRange: "bytes 131000-299999/300000"},
		{name: "range beyond the blob", path: "/v1/songs/dQw4w9WgXcQ/dca", header: map[string]string{"Range": "bytes=300000-"},
			status: 416, code: "range_not_satisfiable", contentRange: "bytes */300000"},
		{name: "empty suffix range", path: "/v1/songs/dQw4w9WgXcQ/dca", header: map[string]string{"Range": "bytes=-0"},
			status: 416, code: "range_not_satisfiable", contentRange: "bytes */300000"},
		{name: "several ranges send it all", path: "/v1/songs/dQw4w9WgXcQ/dca", header: map[string]string{"Range": "bytes=0-1,5-6"},
			status: 200, wantBody: dca},
		{name: "stale If-Range sends it all", path: "/v1/songs/dQw4w9WgXcQ/dca", header: map[string]string{"Range": "bytes=0-1", "If-Range": `"old"`},
			status: 200, wantBody: dca},
		{name: "current If-Range honours the range", path: "/v1/songs/dQw4w9WgXcQ/dca", header: map[string]string{"Range": "bytes=0-1", "If-Range": etag},
			status: 206, wantBody: dca[:2], contentRange: "bytes 0-1/300000"},
		{name: "If-None-Match current", path: "/v1/songs/dQw4w9WgXcQ/dca", header: map[string]string{"If-None-Match": etag},
			status: 304, wantBody: []byte{}},
		{name: "HEAD", method: http.MethodHead, path: "/v1/songs/dQw4w9WgXcQ/dca", status: 200, wantBody: []byte{}, headLength: size},
		{name: "unknown song", path: "/v1/songs/unknownsong/dca", status: 404, code: "not_found"},
		{name: "song without a DCA", path: "/v1/songs/notencoded1/dca", status: 404, code: "not_found"},
		{name: "DCA missing from the store", path: "/v1/songs/blobmissing/dca", status: 404, code: "not_found"},
		{name: "malformed song id", path: "/v1/songs/a.b/dca", status: 400, code: "bad_request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method := cmp.Or(tc.method, http.MethodGet)
			r := h.do(t, method, tc.path, tc.header)
			if got := r.header.Get("Content-Range"); got != tc.contentRange {
				t.Errorf("Content-Range %q, want %q", got, tc.contentRange)
			}
			if tc.code != "" {
				wantError(t, r, tc.status, tc.code)
				return
			}
			if r.status != tc.status {
				t.Fatalf("status %d, want %d (body %.200s)", r.status, tc.status, r.body)
			}
			if !bytes.Equal(r.body, tc.wantBody) {
				t.Errorf("body: %d bytes, want %d (equal prefix: %v)", len(r.body), len(tc.wantBody), bytes.HasPrefix(tc.wantBody, r.body))
			}
			if got := r.header.Get("ETag"); got != etag {
				t.Errorf("ETag %q, want %q", got, etag)
			}
			// The song has no loudness yet: its header may gain it
			// (TestDCALoudnessInTheHeader), so caches revalidate.
			if got := r.header.Get("Cache-Control"); got != "public, no-cache" {
				t.Errorf("Cache-Control %q, want public, no-cache", got)
			}
			if tc.status == 304 {
				return
			}
			if got := r.header.Get("Content-Type"); got != "audio/x-dca" {
				t.Errorf("Content-Type %q, want audio/x-dca", got)
			}
			wantLen := len(tc.wantBody)
			if method == http.MethodHead {
				wantLen = tc.headLength
			}
			if got := r.header.Get("Content-Length"); got != strconv.Itoa(wantLen) {
				t.Errorf("Content-Length %q, want %d", got, wantLen)
			}
			if got := r.header.Get("Accept-Ranges"); got != "bytes" {
				t.Errorf("Accept-Ranges %q, want bytes", got)
			}
		})
	}
}

func TestReadyz(t *testing.T) {
	h := start(t)
	tests := []struct {
		name   string
		before func(t *testing.T)
		status int
		names  string // what a 503 must name
	}{
		{name: "connected", status: 200},
		{name: "NATS connection closed", before: func(*testing.T) { h.gwNC.Close() }, status: 503, names: "nats"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.before != nil {
				tc.before(t)
			}
			r := h.do(t, http.MethodGet, "/readyz", nil)
			if tc.status != http.StatusOK {
				wantError(t, r, tc.status, "not_ready")
				if !strings.Contains(string(r.body), tc.names) {
					t.Errorf("body %s does not name %q", r.body, tc.names)
				}
				return
			}
			if r.status != http.StatusOK || !strings.Contains(string(r.body), `"ok"`) {
				t.Errorf("readyz: %d %s, want 200 ok", r.status, r.body)
			}
		})
	}
	// Liveness does not depend on NATS.
	if r := h.do(t, http.MethodGet, "/healthz", nil); r.status != http.StatusOK || string(r.body) != `{"status":"ok"}` {
		t.Errorf("healthz: %d %s, want 200 {\"status\":\"ok\"}", r.status, r.body)
	}
}

func TestAPIKeys(t *testing.T) {
	h := start(t, "key-one", "key-two")
	unknown := "/api/audio/status?operation_id=" + events.NewID()
	tests := []struct {
		name   string
		method string
		path   string
		header map[string]string
		status int // 401 means refused; anything else got past the check
	}{
		{name: "no key", path: unknown, status: 401},
		{name: "wrong X-API-Key", path: unknown, header: map[string]string{"X-API-Key": "key-three"}, status: 401},
		{name: "prefix of a key", path: unknown, header: map[string]string{"X-API-Key": "key-"}, status: 401},
		{name: "X-API-Key", path: unknown, header: map[string]string{"X-API-Key": "key-two"}, status: 404},
		{name: "Bearer", path: unknown, header: map[string]string{"Authorization": "Bearer key-one"}, status: 404},
		{name: "bearer in lower case", path: unknown, header: map[string]string{"Authorization": "bearer key-one"}, status: 404},
		{name: "Basic is not Bearer", path: unknown, header: map[string]string{"Authorization": "Basic key-one"}, status: 401},
		{name: "wrong Bearer", path: unknown, header: map[string]string{"Authorization": "Bearer nope"}, status: 401},
		{name: "start without key", method: http.MethodPost, path: "/api/audio/start?song=rick", status: 401},
		{name: "v1 without key", path: "/v1/songs/dQw4w9WgXcQ/dca", status: 401},
		{name: "v1 with key", path: "/v1/songs/dQw4w9WgXcQ/dca", header: map[string]string{"X-API-Key": "key-one"}, status: 404},
		{name: "healthz open", path: "/healthz", status: 200},
		{name: "readyz open", path: "/readyz", status: 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := h.do(t, cmp.Or(tc.method, http.MethodGet), tc.path, tc.header)
			if tc.status == http.StatusUnauthorized {
				wantError(t, r, 401, "unauthorized")
				if r.header.Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
				return
			}
			if r.status != tc.status {
				t.Errorf("status %d, want %d (body %s)", r.status, tc.status, r.body)
			}
		})
	}
	if n := requestedCount(t, h.env, "*"); n != 0 {
		t.Errorf("stream holds %d song.requested after refused requests, want none", n)
	}
}

func TestErrorResponses(t *testing.T) {
	h := start(t)
	// Requests the server refuses before reading them whole are written by
	// hand, so that the client sends nothing the server leaves unread: a
	// close with unread data resets the connection under the response.
	bigHead := "GET /healthz HTTP/1.1\r\nHost: gateway\r\nX-Big: "
	bigHead += strings.Repeat("x", 16<<10-len(bigHead)) // the read buffer, full, with no end of headers
	tests := []struct {
		name   string
		method string
		path   string
		raw    string // sent as is instead of method and path
		status int
		code   string
	}{
		{name: "unknown route", method: http.MethodGet, path: "/nope", status: 404, code: "not_found"},
		{name: "unknown API route", method: http.MethodGet, path: "/api/nope", status: 404, code: "not_found"},
		{name: "wrong method", method: http.MethodDelete, path: "/healthz", status: 405, code: "method_not_allowed"},
		{name: "headers too large", raw: bigHead, status: 431, code: "headers_too_large"},
		{name: "body too large", raw: "POST /api/audio/start?song=rick HTTP/1.1\r\nHost: gateway\r\nContent-Length: 102400\r\n\r\n", status: 413, code: "payload_too_large"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.raw == "" {
				wantError(t, h.do(t, tc.method, tc.path, nil), tc.status, tc.code)
				return
			}
			conn, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := io.WriteString(conn, tc.raw); err != nil {
				t.Fatal(err)
			}
			res, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			wantError(t, read(t, res), tc.status, tc.code)
		})
	}
	if n := requestedCount(t, h.env, "*"); n != 0 {
		t.Errorf("stream holds %d song.requested, want none", n)
	}
}

// newApp is the gateway's fiber app (not served) on a fresh server and
// its stores, for tests that call the app itself or read its routes.
func newApp(t *testing.T) *fiber.App {
	t.Helper()
	env := natstest.Start(t)
	store := natstest.Open(context.Background(), t, kvstore.Open, env.JS, 1)
	blobs := natstest.Open(context.Background(), t, objstore.Open, env.JS, 1)
	app, err := gateway.New(t.Context(), gateway.Deps{NC: env.NC, JS: env.JS, Store: store, Blobs: blobs,
		Log: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	return app
}

func TestPanicIsInternalError(t *testing.T) {
	app := newApp(t)
	app.Get("/boom", func(*fiber.Ctx) error { panic("secret internal detail") })
	res, err := app.Test(httptest.NewRequest(http.MethodGet, "/boom", nil), -1)
	if err != nil {
		t.Fatal(err)
	}
	r := read(t, res)
	wantError(t, r, 500, "internal")
	if strings.Contains(string(r.body), "secret") {
		t.Errorf("500 body leaks the panic: %s", r.body)
	}
}
