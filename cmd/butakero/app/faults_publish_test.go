package app_test

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/testkit/audiofixture"
	"github.com/butakero/butakero/platform/testkit/natstest"
)

// faultLostPublish runs the all-in-one against a nats-server process
// through a proxy that cuts the connection at a chosen publish, before the
// server sees it. In turn, the first publish of each event a stage
// publishes is lost; every operation still ends as it should, with one
// copy of each event. Last, the process is killed (SIGKILL) between the
// encoder's two publishes, dca.encoded stored and upload.done not yet
// sent, and started again: the operation ends success.
func faultLostPublish(t *testing.T, bin string) {
	srv := startNATSCluster(t, 1)
	proxy := natstest.StartFaultProxy(t, srv.nodes[0].client)
	obs := observe(t, srv.urls())
	media := t.TempDir()
	const d = 2 * time.Second
	for i := range 5 {
		audiofixture.Make(t, media, audiofixture.M4A(fmt.Sprintf("tone%d.m4a", i), d))
	}
	audiofixture.Write(t, media, "corrupt.mp3", []byte(strings.Repeat("this is not audio at all\n", 400)))
	files := audiofixture.Serve(t, media)
	vars := map[string]string{"NATS_URL": proxy.URL(), "DATA_DIR": t.TempDir()}
	p := startProc(t, bin, "butakero", vars)

	success := []events.Kind{events.KindVideoResolved, events.KindAudioDownloaded, events.KindDCAEncoded, events.KindUploadDone}
	cases := []struct {
		lost       events.Kind
		file       string
		wantStatus string
		want       []events.Kind // each stored once
	}{
		{events.KindVideoResolved, "tone0.m4a", "success", success},
		{events.KindAudioDownloaded, "tone1.m4a", "success", success},
		{events.KindDCAEncoded, "tone2.m4a", "success", success},
		{events.KindUploadDone, "tone3.m4a", "success", success},
		{events.KindOperationFailed, "corrupt.mp3", "failed",
			[]events.Kind{events.KindVideoResolved, events.KindAudioDownloaded, events.KindOperationFailed}},
	}
	for _, tc := range cases {
		t.Run(string(tc.lost)+" lost", func(t *testing.T) {
			before := proxy.Fired()
			proxy.Arm(string(tc.lost)+".", nil)
			opID := p.start(t, files.URL(tc.file))
			op := p.waitFinal(t, opID, 2*time.Minute)
			if proxy.Fired() != before+1 {
				t.Fatalf("the proxy cut no publish of %s: the fault never happened", tc.lost)
			}
			if op.Status != tc.wantStatus {
				t.Errorf("operation ended %q (%s: %s), want %s", op.Status, op.ErrorCode, op.Message, tc.wantStatus)
			}
			checkOnce(t, obs, opID, tc.want)
			if tc.wantStatus == "success" {
				checkCovers(t, tc.file, p.dca(t, op.SongID), d)
			}
		})
	}

	t.Run("SIGKILL between dca.encoded and upload.done", func(t *testing.T) {
		before := proxy.Fired()
		proxy.Arm(string(events.KindUploadDone)+".", func() {
			_ = p.cmd.Process.Signal(syscall.SIGKILL)
			<-p.exited
		})
		opID := p.start(t, files.URL("tone4.m4a"))
		select {
		case <-p.exited:
		case <-time.After(2 * time.Minute):
			t.Fatal("the process was never killed: upload.done was not published")
		}
		if proxy.Fired() != before+1 {
			t.Fatal("the proxy cut no publish of upload.done")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if n, err := obs.count(ctx, events.KindDCAEncoded, opID); err != nil || n != 1 {
			t.Fatalf("%d dca.encoded stored when the process died (%v); the kill was meant to fall between the two publishes", n, err)
		}
		again := startProc(t, bin, "butakero (after the crash)", vars)
		op := again.waitFinal(t, opID, 2*time.Minute)
		if op.Status != "success" {
			t.Fatalf("operation ended %q (%s: %s), want success", op.Status, op.ErrorCode, op.Message)
		}
		checkOnce(t, obs, opID, success)
		checkCovers(t, "after the crash", again.dca(t, op.SongID), d)
	})
}

// checkOnce fails t unless the stream holds exactly one event of each of
// want for opID, and none of the other pipeline kinds.
func checkOnce(t *testing.T, obs *observer, opID string, want []events.Kind) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wanted := map[events.Kind]bool{events.KindSongRequested: true}
	for _, k := range want {
		wanted[k] = true
	}
	for _, k := range events.Kinds {
		if events.IsAnnouncement(k) {
			continue // one per fetch attempt
		}
		n, err := obs.count(ctx, k, opID)
		if err != nil {
			t.Fatalf("count %s: %v", k, err)
		}
		if w := map[bool]int{true: 1, false: 0}[wanted[k]]; n != w {
			t.Errorf("%d %s events in the stream, want %d", n, k, w)
		}
	}
}
