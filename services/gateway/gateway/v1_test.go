package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/projection"
	"github.com/butakero/butakero/platform/runtime/config"
	"github.com/butakero/butakero/platform/testkit/natstest"
	"github.com/butakero/butakero/services/gateway/gateway"
	"github.com/fasthttp/websocket"
)

// doBody is do with a request body (none when body is "").
func (h *harness) doBody(t *testing.T, method, path, body string, header map[string]string) response {
	t.Helper()
	req, err := http.NewRequest(method, h.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := h.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return read(t, res)
}

// wantDial dials a WebSocket at url: with status 101 the upgrade must
// succeed; otherwise it must be refused with status and the API error
// code.
func wantDial(t *testing.T, url string, header http.Header, status int, code string) {
	t.Helper()
	conn, res, err := websocket.DefaultDialer.Dial(url, header)
	if status == 101 {
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		conn.Close()
		return
	}
	if err == nil {
		conn.Close()
		t.Fatalf("dial succeeded, want %d", status)
	}
	if res == nil {
		t.Fatalf("dial: %v, want an HTTP answer", err)
	}
	wantError(t, read(t, res), status, code)
}

func TestCreateOperation(t *testing.T) {
	h := start(t)
	fakeResolver(t, h.env, map[string]string{"rick astley": "dQw4w9WgXcQ", "gangnam style": "9bZkp7q19f0"})
	jsonCT := map[string]string{"Content-Type": "application/json"}
	with := func(k, v string) map[string]string {
		return map[string]string{"Content-Type": "application/json", k: v}
	}
	tests := []struct {
		name     string
		body     string
		header   map[string]string
		status   int
		code     string
		wantSong string
	}{
		{name: "title", body: `{"query":"rick astley"}`, header: jsonCT, status: 202, wantSong: "dQw4w9WgXcQ"},
		{name: "no content type", body: `{"query":"rick astley"}`, status: 202, wantSong: "dQw4w9WgXcQ"},
		{name: "with idempotency key", body: `{"query":"gangnam style"}`, header: with("Idempotency-Key", "create-1"), status: 202, wantSong: "9bZkp7q19f0"},
		{name: "missing query", body: `{}`, header: jsonCT, status: 400, code: "bad_request"},
		{name: "blank query", body: `{"query":"  "}`, header: jsonCT, status: 400, code: "bad_request"},
		{name: "query too long", body: `{"query":"` + strings.Repeat("a", 513) + `"}`, header: jsonCT, status: 400, code: "bad_request"},
		{name: "not JSON", body: `query=rick`, header: jsonCT, status: 400, code: "bad_request"},
		{name: "invalid UTF-8 in the query", body: "{\"query\":\"\xff\"}", header: jsonCT, status: 400, code: "bad_request"},
		{name: "invalid UTF-8 beside the query", body: "{\"query\":\"rick astley\",\"x\":\"\xfe\"}", header: jsonCT, status: 400, code: "bad_request"},
		{name: "lone surrogate escape", body: `{"query":"rick \ud800"}`, header: jsonCT, status: 400, code: "bad_request"},
		{name: "replacement character", body: `{"query":"rick \ufffd"}`, header: jsonCT, status: 400, code: "bad_request"},
		{name: "two objects", body: `{"query":"a"}{"query":"b"}`, header: jsonCT, status: 400, code: "bad_request"},
		{name: "form content type", body: `{"query":"rick astley"}`, header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, status: 415, code: "unsupported_media_type"},
		{name: "idempotency key not ASCII", body: `{"query":"rick astley"}`, header: with("Idempotency-Key", "ключ"), status: 400, code: "bad_request"},
		{name: "idempotency key too long", body: `{"query":"rick astley"}`, header: with("Idempotency-Key", strings.Repeat("k", 256)), status: 400, code: "bad_request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := requestedCount(t, h.env, "*")
			r := h.doBody(t, http.MethodPost, "/v1/operations", tc.body, tc.header)
			if tc.code != "" {
				wantError(t, r, tc.status, tc.code)
				if n := requestedCount(t, h.env, "*"); n != before {
					t.Errorf("a refused request published: %d song.requested, want %d", n, before)
				}
				return
			}
			var got map[string]string
			r.decode(t, tc.status, &got)
			op := got["operation_id"]
			want := map[string]string{"operation_id": op, "song_id": tc.wantSong,
				"status_url": "/v1/operations/" + op, "events_url": "/v1/operations/" + op + "/events"}
			if len(got) != len(want) || events.ValidOperationID(op) != nil {
				t.Fatalf("body %s, want the keys of %v", r.body, want)
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
			if loc := r.header.Get("Location"); loc != want["status_url"] {
				t.Errorf("Location %q, want %q", loc, want["status_url"])
			}
			if n := requestedCount(t, h.env, op); n != 1 {
				t.Errorf("%d song.requested for the operation, want 1", n)
			}
		})
	}
}

func TestIdempotencyKey(t *testing.T) {
	h := start(t)
	fakeResolver(t, h.env, map[string]string{"rick astley": "dQw4w9WgXcQ"})
	type call struct {
		method, path, body, key string
		status                  int
		code                    string // error code, else success
		replayed                bool
		sameAs                  int // index of the call whose operation it must repeat, -1 for a new one
	}
	v1 := func(key, query string, status int, code string, replayed bool, sameAs int) call {
		return call{method: http.MethodPost, path: "/v1/operations", body: `{"query":"` + query + `"}`, key: key, status: status, code: code, replayed: replayed, sameAs: sameAs}
	}
	seed := func(key, query string, status int, code string, replayed bool, sameAs int) call {
		return call{method: http.MethodPost, path: "/api/audio/start?song=" + url.QueryEscape(query), key: key, status: status, code: code, replayed: replayed, sameAs: sameAs}
	}
	tests := []struct {
		name  string
		calls []call
	}{
		{name: "v1 retry replays the operation", calls: []call{
			v1("k-v1", "rick astley", 202, "", false, -1),
			v1("k-v1", "rick astley", 202, "", true, 0),
			v1("k-v1", "rick astley", 202, "", true, 0),
		}},
		{name: "seed retry replays the operation", calls: []call{
			seed("k-seed", "rick astley", 200, "", false, -1),
			seed("k-seed", "rick astley", 200, "", true, 0),
		}},
		{name: "another key is another operation", calls: []call{
			v1("k-a", "rick astley", 202, "", false, -1),
			v1("k-b", "rick astley", 202, "", false, -1),
		}},
		{name: "key reused for another query", calls: []call{
			v1("k-reuse", "rick astley", 202, "", false, -1),
			v1("k-reuse", "something else", 422, "idempotency_key_reused", false, -1),
		}},
		{name: "key reused on another route", calls: []call{
			v1("k-route", "rick astley", 202, "", false, -1),
			seed("k-route", "rick astley", 422, "idempotency_key_reused", false, -1),
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var ops []string
			for i, c := range tc.calls {
				r := h.doBody(t, c.method, c.path, c.body, map[string]string{"Idempotency-Key": c.key, "Content-Type": "application/json"})
				if c.code != "" {
					wantError(t, r, c.status, c.code)
					ops = append(ops, "")
					continue
				}
				if r.status != c.status {
					t.Fatalf("call %d: status %d, want %d (%s)", i, r.status, c.status, r.body)
				}
				if got := r.header.Get("Idempotent-Replayed") == "true"; got != c.replayed {
					t.Errorf("call %d: replayed %v, want %v", i, got, c.replayed)
				}
				var body struct {
					OperationID string `json:"operation_id"`
					SongID      string `json:"song_id"`
				}
				if err := json.Unmarshal(r.body, &body); err != nil {
					t.Fatal(err)
				}
				if body.SongID != "dQw4w9WgXcQ" {
					t.Errorf("call %d: song_id %q, want dQw4w9WgXcQ", i, body.SongID)
				}
				if c.sameAs >= 0 && body.OperationID != ops[c.sameAs] {
					t.Errorf("call %d: operation %s, want %s of call %d", i, body.OperationID, ops[c.sameAs], c.sameAs)
				}
				if c.sameAs < 0 && slices.Contains(ops, body.OperationID) {
					t.Errorf("call %d: operation %s repeats an earlier one", i, body.OperationID)
				}
				ops = append(ops, body.OperationID)
				if n := requestedCount(t, h.env, body.OperationID); n != 1 {
					t.Errorf("call %d: %d song.requested for %s, want exactly 1", i, n, body.OperationID)
				}
			}
		})
	}
}

// publishHistory publishes song.requested and the given further events for
// a new operation and returns its id.
func publishHistory(t *testing.T, env *natstest.Env, query string, next ...events.Event) (string, []events.Envelope) {
	t.Helper()
	opID := events.NewID()
	first, err := events.New(opID, "", events.SongRequested{Query: query})
	if err != nil {
		t.Fatal(err)
	}
	env.Publish(t, first)
	envs := []events.Envelope{first}
	for _, ev := range next {
		e, err := events.Next(envs[len(envs)-1], "dQw4w9WgXcQ", ev)
		if err != nil {
			t.Fatal(err)
		}
		env.Publish(t, e)
		envs = append(envs, e)
	}
	return opID, envs
}

var (
	resolved   = events.VideoResolved{Song: events.Song{ID: "dQw4w9WgXcQ", Source: "youtube"}}
	downloaded = events.AudioDownloaded{Song: events.Song{ID: "dQw4w9WgXcQ", Title: "Never Gonna Give You Up"}, Key: "staging/x.m4a", Size: 1000, Ext: "m4a"}
	encoded    = events.DCAEncoded{Frames: 50, DurationMs: 1000, SourceDurationMs: 1000, BitrateKbps: 96}
	uploaded   = events.UploadDone{Song: events.Song{ID: "dQw4w9WgXcQ"}, Key: "audio/dQw4w9WgXcQ.dca", Location: "nats://objects/butakero-blobs/audio/dQw4w9WgXcQ.dca", Size: 1234}
	failed     = events.OperationFailed{Stage: "fetch", Code: events.CodeUnavailable, Message: "the video is private", Attempts: 1}
)

func TestGetOperation(t *testing.T) {
	h := start(t)
	ctx := context.Background()
	doneID, doneEnvs := publishHistory(t, h.env, "rick astley", resolved, downloaded, encoded, uploaded)
	if err := h.store.PutOperation(ctx, projection.Operation{
		ID: doneID, SongID: "dQw4w9WgXcQ", Status: projection.StatusSuccess, Message: "DCA stored", Success: true,
		Attempts: 1, Stage: projection.StageStored, Query: "rick astley", CreatedAt: "2026-01-02T03:04:05Z", UpdatedAt: "2026-01-02T03:04:09Z",
	}); err != nil {
		t.Fatal(err)
	}
	failedID, _ := publishHistory(t, h.env, "private video", resolved, failed)
	if err := h.store.PutOperation(ctx, projection.Operation{
		ID: failedID, SongID: "dQw4w9WgXcQ", Status: projection.StatusFailed, Message: "the video is private",
		Attempts: 1, Failures: 1, Stage: projection.StageFailed, ErrorCode: "unavailable", Query: "private video",
	}); err != nil {
		t.Fatal(err)
	}
	laggingID, _ := publishHistory(t, h.env, "just asked")

	tests := []struct {
		name      string
		id        string
		status    int
		code      string
		want      map[string]any
		wantKinds []string
	}{
		{name: "success", id: doneID, status: 200,
			want: map[string]any{"status": "success", "stage": "stored", "song_id": "dQw4w9WgXcQ", "query": "rick astley",
				"dca_url": "/v1/songs/dQw4w9WgXcQ/dca", "error_code": "", "created_at": "2026-01-02T03:04:05Z"},
			wantKinds: []string{"song.requested", "video.resolved", "audio.downloaded", "dca.encoded", "upload.done"}},
		{name: "failed", id: failedID, status: 200,
			want:      map[string]any{"status": "failed", "stage": "failed", "error_code": "unavailable", "message": "the video is private", "dca_url": ""},
			wantKinds: []string{"song.requested", "video.resolved", "operation.failed"}},
		{name: "recorder lagging", id: laggingID, status: 200,
			want:      map[string]any{"status": "in_progress", "stage": "requested", "query": "just asked", "song_id": ""},
			wantKinds: []string{"song.requested"}},
		{name: "unknown", id: events.NewID(), status: 404, code: "not_found"},
		{name: "malformed id", id: "a.b", status: 400, code: "bad_request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := h.do(t, http.MethodGet, "/v1/operations/"+tc.id, nil)
			if tc.code != "" {
				wantError(t, r, tc.status, tc.code)
				return
			}
			var got map[string]any
			r.decode(t, tc.status, &got)
			for _, k := range []string{"id", "song_id", "query", "status", "stage", "message", "error_code", "attempts", "failures", "created_at", "updated_at", "dca_url", "events_url", "events"} {
				if _, ok := got[k]; !ok {
					t.Errorf("operation lacks %q: %s", k, r.body)
				}
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s = %#v, want %#v", k, got[k], v)
				}
			}
			var evs []map[string]any
			raw, _ := json.Marshal(got["events"])
			if err := json.Unmarshal(raw, &evs); err != nil {
				t.Fatal(err)
			}
			var kinds []string
			lastSeq := 0.0
			for _, e := range evs {
				kinds = append(kinds, e["kind"].(string))
				if e["operation_id"] != tc.id || e["seq"].(float64) <= lastSeq || e["id"] == "" || !strings.HasPrefix(e["type"].(string), "butakero.") {
					t.Errorf("event %v: want this operation's, in stream order, with id and versioned type", e)
				}
				lastSeq = e["seq"].(float64)
			}
			if !slices.Equal(kinds, tc.wantKinds) {
				t.Errorf("event kinds %v, want %v", kinds, tc.wantKinds)
			}
			if tc.id == doneID && evs[0]["id"] != doneEnvs[0].ID {
				t.Errorf("first event id %v, want %s", evs[0]["id"], doneEnvs[0].ID)
			}
		})
	}
}

func TestSongs(t *testing.T) {
	h := start(t)
	ctx := context.Background()
	songs := []projection.Song{
		{ID: "dQw4w9WgXcQ", Title: "Never Gonna Give You Up", Channel: "Rick Astley", DurationMs: 213000, URL: "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
			ThumbnailURL: "https://i.ytimg.com/vi/dQw4w9WgXcQ/hq.jpg", Source: "youtube", DCAKey: "audio/dQw4w9WgXcQ.dca",
			DCALocation: "nats://objects/butakero-blobs/audio/dQw4w9WgXcQ.dca", DCASize: 1234, DCAFrames: 10650,
			Mode: "passthrough", ModeReason: "the source is 48 kHz opus in 20 ms frames", LoudnessLUFS: ptr(-14.2), TruePeakDB: ptr(-1.5)},
		// The catalog lists stored songs only.
		{ID: "song-b", Title: "Canción del Ñandú", Source: "youtube", DCAKey: "audio/song-b.dca"},
		{ID: "song-c", Title: "Never Enough", Source: "youtube", DCAKey: "audio/song-c.dca"},
		{ID: "song-d", Title: "Together Forever", Channel: "Rick Astley", Source: "youtube", DCAKey: "audio/song-d.dca"},
		{ID: "song-e", Title: "Zebra Song", Source: "direct", DCAKey: "audio/song-e.dca"},
	}
	for _, s := range songs {
		if err := h.store.PutSong(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	type page struct {
		Songs []struct {
			ID     string `json:"id"`
			Stored bool   `json:"stored"`
		} `json:"songs"`
		NextCursor string `json:"next_cursor"`
		NextURL    string `json:"next_url"`
	}
	// all pages of a search, following next_url.
	walk := func(t *testing.T, path string) []string {
		var ids []string
		for i := 0; path != ""; i++ {
			if i > 10 {
				t.Fatal("too many pages")
			}
			r := h.do(t, http.MethodGet, path, nil)
			var p page
			r.decode(t, 200, &p)
			for _, s := range p.Songs {
				ids = append(ids, s.ID)
			}
			if (p.NextCursor == "") != (p.NextURL == "") {
				t.Errorf("next_cursor %q and next_url %q disagree", p.NextCursor, p.NextURL)
			}
			path = p.NextURL
		}
		return ids
	}
	searches := []struct {
		name string
		path string
		want []string
	}{
		{name: "all, ordered by title", path: "/v1/songs", want: []string{"song-b", "song-c", "dQw4w9WgXcQ", "song-d", "song-e"}},
		{name: "all in pages of two", path: "/v1/songs?limit=2", want: []string{"song-b", "song-c", "dQw4w9WgXcQ", "song-d", "song-e"}},
		{name: "prefix", path: "/v1/songs?q=never", want: []string{"song-c", "dQw4w9WgXcQ"}},
		{name: "substring, case and accents folded", path: "/v1/songs?q=" + url.QueryEscape("NANDU"), want: []string{"song-b"}},
		{name: "channel", path: "/v1/songs?q=astley&limit=1", want: []string{"dQw4w9WgXcQ", "song-d"}},
		{name: "by id", path: "/v1/songs?q=song-e", want: []string{"song-e"}},
		{name: "nothing", path: "/v1/songs?q=nothing+like+this", want: nil},
	}
	for _, tc := range searches {
		t.Run(tc.name, func(t *testing.T) {
			if got := walk(t, tc.path); !slices.Equal(got, tc.want) {
				t.Errorf("ids %v, want %v", got, tc.want)
			}
		})
	}
	errs := []struct{ name, path, code string }{
		{name: "limit zero", path: "/v1/songs?limit=0", code: "bad_request"},
		{name: "limit too big", path: "/v1/songs?limit=101", code: "bad_request"},
		{name: "limit not a number", path: "/v1/songs?limit=ten", code: "bad_request"},
		{name: "forged cursor", path: "/v1/songs?cursor=not-a-cursor", code: "bad_request"},
		{name: "unknown song", path: "/v1/songs/unknownsong", code: "not_found"},
		{name: "malformed song id", path: "/v1/songs/a.b", code: "bad_request"},
	}
	for _, tc := range errs {
		t.Run(tc.name, func(t *testing.T) {
			status := 400
			if tc.code == "not_found" {
				status = 404
			}
			wantError(t, h.do(t, http.MethodGet, tc.path, nil), status, tc.code)
		})
	}
	t.Run("one song", func(t *testing.T) {
		r := h.do(t, http.MethodGet, "/v1/songs/dQw4w9WgXcQ", nil)
		var got map[string]any
		r.decode(t, 200, &got)
		want := map[string]any{"id": "dQw4w9WgXcQ", "title": "Never Gonna Give You Up", "duration_ms": 213000.0,
			"url": "https://www.youtube.com/watch?v=dQw4w9WgXcQ", "thumbnail_url": "https://i.ytimg.com/vi/dQw4w9WgXcQ/hq.jpg",
			"channel": "Rick Astley", "source": "youtube", "stored": true, "dca_size": 1234.0, "dca_frames": 10650.0,
			"dca_location": "nats://objects/butakero-blobs/audio/dQw4w9WgXcQ.dca", "dca_url": "/v1/songs/dQw4w9WgXcQ/dca", "updated_at": "",
			"ogg_url": "/v1/songs/dQw4w9WgXcQ/ogg", "mode": "passthrough", "mode_reason": "the source is 48 kHz opus in 20 ms frames",
			"loudness_lufs": -14.2, "true_peak_db": -1.5}
		if len(got) != len(want) {
			t.Errorf("keys of %s, want those of %v", r.body, want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s = %#v, want %#v", k, got[k], v)
			}
		}
	})
}

// fakeClock is the rate limits' clock, moved by the test.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// defaultConfig is the configuration with every default, as main loads it
// from an empty environment.
func defaultConfig(t *testing.T) config.Config {
	t.Helper()
	cfg, err := config.Load(config.FromMap(nil))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ShutdownGrace = 5 * time.Second
	return cfg
}

// TestPollingBotIsNotThrottled runs a bot polling 20 operations 5 times a
// second for two minutes of a fake clock, at the default limits: it never
// meets a 429, and what it read leaves its creation budget whole.
func TestPollingBotIsNotThrottled(t *testing.T) {
	clock := newFakeClock()
	cfg := defaultConfig(t)
	h := startClocked(t, cfg, clock.Now)
	fakeResolver(t, h.env, map[string]string{"rick astley": "dQw4w9WgXcQ"})
	ctx := context.Background()
	var ops []string
	for range 20 {
		id := events.NewID()
		if err := h.store.PutOperation(ctx, projection.Operation{ID: id, Status: projection.StatusSuccess, SongID: "dQw4w9WgXcQ"}); err != nil {
			t.Fatal(err)
		}
		ops = append(ops, id)
	}
	if err := h.store.PutSong(ctx, projection.Song{ID: "dQw4w9WgXcQ", Title: "Never Gonna Give You Up"}); err != nil {
		t.Fatal(err)
	}
	const polls = 2 * 60 * 5 // two minutes at 5 a second
	least := cfg.ReadRateLimit
	for i := range polls {
		for j, id := range ops {
			path := "/api/audio/status?operation_id=" + id
			if j%4 == 3 {
				path = "/v1/songs/dQw4w9WgXcQ" // a bot also reads its songs
			}
			r := h.do(t, http.MethodGet, path, nil)
			if r.status != 200 {
				t.Fatalf("poll %d, %s: %d %s", i, path, r.status, r.body)
			}
			if n, err := strconv.Atoi(r.header.Get("RateLimit-Remaining")); err != nil {
				t.Fatalf("RateLimit-Remaining %q", r.header.Get("RateLimit-Remaining"))
			} else {
				least = min(least, n)
			}
		}
		clock.Advance(200 * time.Millisecond)
	}
	if least < cfg.ReadRateLimit/2 {
		t.Errorf("the reads budget went down to %d of %d: too close for a bot this size", least, cfg.ReadRateLimit)
	}
	r := h.doBody(t, http.MethodPost, "/v1/operations", `{"query":"rick astley"}`, nil)
	if r.status != 202 || r.header.Get("RateLimit-Remaining") != strconv.Itoa(cfg.RateLimit-1) {
		t.Errorf("creation after the polls: %d, RateLimit-Remaining %q; want 202 and %d (reads spent none of it)",
			r.status, r.header.Get("RateLimit-Remaining"), cfg.RateLimit-1)
	}
}

func TestCreationLimit(t *testing.T) {
	tests := []struct {
		name    string
		keys    []string
		clients []map[string]string // one header set per client; each gets the limit
	}{
		{name: "per IP without keys", clients: []map[string]string{nil}},
		{name: "per API key", keys: []string{"key-one", "key-two"},
			clients: []map[string]string{{"X-API-Key": "key-one"}, {"Authorization": "Bearer key-two"}}},
	}
	const limit, reads = 3, 1000
	// Both creation routes, in turn.
	create := func(h *harness, t *testing.T, i int, header map[string]string) response {
		if i%2 == 0 {
			return h.do(t, http.MethodPost, "/api/audio/start?song=rick+astley", header)
		}
		return h.doBody(t, http.MethodPost, "/v1/operations", `{"query":"rick astley"}`, header)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			h := startClocked(t, config.Config{APIKeys: tc.keys, RateLimit: limit, ReadRateLimit: reads}, clock.Now)
			fakeResolver(t, h.env, map[string]string{"rick astley": "dQw4w9WgXcQ"})
			for ci, header := range tc.clients {
				for i := range limit {
					r := create(h, t, i, header)
					if r.status != 200 && r.status != 202 {
						t.Fatalf("client %d creation %d: %d %s", ci, i, r.status, r.body)
					}
					for k, want := range map[string]string{"RateLimit-Limit": "3", "RateLimit-Remaining": strconv.Itoa(limit - 1 - i), "RateLimit-Policy": "3;w=60"} {
						if got := r.header.Get(k); got != want {
							t.Errorf("client %d creation %d: %s %q, want %q", ci, i, k, got, want)
						}
					}
				}
				before := requestedCount(t, h.env, "*")
				r := create(h, t, limit, header)
				wantError(t, r, 429, "rate_limited")
				// A token comes back every 60/limit seconds; the bucket is full
				// again in a minute.
				for k, want := range map[string]string{"Retry-After": "20", "RateLimit-Reset": "60", "RateLimit-Remaining": "0"} {
					if got := r.header.Get(k); got != want {
						t.Errorf("client %d on 429: %s %q, want %q", ci, k, got, want)
					}
				}
				if n := requestedCount(t, h.env, "*"); n != before {
					t.Errorf("the refused creation published: %d song.requested, want %d", n, before)
				}
				// Reads have their own budget.
				r = h.do(t, http.MethodGet, "/api/audio/status?operation_id="+events.NewID(), header)
				if r.status != 404 || r.header.Get("RateLimit-Limit") != strconv.Itoa(reads) {
					t.Errorf("a read after the creations: %d, RateLimit-Limit %q; want 404 under the reads' %d", r.status, r.header.Get("RateLimit-Limit"), reads)
				}
			}
			clock.Advance(20 * time.Second)
			for ci, header := range tc.clients {
				if r := create(h, t, 1, header); r.status != 202 {
					t.Errorf("client %d after Retry-After: %d %s, want 202", ci, r.status, r.body)
				}
				wantError(t, create(h, t, 0, header), 429, "rate_limited")
			}
			// Probes are not limited.
			if r := h.do(t, http.MethodGet, "/healthz", nil); r.status != 200 || r.header.Get("RateLimit-Limit") != "" {
				t.Errorf("healthz: %d, RateLimit-Limit %q; want 200 without limit", r.status, r.header.Get("RateLimit-Limit"))
			}
		})
	}
}

func TestReadLimit(t *testing.T) {
	const reads = 5
	clock := newFakeClock()
	h := startClocked(t, config.Config{RateLimit: 3, ReadRateLimit: reads}, clock.Now)
	fakeResolver(t, h.env, map[string]string{"rick astley": "dQw4w9WgXcQ"})
	opID, _ := publishHistory(t, h.env, "rick astley", resolved)
	for i := range reads {
		if r := h.do(t, http.MethodGet, "/v1/operations/"+opID, nil); r.status != 200 {
			t.Fatalf("read %d: %d %s", i, r.status, r.body)
		}
	}
	tests := []struct {
		name, method, path string
	}{
		{"status", http.MethodGet, "/api/audio/status?operation_id=" + opID},
		{"operation", http.MethodGet, "/v1/operations/" + opID},
		{"songs", http.MethodGet, "/v1/songs"},
		{"song", http.MethodGet, "/v1/songs/dQw4w9WgXcQ"},
		{"DCA", http.MethodGet, "/v1/songs/dQw4w9WgXcQ/dca"},
		{"DCA HEAD", http.MethodHead, "/v1/songs/dQw4w9WgXcQ/dca"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := h.do(t, tc.method, tc.path, nil)
			if r.status != 429 || r.header.Get("Retry-After") != "12" {
				t.Errorf("%d, Retry-After %q; want 429 and 12 (60/%d s)", r.status, r.header.Get("Retry-After"), reads)
			}
			if tc.method != http.MethodHead {
				wantError(t, r, 429, "rate_limited")
			}
		})
	}
	t.Run("events WebSocket", func(t *testing.T) {
		_, res, err := websocket.DefaultDialer.Dial(wsURL(h, opID), nil)
		if err == nil || res == nil || res.StatusCode != 429 {
			t.Fatalf("dial: %v, want a 429", err)
		}
	})
	t.Run("creations have their own budget", func(t *testing.T) {
		if r := h.doBody(t, http.MethodPost, "/v1/operations", `{"query":"rick astley"}`, nil); r.status != 202 {
			t.Errorf("%d %s, want 202", r.status, r.body)
		}
	})
}

// TestAuthFailureLimit sends 200 requests with wrong keys from one
// address: after AUTH_FAILURE_LIMIT of them (the default) the address is
// refused before its key is looked at, a good key included, while another
// address is not.
func TestAuthFailureLimit(t *testing.T) {
	clock := newFakeClock()
	cfg := defaultConfig(t)
	cfg.APIKeys = []string{"the-key"}
	h := startClocked(t, cfg, clock.Now)
	good := map[string]string{"X-API-Key": "the-key"}
	first429 := -1
	for i := range 200 {
		header := map[string]string{"X-API-Key": "guess-" + strconv.Itoa(i)}
		if i%10 == 9 {
			header = nil // no key at all is a failure too
		}
		r := h.do(t, http.MethodGet, "/v1/songs", header)
		switch {
		case first429 < 0 && r.status == 401:
		case first429 < 0 && r.status == 429:
			first429 = i
			fallthrough
		case r.status == 429:
			wantError(t, r, 429, "rate_limited")
			if got := r.header.Get("Retry-After"); got != "3" {
				t.Fatalf("request %d: Retry-After %q, want 3 (60/%d s)", i, got, cfg.AuthFailureLimit)
			}
		default:
			t.Fatalf("request %d: %d %s, want 401 then 429", i, r.status, r.body)
		}
	}
	if first429 != cfg.AuthFailureLimit {
		t.Errorf("first 429 at request %d, want %d (AUTH_FAILURE_LIMIT)", first429, cfg.AuthFailureLimit)
	}
	if r := h.do(t, http.MethodGet, "/v1/songs", good); r.status != 429 {
		t.Errorf("good key from the refused address: %d, want 429", r.status)
	}

	// Another loopback address has its own budget.
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	other := *h
	other.client = &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}, Timeout: 30 * time.Second}
	t.Cleanup(other.client.CloseIdleConnections)
	wantError(t, other.do(t, http.MethodGet, "/v1/songs", map[string]string{"X-API-Key": "wrong"}), 401, "unauthorized")
	if r := other.do(t, http.MethodGet, "/v1/songs", good); r.status != 200 {
		t.Errorf("good key from another address: %d %s, want 200", r.status, r.body)
	}

	// Once a token is back, the good key passes, and passing spends none.
	clock.Advance(3 * time.Second)
	for i := range 3 {
		if r := h.do(t, http.MethodGet, "/v1/songs", good); r.status != 200 {
			t.Errorf("good key %d after Retry-After: %d %s, want 200", i, r.status, r.body)
		}
	}
}

func TestCORS(t *testing.T) {
	tests := []struct {
		name    string
		allowed []string
		origin  string
		want    string // Access-Control-Allow-Origin
	}{
		{name: "off by default", origin: "https://app.example", want: ""},
		{name: "configured origin", allowed: []string{"https://app.example"}, origin: "https://app.example", want: "https://app.example"},
		{name: "other origin", allowed: []string{"https://app.example"}, origin: "https://evil.example", want: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := startWith(t, config.Config{AllowedOrigins: tc.allowed})
			pre := h.do(t, http.MethodOptions, "/v1/operations", map[string]string{
				"Origin": tc.origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type,idempotency-key"})
			if got := pre.header.Get("Access-Control-Allow-Origin"); got != tc.want {
				t.Errorf("preflight Access-Control-Allow-Origin %q, want %q", got, tc.want)
			}
			get := h.do(t, http.MethodGet, "/v1/songs", map[string]string{"Origin": tc.origin})
			if got := get.header.Get("Access-Control-Allow-Origin"); got != tc.want {
				t.Errorf("GET Access-Control-Allow-Origin %q, want %q", got, tc.want)
			}
		})
	}
}

func TestTraceContext(t *testing.T) {
	h := start(t)
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	tests := []struct {
		name        string
		traceparent string
		wantTrace   string // "" means any valid, new trace
	}{
		{name: "client trace continues", traceparent: "00-" + traceID + "-00f067aa0ba902b7-01", wantTrace: traceID},
		{name: "new trace without one", wantTrace: ""},
		{name: "malformed traceparent starts a new one", traceparent: "00-zz-00f067aa0ba902b7-01", wantTrace: ""},
	}
	tp := regexp.MustCompile(`^00-([0-9a-f]{32})-[0-9a-f]{16}-0[01]$`)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			header := map[string]string{"Content-Type": "application/json"}
			if tc.traceparent != "" {
				header["traceparent"] = tc.traceparent
			}
			// No resolver runs: the request waits startWait, then answers.
			r := h.doBody(t, http.MethodPost, "/v1/operations", `{"query":"trace me"}`, header)
			var got struct {
				OperationID string `json:"operation_id"`
			}
			r.decode(t, 202, &got)
			msg, err := h.env.Stream.GetLastMsgForSubject(context.Background(), events.Subject(events.KindSongRequested, got.OperationID))
			if err != nil {
				t.Fatal(err)
			}
			m := tp.FindStringSubmatch(msg.Header.Get("traceparent"))
			if m == nil {
				t.Fatalf("song.requested traceparent %q, want a W3C traceparent", msg.Header.Get("traceparent"))
			}
			if tc.wantTrace != "" && m[1] != tc.wantTrace {
				t.Errorf("trace id %s, want the client's %s", m[1], tc.wantTrace)
			}
			if tc.wantTrace == "" && m[1] == traceID {
				t.Errorf("trace id %s reused, want a new one", m[1])
			}
		})
	}
}

func TestOpenAPIMatchesRoutes(t *testing.T) {
	app := newApp(t)
	var doc struct {
		OpenAPI    string                               `json:"openapi"`
		Paths      map[string]map[string]map[string]any `json:"paths"`
		Components struct {
			Schemas map[string]struct {
				Enum []string `json:"enum"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(gateway.OpenAPI, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("openapi %q, want 3.x", doc.OpenAPI)
	}
	param := regexp.MustCompile(`:([A-Za-z_]+)`)
	routes := map[string]bool{} // "get /v1/songs/{id}"
	for _, r := range app.GetRoutes(true) {
		routes[strings.ToLower(r.Method)+" "+param.ReplaceAllString(r.Path, "{$1}")] = true
	}
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			key := method + " " + path
			documented[key] = true
			if !routes[key] {
				t.Errorf("documented %s is not a route", key)
			}
			if _, ok := op["responses"]; !ok {
				t.Errorf("%s documents no responses", key)
			}
		}
	}
	for key := range routes {
		method, path, _ := strings.Cut(key, " ")
		if method == "head" && routes["get "+path] && !documented[key] {
			continue // fiber answers HEAD for every GET route
		}
		if !documented[key] {
			t.Errorf("route %s is not documented", key)
		}
	}
	// Every error code is documented, and nothing else.
	var codes []string
	for _, c := range gateway.Codes {
		codes = append(codes, string(c))
	}
	if got := doc.Components.Schemas["ErrorCode"].Enum; !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(codes))) {
		t.Errorf("ErrorCode enum %v, want %v", got, codes)
	}
}

func TestOpenAPIServed(t *testing.T) {
	h := start(t)
	r := h.do(t, http.MethodGet, "/openapi.json", nil)
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") || string(r.body) != string(gateway.OpenAPI) {
		t.Errorf("/openapi.json: %d %q, want the embedded document as JSON", r.status, r.header.Get("Content-Type"))
	}
}

// scrape reads one sample of /metrics: the value of the line that starts
// with series, or -1 when there is none.
func scrape(t *testing.T, h *harness, series string) float64 {
	t.Helper()
	r := h.do(t, http.MethodGet, "/metrics", nil)
	if r.status != 200 {
		t.Fatalf("/metrics: %d", r.status)
	}
	for _, line := range strings.Split(string(r.body), "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return v
		}
	}
	return -1
}

func TestMetrics(t *testing.T) {
	h := start(t)
	ctx := context.Background()
	if _, err := events.EnsureConsumer(ctx, h.env.JS, events.ConsumerResolver, 3); err != nil {
		t.Fatal(err)
	}
	publishHistory(t, h.env, "one")
	publishHistory(t, h.env, "two")
	tests := []struct {
		name   string
		series string
		do     func(t *testing.T)
		delta  float64 // the change do makes; with do nil, the value itself
	}{
		{name: "requests by route and code", series: `butakero_http_requests_total{code="404",method="GET",route="/v1/songs/:id"}`,
			do: func(t *testing.T) {
				h.do(t, http.MethodGet, "/v1/songs/nosuchsong", nil)
				h.do(t, http.MethodGet, "/v1/songs/nosuchsong2", nil)
			}, delta: 2},
		{name: "unmatched routes", series: `butakero_http_requests_total{code="404",method="GET",route="unmatched"}`,
			do: func(t *testing.T) { h.do(t, http.MethodGet, "/no/such/route", nil) }, delta: 1},
		{name: "latency histogram", series: `butakero_http_request_duration_seconds_count{method="GET",route="/healthz"}`,
			do: func(t *testing.T) { h.do(t, http.MethodGet, "/healthz", nil) }, delta: 1},
		{name: "consumer lag", series: `butakero_consumer_pending_messages{consumer="resolver",stream="BUTAKERO"}`, delta: 2},
		{name: "no sockets open", series: `butakero_websocket_open_connections`, delta: 0},
		{name: "Go runtime", series: `go_goroutines`, delta: -2}, // present: any value
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := scrape(t, h, tc.series)
			if tc.do == nil {
				if tc.delta == -2 {
					if before < 0 {
						t.Errorf("%s missing", tc.series)
					}
					return
				}
				if before != tc.delta {
					t.Errorf("%s = %v, want %v", tc.series, before, tc.delta)
				}
				return
			}
			tc.do(t)
			after := scrape(t, h, tc.series)
			if max(before, 0)+tc.delta != after {
				t.Errorf("%s went from %v to %v, want +%v", tc.series, before, after, tc.delta)
			}
		})
	}
}

// TestMetricsLabelsAreRealRequests drives requests of mixed methods and
// paths over one keep-alive connection, so fasthttp reuses its buffers
// between them, then checks that every method and route label /metrics
// shows is one a request had: a label must not alias a request's buffer.
func TestMetricsLabelsAreRealRequests(t *testing.T) {
	h := start(t)
	methods := []string{http.MethodDelete, http.MethodGet, http.MethodPost, http.MethodHead,
		http.MethodOptions, http.MethodPut, http.MethodPatch}
	paths := []string{"/healthz", "/v1/songs", "/v1/songs/nosuchsong", "/api/audio/status?operation_id=x",
		"/v1/operations/nosuchop", "/no/such/route", "/v1/songs/nosuchsong/dca"}
	for round := range 3 {
		for i, m := range methods {
			h.do(t, m, paths[(i+round)%len(paths)], nil)
		}
	}
	real := map[string]bool{}
	for _, m := range methods {
		real[m] = true
	}
	routes := map[string]bool{"unmatched": true}
	for _, p := range []string{"/healthz", "/readyz", "/metrics", "/openapi.json", "/", "/dashboard/:file",
		"/api/audio/start", "/api/audio/status", "/v1/operations", "/v1/operations/:id",
		"/v1/operations/:id/events", "/v1/songs", "/v1/songs/:id", "/v1/songs/:id/dca"} {
		routes[p] = true
	}
	label := regexp.MustCompile(`(method|route)="([^"]*)"`)
	r := h.do(t, http.MethodGet, "/metrics", nil)
	seen := 0
	for _, line := range strings.Split(string(r.body), "\n") {
		if !strings.HasPrefix(line, "butakero_http_request") {
			continue
		}
		seen++
		for _, m := range label.FindAllStringSubmatch(line, -1) {
			if (m[1] == "method" && !real[m[2]]) || (m[1] == "route" && !routes[m[2]]) {
				t.Errorf("%s label %q no request had: %s", m[1], m[2], line)
			}
		}
	}
	if seen == 0 {
		t.Fatal("/metrics has no butakero_http_request series")
	}
}

// wsURL is the events WebSocket of an operation on h.
func wsURL(h *harness, opID string) string {
	return "ws" + strings.TrimPrefix(h.url, "http") + "/v1/operations/" + opID + "/events"
}

// socket is a test's WebSocket client.
type socket struct {
	t    *testing.T
	conn *websocket.Conn
}

func dial(t *testing.T, h *harness, opID string, header http.Header) *socket {
	t.Helper()
	conn, res, err := websocket.DefaultDialer.Dial(wsURL(h, opID), header)
	if err != nil {
		status := 0
		if res != nil {
			status = res.StatusCode
		}
		t.Fatalf("dial: %v (status %d)", err, status)
	}
	t.Cleanup(func() { conn.Close() })
	return &socket{t: t, conn: conn}
}

// next reads one message; it fails the test on a close or after 20 s.
func (s *socket) next() map[string]any {
	s.t.Helper()
	_ = s.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, body, err := s.conn.ReadMessage()
	if err != nil {
		s.t.Fatalf("read: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		s.t.Fatalf("message %s: %v", body, err)
	}
	return m
}

// nextEvent skips progress messages and returns the next event.
func (s *socket) nextEvent() map[string]any {
	s.t.Helper()
	for {
		if m := s.next(); m["type"] != "progress" {
			return m
		}
	}
}

// closed waits for the server's close and returns its code.
func (s *socket) closed() int {
	s.t.Helper()
	for {
		_ = s.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		_, body, err := s.conn.ReadMessage()
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code
		}
		if err != nil {
			s.t.Fatalf("read: %v, want a close", err)
		}
		var m map[string]any
		if json.Unmarshal(body, &m) != nil || m["type"] != "progress" {
			s.t.Fatalf("message %s before the close, want none but progress", body)
		}
	}
}

func TestWebSocketFollowsAnOperation(t *testing.T) {
	h := start(t)
	opID, envs := publishHistory(t, h.env, "rick astley", resolved)
	s := dial(t, h, opID, nil)

	// History first, in order.
	for i, want := range []string{"song.requested", "video.resolved"} {
		m := s.nextEvent()
		if m["kind"] != want || m["id"] != envs[i].ID || m["operation_id"] != opID {
			t.Fatalf("history %d: %v, want %s %s", i, m, want, envs[i].ID)
		}
		if _, ok := m["data"].(map[string]any); !ok {
			t.Errorf("event without data object: %v", m)
		}
	}
	if got := scrape(t, h, "butakero_websocket_open_connections"); got != 1 {
		t.Errorf("open sockets gauge %v, want 1", got)
	}
	// The fetch runs: its progress comes (re-sent while nothing newer), at
	// first 0 % from the gateway itself.
	for range 2 {
		m := s.next()
		if m["type"] != "progress" || m["stage"] != "fetch" || m["percent"] != 0.0 || m["operation_id"] != opID {
			t.Fatalf("message %v, want fetch progress at 0", m)
		}
	}
	// The fetcher's progress goes through.
	events.PublishProgress(h.env.NC, opID, "fetch", 42.5)
	for {
		m := s.next()
		if m["type"] != "progress" {
			t.Fatalf("message %v, want progress", m)
		}
		if m["percent"] == 42.5 {
			break
		}
	}
	// Live events follow, then the server closes after the last.
	next := []events.Event{downloaded, encoded, uploaded}
	parent := envs[len(envs)-1]
	for _, ev := range next {
		e, err := events.Next(parent, "dQw4w9WgXcQ", ev)
		if err != nil {
			t.Fatal(err)
		}
		h.env.Publish(t, e)
		m := s.nextEvent()
		if m["id"] != e.ID || m["kind"] != string(ev.Kind()) || m["type"] != ev.Type() {
			t.Fatalf("live event %v, want %s %s", m, ev.Kind(), e.ID)
		}
		if ev.Kind() == events.KindAudioDownloaded {
			// Encode progress starts.
			if m := s.next(); m["type"] != "progress" || m["stage"] != "encode" {
				t.Fatalf("message %v, want encode progress", m)
			}
		}
		parent = e
	}
	if code := s.closed(); code != websocket.CloseNormalClosure {
		t.Errorf("close code %d, want 1000", code)
	}
}

func TestWebSocketFinishedOperation(t *testing.T) {
	h := start(t)
	tests := []struct {
		name  string
		next  []events.Event
		kinds []string
	}{
		{name: "stored", next: []events.Event{resolved, downloaded, encoded, uploaded},
			kinds: []string{"song.requested", "video.resolved", "audio.downloaded", "dca.encoded", "upload.done"}},
		{name: "failed", next: []events.Event{resolved, failed}, kinds: []string{"song.requested", "video.resolved", "operation.failed"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opID, _ := publishHistory(t, h.env, tc.name, tc.next...)
			s := dial(t, h, opID, nil)
			for _, k := range tc.kinds {
				if m := s.nextEvent(); m["kind"] != k {
					t.Fatalf("event %v, want %s", m, k)
				}
			}
			if code := s.closed(); code != websocket.CloseNormalClosure {
				t.Errorf("close code %d, want 1000", code)
			}
		})
	}
}

func TestWebSocketRefusals(t *testing.T) {
	h := startWith(t, config.Config{AllowedOrigins: []string{"https://app.example"}})
	opID, _ := publishHistory(t, h.env, "rick astley", resolved)
	host := strings.TrimPrefix(h.url, "http://")
	_, port, _ := net.SplitHostPort(host)
	tests := []struct {
		name   string
		opID   string
		header http.Header
		plain  bool // a GET without upgrade
		status int
		code   string
	}{
		{name: "unknown operation", opID: events.NewID(), status: 404, code: "not_found"},
		{name: "malformed id", opID: "a.b", status: 400, code: "bad_request"},
		{name: "foreign origin", opID: opID, header: http.Header{"Origin": {"https://evil.example"}}, status: 403, code: "forbidden"},
		{name: "origin of a spoofed Host", opID: opID, header: http.Header{"Host": {"evil.example"}, "Origin": {"http://evil.example"}}, status: 403, code: "forbidden"},
		{name: "origin of a spoofed Host with the port", opID: opID, header: http.Header{"Host": {"evil.example:" + port}, "Origin": {"http://evil.example:" + port}}, status: 403, code: "forbidden"},
		{name: "not an upgrade", opID: opID, plain: true, status: 426, code: "upgrade_required"},
		{name: "the listen address", opID: opID, header: http.Header{"Origin": {"http://" + host}}, status: 101},
		{name: "the listen address as localhost", opID: opID, header: http.Header{"Origin": {"http://localhost:" + port}}, status: 101},
		{name: "configured origin", opID: opID, header: http.Header{"Origin": {"https://app.example"}}, status: 101},
		{name: "no Origin (a bot)", opID: opID, status: 101},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.plain {
				wantError(t, h.do(t, http.MethodGet, "/v1/operations/"+tc.opID+"/events", nil), tc.status, tc.code)
				return
			}
			wantDial(t, wsURL(h, tc.opID), tc.header, tc.status, tc.code)
		})
	}
	t.Run("PUBLIC_URL replaces the listen address", func(t *testing.T) {
		h := startWith(t, config.Config{PublicURL: "https://butakero.example:443/bot/"})
		opID, _ := publishHistory(t, h.env, "rick astley", resolved)
		for _, tc := range []struct {
			origin string
			status int
		}{
			{"https://butakero.example", 101},
			{"https://BUTAKERO.example", 101},
			{"http://butakero.example", 403},
			{h.url, 403},
		} {
			conn, res, err := websocket.DefaultDialer.Dial(wsURL(h, opID), http.Header{"Origin": {tc.origin}})
			if err == nil {
				conn.Close()
			}
			got := 0
			if res != nil {
				got = res.StatusCode
			}
			if got != tc.status {
				t.Errorf("Origin %s: status %d (%v), want %d", tc.origin, got, err, tc.status)
			}
		}
	})
	t.Run("cap on open sockets", func(t *testing.T) {
		h := startWith(t, config.Config{MaxSockets: 1})
		opID, _ := publishHistory(t, h.env, "rick astley", resolved)
		first := dial(t, h, opID, nil)
		first.nextEvent() // the socket is open and counted
		_, res, err := websocket.DefaultDialer.Dial(wsURL(h, opID), nil)
		if err == nil || res == nil {
			t.Fatalf("second socket: %v, want a 503", err)
		}
		wantError(t, read(t, res), 503, "too_many_connections")
		if res.Header.Get("Retry-After") == "" {
			t.Error("503 without Retry-After")
		}
	})
}

func ptr[T any](v T) *T { return &v }
