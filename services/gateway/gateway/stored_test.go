package gateway_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/butakero/butakero/events"
)

// fakeFetcher stands in for the fetcher for songs already stored: it
// answers video.resolved with upload.done (cached) once hold(opID)
// returns.
func fakeFetcher(t *testing.T, h *harness, hold func(opID string)) {
	t.Helper()
	fakeStage(t, h.env, events.ConsumerFetcher, func(parent events.Envelope, ev events.Event) (events.Envelope, bool, error) {
		hold(parent.OperationID)
		song := ev.(events.VideoResolved).Song
		next, err := events.Next(parent, song.ID, events.UploadDone{Song: song, Key: "audio/" + song.ID + ".dca", Size: 1000, Cached: true})
		return next, true, err
	})
}

// TestStartStoredSong: once the gateway has seen a song stored, a new
// request for it answers only once the operation has ended (the fetcher
// answers a stored song from its DCA), so the client's first status read
// is final: no second poll.
func TestStartStoredSong(t *testing.T) {
	h := start(t)
	fakeResolver(t, h.env, map[string]string{"stored song": "storedsong1"})
	first := make(chan string, 1)
	gate := make(chan struct{})
	fakeFetcher(t, h, func(opID string) {
		select {
		case first <- opID:
			// The first operation stores the song once the test follows
			// it, so that the gateway's hub is seen to deliver it.
			<-gate
		default:
			// Later ones: the stat of the stored DCA, a moment's work
			// (an eighth of the most the POST waits).
			time.Sleep(startWait / 8)
		}
	})

	post := func() (opID, songID string) {
		t.Helper()
		r := h.do(t, http.MethodPost, "/api/audio/start?song="+url.QueryEscape("stored song"), nil)
		if r.status != http.StatusOK {
			t.Fatalf("status %d, want 200 (body %s)", r.status, r.body)
		}
		var got struct {
			OperationID string `json:"operation_id"`
			SongID      string `json:"song_id"`
		}
		if err := json.Unmarshal(r.body, &got); err != nil {
			t.Fatal(err)
		}
		return got.OperationID, got.SongID
	}
	status := func(opID string) string {
		t.Helper()
		st := h.do(t, http.MethodGet, "/api/audio/status?operation_id="+opID, nil)
		var sb struct {
			Status struct {
				Status string `json:"status"`
			} `json:"status"`
		}
		if err := json.Unmarshal(st.body, &sb); err != nil {
			t.Fatal(err)
		}
		return sb.Status.Status
	}

	// The first request: the song is not known stored; its upload.done
	// reaches the socket through the hub, which then knows the song.
	op1, song1 := post()
	if song1 != "storedsong1" {
		t.Fatalf("song_id %q, want storedsong1", song1)
	}
	s := dial(t, h, op1, nil)
	close(gate)
	for {
		if m := s.nextEvent(); m["kind"] == "upload.done" {
			break
		}
	}

	op2, song2 := post()
	if song2 != "storedsong1" {
		t.Fatalf("song_id %q, want storedsong1", song2)
	}
	if got := status(op2); got != "success" {
		t.Errorf("first status read after the POST of a stored song: %q, want success", got)
	}
}
