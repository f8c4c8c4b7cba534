package app_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/testkit/audiofixture"
	"github.com/butakero/butakero/platform/testkit/loopback"
)

// longSong is long enough that its encode lasts several seconds, so that
// a fault can land in the middle of it: 8 minutes of 16 kHz mono WAV,
// which ffmpeg writes at once and the encoder resamples.
func longSong(t *testing.T) (*audiofixture.Server, string, time.Duration) {
	t.Helper()
	const d = 8 * time.Minute
	media := t.TempDir()
	audiofixture.Make(t, media, audiofixture.Spec{Name: "long.wav", Duration: d, Args: []string{"-c:a", "pcm_s16le", "-ar", "16000"}})
	return audiofixture.Serve(t, media), "long.wav", d
}

// midEncode is an all-in-one caught in the middle of longSong's encode.
type midEncode struct {
	first *proc
	vars  map[string]string // first's: a restart on the same DATA_DIR
	obs   *observer
	opID  string
	at    events.Progress // the encode's progress when caught
	d     time.Duration   // the song's length
}

// startMidEncode runs the all-in-one on a fresh DATA_DIR with
// SHUTDOWN_GRACE grace, asks for longSong, and returns once its encode
// is 5 % done, for a fault to land in the middle of it.
func startMidEncode(t *testing.T, bin, grace string) midEncode {
	t.Helper()
	files, name, d := longSong(t)
	m := midEncode{d: d, vars: map[string]string{
		"DATA_DIR":       t.TempDir(),
		"NATS_LISTEN":    loopback.Addr(t),
		"NATS_TOKEN":     natsToken,
		"HTTP_ADDR":      loopback.Addr(t),
		"STAGE_TIMEOUT":  "3m",
		"SHUTDOWN_GRACE": grace,
	}}
	m.first = startProc(t, bin, "butakero (first run)", m.vars)
	m.obs = observe(t, "nats://"+m.vars["NATS_LISTEN"])
	progress := m.obs.progress(t)
	m.opID = m.first.start(t, files.URL(name))
	m.at = waitProgress(t, progress, m.opID, "encode", 5, 2*time.Minute)
	return m
}

// faultKillMidEncode kills the all-in-one (SIGKILL: no shutdown at all)
// while it encodes, and starts it again on the same DATA_DIR. JetStream
// hands the encode to the new process once the dead one's AckWait runs
// out: the operation succeeds with a complete DCA, stored once, and its
// status counts the attempt the crash cut short.
func faultKillMidEncode(t *testing.T, bin string) {
	m := startMidEncode(t, bin, "5s")
	m.first.kill(t)
	t.Logf("SIGKILL at %.1f %% of the encode", m.at.Percent)
	obs, opID, d := m.obs, m.opID, m.d

	again := startProc(t, bin, "butakero (after the crash)", m.vars)
	op := again.waitFinal(t, opID, 3*time.Minute)
	if op.Status != "success" {
		t.Fatalf("operation ended %q (%s: %s), want success", op.Status, op.ErrorCode, op.Message)
	}
	if op.Attempts < 2 || op.Failures < 1 {
		t.Errorf("status counts %d attempts and %d failures; the crash cut one attempt short", op.Attempts, op.Failures)
	}
	checkCovers(t, "after the crash", again.dca(t, op.SongID), d)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, k := range []events.Kind{events.KindDCAEncoded, events.KindUploadDone} {
		if n, err := obs.count(ctx, k, opID); err != nil || n != 1 {
			t.Errorf("%d %s events in the stream (%v), want 1", n, k, err)
		}
	}
	if env := obs.last(ctx, t, events.KindUploadDone, opID); env.Attempt < 2 {
		t.Errorf("upload.done was published by attempt %d; the first attempt was killed", env.Attempt)
	}
	if n, err := obs.count(ctx, events.KindOperationFailed, opID); err != nil || n != 0 {
		t.Errorf("%d operation.failed events (%v), want none", n, err)
	}
}

// faultTermMidEncode sends SIGTERM while the all-in-one encodes. Within
// SHUTDOWN_GRACE the encode finishes before the process exits (status 0)
// and nothing is done again after a restart; past it the message is
// released (Nak) and the restarted process takes it at once.
func faultTermMidEncode(t *testing.T, bin string) {
	cases := []struct {
		name         string
		grace        string
		wantAttempts int
	}{
		{name: "the encode finishes within SHUTDOWN_GRACE", grace: "2m", wantAttempts: 1},
		{name: "the encode is released when SHUTDOWN_GRACE runs out", grace: "100ms", wantAttempts: 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := startMidEncode(t, bin, tc.grace)
			first, obs, opID, d := m.first, m.obs, m.opID, m.d
			if err := first.terminate(t, 3*time.Minute); err != nil {
				t.Fatalf("exit after SIGTERM: %v\n%s", err, first.logs.Tail(20))
			}
			again := startProc(t, bin, "butakero (restarted)", m.vars)
			op := again.waitFinal(t, opID, 3*time.Minute)
			if op.Status != "success" {
				t.Fatalf("operation ended %q (%s: %s), want success", op.Status, op.ErrorCode, op.Message)
			}
			if op.Attempts != tc.wantAttempts || op.Failures != tc.wantAttempts-1 {
				t.Errorf("status counts %d attempts and %d failures, want %d and %d",
					op.Attempts, op.Failures, tc.wantAttempts, tc.wantAttempts-1)
			}
			checkCovers(t, "after the restart", again.dca(t, op.SongID), d)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if n, err := obs.count(ctx, events.KindUploadDone, opID); err != nil || n != 1 {
				t.Errorf("%d upload.done events (%v), want 1", n, err)
			}
			if strings.Contains(first.logs.Tail(200), "level=ERROR") {
				t.Errorf("errors logged by the shutdown:\n%s", first.logs.Tail(20))
			}
		})
	}
}
