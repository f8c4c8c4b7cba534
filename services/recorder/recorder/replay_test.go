package recorder_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/projection"
	"github.com/butakero/butakero/platform/store/kvstore"
	"github.com/butakero/butakero/platform/testkit/natstest"
	"github.com/butakero/butakero/services/recorder/recorder"
)

// TestReplayReproducesTheLiveProjection projects a history with the live
// recorder, empties the buckets, replays, and expects the same records.
func TestReplayReproducesTheLiveProjection(t *testing.T) {
	env, ctx := natstest.StartWithin(t, 60*time.Second)
	store := openStore(t, env)
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

// TestCheckNoRecorder: the replay's guard sees a recorder that runs and
// none when it has stopped or never ran.
func TestCheckNoRecorder(t *testing.T) {
	env, ctx := natstest.StartWithin(t, 60*time.Second)
	store := openStore(t, env)
	var stop func() error
	steps := []struct {
		name    string
		before  func(t *testing.T)
		running bool
	}{
		{"no recorder ever ran", func(*testing.T) {}, false},
		{"a recorder is running", func(t *testing.T) {
			stop = start(t, env, store)
			// Once it has applied an event it is certainly consuming.
			opID := events.NewID()
			waitOp(ctx, t, env, opID, upTo(publish(t, env, opID, "", events.SongRequested{Query: "q"})))
		}, true},
		{"the recorder has stopped", func(t *testing.T) {
			if err := stop(); err != nil {
				t.Fatal(err)
			}
		}, false},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			st.before(t)
			// The window only bounds the wait for a sign of a recorder; a
			// running one shows within milliseconds.
			err := recorder.CheckNoRecorder(ctx, env.JS, 2*time.Second)
			var running *recorder.RecorderRunningError
			if st.running && !errors.As(err, &running) {
				t.Fatalf("CheckNoRecorder: %v, want a RecorderRunningError", err)
			}
			if !st.running && err != nil {
				t.Fatalf("CheckNoRecorder: %v, want nil", err)
			}
			if running != nil && !strings.Contains(err.Error(), "stop every butakero and recorder process") {
				t.Errorf("message %q does not say what to do", err)
			}
		})
	}
}

// TestReplayOfALimitedStream projects two operations, then limits the
// stream's size (events.StreamLimits) so that the first operation's events
// are dropped, and replays: only the second one's events are read, and the
// first operation's records stay as they are.
func TestReplayOfALimitedStream(t *testing.T) {
	env, ctx := natstest.StartWithin(t, 60*time.Second)
	store := openStore(t, env)
	stop := start(t, env, store)
	stateBytes := func() uint64 {
		t.Helper()
		info, err := env.Stream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Bytes
	}
	history := func(s events.Song) []events.Event {
		return []events.Event{events.SongRequested{Query: s.URL}, events.VideoResolved{Song: s},
			events.UploadDone{Song: s, Key: "audio/" + s.ID + ".dca", Location: "nats://objects/b/audio/" + s.ID + ".dca", Size: 10}}
	}
	oldSong := events.Song{ID: "oldsong0001", URL: "https://youtu.be/oldsong0001", Source: "youtube", Title: "Old"}
	newSong := events.Song{ID: "newsong0001", URL: "https://youtu.be/newsong0001", Source: "youtube", Title: "New"}
	waitOp(ctx, t, env, "op-old", upTo(publish(t, env, "op-old", oldSong.ID, history(oldSong)...)))
	oldBytes := stateBytes()
	waitOp(ctx, t, env, "op-new", upTo(publish(t, env, "op-new", newSong.ID, history(newSong)...)))
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	oldOp, err := store.Operation(ctx, "op-old")
	if err != nil {
		t.Fatal(err)
	}

	// Exactly the newer operation's events fit: the older ones go.
	if _, err := events.EnsureStream(ctx, env.JS, 1, events.StreamLimits{MaxBytes: int64(stateBytes() - oldBytes)}); err != nil {
		t.Fatal(err)
	}
	info, err := env.Stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.MaxBytes != int64(info.State.Bytes) || info.State.FirstSeq != 4 || info.State.Msgs != 3 {
		t.Fatalf("limited stream: max %d bytes, state %+v; want the last 3 events from sequence 4", info.Config.MaxBytes, info.State)
	}

	st, err := recorder.Replay(ctx, env.JS, store, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if st.Events != 3 || st.Applied != 0 {
		t.Errorf("replay of the limited stream: %+v, want the 3 events left read and none applied (all current)", st)
	}
	if got, err := store.Operation(ctx, "op-old"); err != nil || !reflect.DeepEqual(got, oldOp) {
		t.Errorf("op-old after the replay: %+v, %v; want it kept as %+v", got, err, oldOp)
	}
	if song, err := store.Song(ctx, oldSong.ID); err != nil || !song.Stored() {
		t.Errorf("the old song after the replay: %+v, %v; want it kept, stored", song, err)
	}
}
