package app_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/butakero/butakero/platform/testkit/audiofixture"
)

// TestOneSongOneDownload runs the all-in-one and checks the two halves of
// "one song, one download" by the requests the media server receives:
// twenty simultaneous requests for one new song fetch its source no more
// often than one request for an identical song does, and all twenty end
// with the same song and DCA; a request for a stored song reaches
// upload.done without fetching anything. It runs in each profile: the
// stored DCA is found in the Object Store, and in S3.
func TestOneSongOneDownload(t *testing.T) {
	inEachProfile(t, oneSongOneDownload)
}

func oneSongOneDownload(t *testing.T, p profile) {
	media := t.TempDir()
	const d = 4 * time.Second
	// Two identical fixtures: one measures what one request costs, the
	// other gets the twenty.
	audiofixture.Make(t, media, audiofixture.M4A("single.m4a", d))
	audiofixture.Make(t, media, audiofixture.M4A("shared.m4a", d))
	srv := audiofixture.Serve(t, media)
	in := start(t, t.TempDir(), p.env(t))

	baseline := 0
	t.Run("one request", func(t *testing.T) {
		op := in.startSong(t, srv.URL("single.m4a"))
		if st := in.waitFinal(t, op.OperationID, 90*time.Second); st.Status != "success" {
			t.Fatalf("ended %q: %q", st.Status, st.Message)
		}
		baseline = srv.Hits("/single.m4a")
		if baseline == 0 {
			t.Fatal("the song succeeded without its source being requested")
		}
		t.Logf("one request fetched the source with %d HTTP requests", baseline)
	})

	var shared opStatus
	t.Run("twenty simultaneous requests share one download", func(t *testing.T) {
		const n = 20
		ops := startConcurrently(t, in, srv.URL("shared.m4a"), n)
		for i, op := range ops {
			st := in.waitFinal(t, op.OperationID, 120*time.Second)
			if st.Status != "success" || st.Stage != "stored" {
				t.Fatalf("request %d ended %q at %q: %q", i, st.Status, st.Stage, st.Message)
			}
			if i == 0 {
				shared = st
			}
			if st.SongID != shared.SongID || st.SongID != op.SongID || st.Data != shared.Data {
				t.Errorf("request %d: song %q, DCA %q; request 0: song %q, DCA %q", i, st.SongID, st.Data, shared.SongID, shared.Data)
			}
		}
		if hits := srv.Hits("/shared.m4a"); hits > baseline {
			t.Errorf("%d requests fetched the source with %d HTTP requests; one request takes %d", n, hits, baseline)
		}
		if info := in.dca(t, shared.SongID); info.Frames == 0 || (info.Duration-d).Abs() > d/100 {
			t.Errorf("the shared DCA has %d frames covering %s, want %s", info.Frames, info.Duration, d)
		}
	})

	t.Run("a stored song is served without a fetch", func(t *testing.T) {
		if shared.SongID == "" {
			t.Fatal("no stored song")
		}
		before := srv.Hits("/shared.m4a")
		op := in.startSong(t, srv.URL("shared.m4a"))
		st := in.waitFinal(t, op.OperationID, 60*time.Second)
		if st.Status != "success" || st.Data != shared.Data {
			t.Fatalf("ended %q with %q: %q, want success with %q", st.Status, st.Data, st.Message, shared.Data)
		}
		if hits := srv.Hits("/shared.m4a"); hits != before {
			t.Errorf("the source was requested %d more times", hits-before)
		}
		// The history goes from video.resolved straight to a cached
		// upload.done: nothing was downloaded or encoded.
		var kinds []string
		cached := false
		for _, ev := range in.history(t, op.OperationID) {
			kinds = append(kinds, ev.Kind)
			if ev.Kind == "upload.done" {
				cached = ev.Data.Cached
			}
		}
		want := []string{"song.requested", "video.resolved", "upload.done"}
		if fmt.Sprint(kinds) != fmt.Sprint(want) || !cached {
			t.Errorf("history %v (cached %v), want %v with a cached upload.done", kinds, cached, want)
		}
	})
}

// startConcurrently posts n requests for song at once and returns their
// answers, in the order they were sent.
func startConcurrently(t *testing.T, in *instance, song string, n int) []startResp {
	t.Helper()
	ops := make([]startResp, n)
	errs := make([]error, n)
	var ready, wg sync.WaitGroup
	ready.Add(n)
	release := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ready.Done()
			<-release
			ops[i], errs[i] = postStart(in.base, song)
		}()
	}
	ready.Wait()
	close(release)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	return ops
}

// postStart is startSong for a goroutine other than the test's: it
// returns its failure instead of ending the test.
func postStart(base, song string) (startResp, error) {
	resp, err := http.Post(base+"/api/audio/start?song="+url.QueryEscape(song), "", nil)
	if err != nil {
		return startResp{}, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var sr startResp
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &sr) != nil || sr.OperationID == "" {
		return startResp{}, fmt.Errorf("start: HTTP %d %s", resp.StatusCode, body)
	}
	return sr, nil
}

// historyEvent is one event of GET /v1/operations/{id}, with the fields
// these tests read.
type historyEvent struct {
	Kind string `json:"kind"`
	Data struct {
		Cached bool `json:"cached"`
	} `json:"data"`
}

// history is the operation's event history, in stream order.
func (in *instance) history(t *testing.T, opID string) []historyEvent {
	t.Helper()
	var body struct {
		Events []historyEvent `json:"events"`
	}
	getJSON(t, in.base+"/v1/operations/"+url.PathEscape(opID), &body)
	return body.Events
}
