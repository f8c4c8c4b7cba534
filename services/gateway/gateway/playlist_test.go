package gateway_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/runtime/config"
	"github.com/nats-io/nats.go/jetstream"
)

// TestPlaylistAnsweredAtOnce: a playlist's parent has no song id, so the
// seed's start and POST /v1/operations answer it at once, with the
// parent's id and an empty song_id, without waiting for a resolver. No
// resolver runs here and the wait for a song id is an hour: a request that
// waited would outlast the client's timeout.
func TestPlaylistAnsweredAtOnce(t *testing.T) {
	h := startWaiting(t, config.Config{AllowedMediaHosts: []string{"cdn.example.com"}}, nil, time.Hour)
	const list = "PLatonce00000000000000000000000001"
	tests := []struct {
		name, method, path, body string
		status                   int
	}{
		{"seed, a YouTube playlist URL", http.MethodPost, "/api/audio/start?song=" + url.QueryEscape("https://www.youtube.com/playlist?list="+list), "", 200},
		{"seed, an M3U on an allowed host", http.MethodPost, "/api/audio/start?song=" + url.QueryEscape("https://cdn.example.com/lists/mix.m3u"), "", 200},
		{"v1, a watch URL expanded", http.MethodPost, "/v1/operations", `{"query":"https://www.youtube.com/watch?v=dQw4w9WgXcQ&list=` + list + `","playlist":true}`, 202},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := h.doBody(t, tc.method, tc.path, tc.body, map[string]string{"Content-Type": "application/json"})
			var body map[string]any
			r.decode(t, tc.status, &body)
			opID, _ := body["operation_id"].(string)
			if songID, ok := body["song_id"]; !ok || songID != "" || events.ValidOperationID(opID) != nil {
				t.Fatalf("answer %s, want an operation id and an empty song_id", r.body)
			}
			if n := requestedCount(t, h.env, opID); n != 1 {
				t.Errorf("%d song.requested for the parent %s, want 1", n, opID)
			}
		})
	}
}

// TestIdempotentPlaylistReplay: the "playlist" flag is part of what an
// Idempotency-Key remembers. The first request's song.requested is lost
// (the stream refuses it: the answer is a 500); a retry that drops the
// flag is another request (422), and the true retry publishes the first
// request as it was, flag included.
func TestIdempotentPlaylistReplay(t *testing.T) {
	h := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const query = "https://www.youtube.com/watch?v=dQw4w9WgXcQ&list=PLreplay0000000000000000000000001"
	asPlaylist := `{"query":"` + query + `","playlist":true}`
	header := map[string]string{"Content-Type": "application/json", "Idempotency-Key": "playlist-retry-1"}

	// The stream takes no new message while the first request is made.
	info, err := h.env.Stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	orig := info.Config
	full := orig
	full.MaxMsgs, full.Discard = int64(max(info.State.Msgs, 1)), jetstream.DiscardNew
	if info.State.Msgs == 0 {
		// An empty stream cannot be full: fill it with one message.
		publishHistory(t, h.env, "filler")
	}
	if _, err := h.env.JS.UpdateStream(ctx, full); err != nil {
		t.Fatal(err)
	}
	r := h.doBody(t, http.MethodPost, "/v1/operations", asPlaylist, header)
	if _, err := h.env.JS.UpdateStream(ctx, orig); err != nil {
		t.Fatal(err)
	}
	if r.status != http.StatusInternalServerError {
		t.Fatalf("the first request, whose publish the stream refused: %d %s, want 500", r.status, r.body)
	}
	if n := requestedCount(t, h.env, "*"); n > 1 {
		t.Fatalf("%d song.requested stored while the stream was full", n)
	}

	r = h.doBody(t, http.MethodPost, "/v1/operations", `{"query":"`+query+`"}`, header)
	wantError(t, r, http.StatusUnprocessableEntity, "idempotency_key_reused")

	r = h.doBody(t, http.MethodPost, "/v1/operations", asPlaylist, header)
	if r.status != http.StatusAccepted || r.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("the retry: %d (replayed %q) %s, want 202 replayed", r.status, r.header.Get("Idempotent-Replayed"), r.body)
	}
	var body struct {
		OperationID string `json:"operation_id"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatal(err)
	}
	_, ev := h.env.Next(ctx, t, events.KindSongRequested, body.OperationID)
	if req := ev.(events.SongRequested); req.Query != query || !req.Playlist {
		t.Errorf("the replay published %+v, want the query with playlist set", req)
	}
	if n := requestedCount(t, h.env, body.OperationID); n != 1 {
		t.Errorf("%d song.requested for %s, want 1", n, body.OperationID)
	}
}
