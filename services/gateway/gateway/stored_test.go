package gateway_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"github.com/butakero/butakero/events"
	"github.com/nats-io/nats.go"
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
	gate, stat := make(chan struct{}), make(chan struct{})
	fakeFetcher(t, h, func(opID string) {
		select {
		case first <- opID:
			// The first operation stores the song once the test follows
			// it, so that the gateway's hub is seen to deliver it.
			<-gate
		default:
			// The second one's stat of the stored DCA ends when the
			// test has seen the POST still waiting past video.resolved.
			<-stat
		}
	})

	// post runs on any goroutine: it reports, it does not fail the test.
	post := func() (opID, songID string, err error) {
		res, err := h.client.Post(h.url+"/api/audio/start?song="+url.QueryEscape("stored song"), "", nil)
		if err != nil {
			return "", "", err
		}
		defer res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return "", "", fmt.Errorf("status %d, want 200", res.StatusCode)
		}
		var got struct {
			OperationID string `json:"operation_id"`
			SongID      string `json:"song_id"`
		}
		if err := json.NewDecoder(res.Body).Decode(&got); err != nil {
			return "", "", err
		}
		return got.OperationID, got.SongID, nil
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
	op1, song1, err := post()
	if err != nil {
		t.Fatal(err)
	}
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

	// The second request, for the song now known stored: the gateway's
	// own connection delivers its video.resolved (a subscription of the
	// test's on it, flushed), and the POST has not answered then.
	resolved := make(chan *nats.Msg, 4)
	sub, err := h.gwNC.ChanSubscribe(events.Subject(events.KindVideoResolved, "*"), resolved)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := h.gwNC.Flush(); err != nil {
		t.Fatal(err)
	}
	type answer struct {
		opID, songID string
		err          error
	}
	answered := make(chan answer, 1)
	go func() {
		op, song, err := post()
		answered <- answer{op, song, err}
	}()
	for m := range resolved {
		if _, opID, _ := events.KindOf(m.Subject); opID != op1 {
			break
		}
	}
	if err := h.gwNC.Flush(); err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-answered:
		t.Errorf("the POST of operation %s answered at video.resolved, before the stored song's operation ended", a.opID)
		close(stat)
		return
	default:
	}
	close(stat)
	a := <-answered
	if a.err != nil {
		t.Fatal(a.err)
	}
	if a.songID != "storedsong1" {
		t.Fatalf("song_id %q, want storedsong1", a.songID)
	}
	if got := status(a.opID); got != "success" {
		t.Errorf("first status read after the POST of a stored song: %q, want success", got)
	}
}
