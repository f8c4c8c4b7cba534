package app_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/butakero/butakero/cmd/butakero/app"
	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/runtime/config"
	"github.com/butakero/butakero/platform/runtime/natsconn"
	"github.com/butakero/butakero/platform/runtime/natsembed"
	"github.com/butakero/butakero/platform/testkit/audiofixture"
	"github.com/butakero/butakero/platform/testkit/loopback"
	"github.com/butakero/butakero/services/recorder/recorder"
	"github.com/nats-io/nats.go/jetstream"
)

// TestReplay runs songs through the all-in-one; `butakero replay` beside
// it is refused while its recorder runs; once it is stopped the replay
// rebuilds the projections; after the stream has lost its first
// operation's events a replay keeps that operation's projection; a
// restart serves the same states throughout.
func TestReplay(t *testing.T) {
	media := t.TempDir()
	audiofixture.Make(t, media, audiofixture.MP3("replay.mp3", 2*time.Second))
	audiofixture.Write(t, media, "replay-bad.mp3", bytes.Repeat([]byte("not audio "), 300))
	audiofixture.Make(t, media, audiofixture.Spec{Name: "replay-long.wav", Duration: 30 * time.Minute, Args: []string{"-c:a", "pcm_s16le", "-ar", "8000", "-ac", "1"}})
	files := audiofixture.Serve(t, media)
	dataDir := t.TempDir()
	natsAddr := loopback.Addr(t)

	in := start(t, dataDir, map[string]string{"NATS_LISTEN": natsAddr, "NATS_TOKEN": natsToken})
	var ops []string // in the order they ran
	before := map[string]opStatus{}
	for _, name := range []string{"replay.mp3", "replay-bad.mp3"} {
		op := in.startSong(t, files.URL(name))
		before[op.OperationID] = in.waitFinal(t, op.OperationID, 90*time.Second)
		ops = append(ops, op.OperationID)
	}
	// A cancelled operation's end is history too.
	long := in.startSong(t, files.URL("replay-long.wav"))
	if code, body := in.cancel(t, long.OperationID); code != http.StatusAccepted {
		t.Fatalf("DELETE: %d %s", code, body)
	}
	if before[long.OperationID] = in.waitFinal(t, long.OperationID, 90*time.Second); before[long.OperationID].Status != "cancelled" {
		t.Fatalf("the cancelled operation is %q", before[long.OperationID].Status)
	}
	ops = append(ops, long.OperationID)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	replay := func(t *testing.T, env map[string]string) (string, error) {
		t.Helper()
		cfg, err := config.Load(config.FromMap(env))
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		m := &app.Main{Config: cfg, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
		err = m.Replay(ctx, &out)
		t.Log(out.String())
		return out.String(), err
	}
	sameStates := func(t *testing.T, in *instance) {
		t.Helper()
		for id, want := range before {
			if code, got := in.status(t, id); code != 200 || got != want {
				t.Errorf("operation %s: HTTP %d %+v\nbefore: %+v", id, code, got, want)
			}
		}
	}

	t.Run("refused while a recorder runs", func(t *testing.T) {
		out, err := replay(t, map[string]string{"NATS_URL": "nats://" + natsAddr, "NATS_TOKEN": natsToken, "DATA_DIR": t.TempDir()})
		var running *recorder.RecorderRunningError
		if !errors.As(err, &running) {
			t.Fatalf("replay beside a running butakero: %v, want a RecorderRunningError", err)
		}
		if strings.Contains(out, "emptied") {
			t.Errorf("the refused replay emptied the buckets:\n%s", out)
		}
		sameStates(t, in)
	})
	if err := in.stop(); err != nil {
		t.Fatal(err)
	}

	t.Run("rebuilds once the recorder is stopped", func(t *testing.T) {
		out, err := replay(t, map[string]string{"DATA_DIR": dataDir})
		if err != nil {
			t.Fatalf("replay: %v", err)
		}
		counts := regexp.MustCompile(`read (\d+) events .*: (\d+) applied, (\d+) already applied, (\d+) undecodable`).FindStringSubmatch(out)
		if counts == nil || !strings.Contains(out, "emptied the KV buckets") {
			t.Fatalf("replay printed no summary or did not empty the buckets:\n%s", out)
		}
		read, _ := strconv.Atoi(counts[1])
		applied, _ := strconv.Atoi(counts[2])
		// Two operations of at least song.requested, video.resolved and a
		// final event each, all applied again into the emptied buckets.
		if read < 6 || applied != read {
			t.Errorf("replay read %d events and applied %d; want every one applied", read, applied)
		}
	})

	t.Run("a trimmed stream keeps the projections", func(t *testing.T) {
		// Drop every event before the second operation's, as a stream limit
		// would (STREAM_MAX_AGE, STREAM_MAX_BYTES).
		srv, err := natsembed.Start(natsembed.Options{StoreDir: filepath.Join(dataDir, "jetstream"), Auth: natsconn.Auth{Token: natsToken}})
		if err != nil {
			t.Fatal(err)
		}
		nc, err := srv.Connect("test")
		if err != nil {
			t.Fatal(err)
		}
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		stream, err := js.Stream(ctx, events.StreamName)
		if err != nil {
			t.Fatal(err)
		}
		second, err := stream.GetLastMsgForSubject(ctx, events.Subject(events.KindSongRequested, ops[1]))
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Purge(ctx, jetstream.WithPurgeSequence(second.Sequence)); err != nil {
			t.Fatal(err)
		}
		nc.Close()
		srv.Shutdown()

		out, err := replay(t, map[string]string{"DATA_DIR": dataDir})
		if err != nil {
			t.Fatalf("replay: %v", err)
		}
		if !strings.Contains(out, "no longer holds its events before sequence "+strconv.FormatUint(second.Sequence, 10)) || strings.Contains(out, "emptied") {
			t.Errorf("replay of a trimmed stream did not keep the buckets:\n%s", out)
		}
		if !strings.Contains(out, ": 0 applied") {
			t.Errorf("replay over current records applied something:\n%s", out)
		}
	})

	again := start(t, dataDir, nil)
	sameStates(t, again)
}
