package app_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/butakero/butakero/cmd/butakero/app"
	"github.com/butakero/butakero/platform/audiofixture"
	"github.com/butakero/butakero/platform/config"
)

// TestReplay runs songs through the all-in-one, stops it, rebuilds the
// projections with `butakero replay`, and expects the same states after a
// restart.
func TestReplay(t *testing.T) {
	media := t.TempDir()
	audiofixture.Make(t, media, audiofixture.MP3("replay.mp3", 2*time.Second))
	audiofixture.Write(t, media, "replay-bad.mp3", bytes.Repeat([]byte("not audio "), 300))
	files := audiofixture.Serve(t, media)
	dataDir := t.TempDir()

	in := start(t, dataDir, nil)
	before := map[string]opStatus{}
	for _, name := range []string{"replay.mp3", "replay-bad.mp3"} {
		op := in.startSong(t, files.URL(name))
		before[op.OperationID] = in.waitFinal(t, op.OperationID, 90*time.Second)
	}
	if err := in.stop(); err != nil {
		t.Fatal(err)
	}

	cfg, err := config.Load(config.FromMap(map[string]string{"DATA_DIR": dataDir}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out bytes.Buffer
	m := &app.Main{Config: cfg, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := m.Replay(ctx, &out); err != nil {
		t.Fatalf("replay: %v\n%s", err, out.String())
	}
	t.Log(out.String())
	counts := regexp.MustCompile(`read (\d+) events .*: (\d+) applied, (\d+) already applied, (\d+) undecodable`).FindStringSubmatch(out.String())
	if counts == nil {
		t.Fatalf("replay printed no summary:\n%s", out.String())
	}
	read, _ := strconv.Atoi(counts[1])
	applied, _ := strconv.Atoi(counts[2])
	// Two operations of at least song.requested, video.resolved and a final
	// event each, all applied again into the emptied buckets.
	if read < 6 || applied != read {
		t.Errorf("replay read %d events and applied %d; want every one applied", read, applied)
	}

	again := start(t, dataDir, nil)
	for id, want := range before {
		code, got := again.status(t, id)
		if code != 200 || got != want {
			t.Errorf("operation %s after replay: HTTP %d %+v\nbefore: %+v", id, code, got, want)
		}
	}
}
