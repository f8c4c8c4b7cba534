package recorder_test

import (
	"context"
	"io"
	"log/slog"
	"reflect"
	"testing"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/kvstore"
	"github.com/butakero/butakero/platform/natstest"
	"github.com/butakero/butakero/platform/projection"
	"github.com/butakero/butakero/services/recorder/recorder"
)

// TestReplayReproducesTheLiveProjection projects a history with the live
// recorder, empties the buckets, replays, and expects the same records.
func TestReplayReproducesTheLiveProjection(t *testing.T) {
	env := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	store, err := kvstore.Open(ctx, env.JS, 1)
	if err != nil {
		t.Fatal(err)
	}
	song := events.Song{ID: "dQw4w9WgXcQ", URL: "https://www.youtube.com/watch?v=dQw4w9WgXcQ", Source: "youtube"}
	publishHistory := func(opID string, final events.Event) {
		req, _ := events.New(opID, "", events.SongRequested{Query: song.URL})
		res, _ := events.Next(req, song.ID, events.VideoResolved{Song: song})
		env.Publish(t, req)
		env.Publish(t, res)
		if final != nil {
			end, _ := events.Next(res, song.ID, final)
			env.Publish(t, end)
		}
	}
	publishHistory("op-ok", events.UploadDone{Song: song, Key: "audio/dQw4w9WgXcQ.dca", Location: "nats://objects/b/audio/dQw4w9WgXcQ.dca", Size: 1234})
	publishHistory("op-failed", events.OperationFailed{Stage: "fetch", Code: events.CodeNotFound, Message: "no such video", Attempts: 1})
	publishHistory("op-running", nil)
	// A message no version of the recorder can decode is skipped, not fatal.
	if _, err := env.JS.Publish(ctx, events.Subject(events.KindVideoResolved, "op-garbage"), []byte("{not json")); err != nil {
		t.Fatal(err)
	}

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- recorder.Run(runCtx, recorder.Deps{JS: env.JS, Store: store, Log: log}) }()
	waitFor(ctx, t, store, "op-running", func(op projection.Operation) bool { return op.Stage == projection.StageResolved })
	waitFor(ctx, t, store, "op-ok", func(op projection.Operation) bool { return op.Final() })
	waitFor(ctx, t, store, "op-failed", func(op projection.Operation) bool { return op.Final() })
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	ids := []string{"op-ok", "op-failed", "op-running"}
	live := map[string]projection.Operation{}
	for _, id := range ids {
		live[id], _ = store.Operation(ctx, id)
	}
	liveSong, _ := store.Song(ctx, song.ID)

	st, err := recorder.Replay(ctx, env.JS, store, log)
	if err != nil {
		t.Fatal(err)
	}
	if st.Applied != 0 || st.Events != 9 {
		t.Errorf("replay over a current projection: %+v, want 9 events and nothing applied", st)
	}

	if err := kvstore.Reset(ctx, env.JS); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Operation(ctx, "op-ok"); err != projection.ErrNotFound {
		t.Fatalf("after reset: %v, want not found", err)
	}
	st, err = recorder.Replay(ctx, env.JS, store, log)
	if err != nil {
		t.Fatal(err)
	}
	if st.Events != 9 || st.Undecodable != 1 || st.Applied != 8 {
		t.Errorf("replay into empty buckets: %+v, want 9 events, 8 applied, 1 undecodable", st)
	}
	for _, id := range ids {
		got, err := store.Operation(ctx, id)
		if err != nil {
			t.Fatalf("%s after replay: %v", id, err)
		}
		// UpdatedAt is the stream's time of the event, the same in both runs.
		if !reflect.DeepEqual(got, live[id]) {
			t.Errorf("%s: replayed %+v\nlive     %+v", id, got, live[id])
		}
	}
	if got, _ := store.Song(ctx, song.ID); !reflect.DeepEqual(got, liveSong) {
		t.Errorf("song: replayed %+v\nlive     %+v", got, liveSong)
	}
}

// waitFor watches the operation's key until ok holds.
func waitFor(ctx context.Context, t *testing.T, store *kvstore.Store, id string, ok func(projection.Operation) bool) {
	t.Helper()
	for {
		op, err := store.Operation(ctx, id)
		if err == nil && ok(op) {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("operation %s never reached the expected state (last %+v, %v)", id, op, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
