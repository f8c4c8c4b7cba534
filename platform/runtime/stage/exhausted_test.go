package stage_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/runtime/stage"
	"github.com/butakero/butakero/platform/testkit/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

// TestMaxDeliveriesAdvisory lets every delivery of a message die without
// an answer, for real: the encoder's consumer (with a short AckWait, so the
// test does not wait 30 s per delivery) hands it to handlers that hang, the
// server runs out of deliveries and sends its advisory, and the worker
// turns that into operation.failed.
func TestMaxDeliveriesAdvisory(t *testing.T) {
	env, ctx := natstest.StartWithin(t, 60*time.Second)
	const maxAttempts = 1 // two deliveries with the spare
	cfg, err := events.ConsumerConfig(events.ConsumerEncoder, maxAttempts)
	if err != nil {
		t.Fatal(err)
	}
	cfg.AckWait = 500 * time.Millisecond
	cons, err := env.JS.CreateOrUpdateConsumer(ctx, events.StreamName, cfg)
	if err != nil {
		t.Fatal(err)
	}

	// Each delivery hangs until the test ends, as if its process had died:
	// no ack, no heartbeat within AckWait. The server sends the advisory
	// when it would deliver the message once more, that is to a pull
	// request: the third slot stays free to make one, as a restarted
	// process or another one would.
	release := make(chan struct{})
	deliveries := make(chan int, 4)
	w := &stage.Worker{
		Stage: "encode", JS: env.JS, Consumer: cons,
		MaxAttempts: maxAttempts, Timeout: time.Minute, Concurrency: 3, Grace: time.Second,
		Log: slog.New(slog.NewTextHandler(t.Output(), nil)),
		Handle: func(ctx context.Context, d stage.Delivery) ([]stage.Emit, error) {
			deliveries <- d.Attempt
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil, errors.New("released by the test")
		},
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()
	defer func() { stop(); close(release); <-done }()

	parent := downloaded(t, env)
	opID := parent.OperationID

	got, ev := env.Next(ctx, t, events.KindOperationFailed, opID)
	failed := ev.(events.OperationFailed)
	want := events.OperationFailed{Stage: "encode", Code: events.CodeTimeout,
		Message: "the encode stage did not finish after 2 attempts", Attempts: 2}
	if failed != want {
		t.Errorf("operation.failed = %+v, want %+v", failed, want)
	}
	if got.ID != events.DeriveID(parent.ID, events.TypeOperationFailed) || got.Attempt != 2 || got.SongID != "song1" {
		t.Errorf("envelope id %s attempt %d song %q; want the id derived from the message, attempt 2, song1", got.ID, got.Attempt, got.SongID)
	}
	if n := len(deliveries); n != 2 {
		t.Errorf("%d deliveries reached the handlers, want 2 (MAX_ATTEMPTS and the spare)", n)
	}
}

// TestExhausted covers what the advisory handler publishes: once whatever
// the number of processes that run it, and nothing for a message whose
// events were stored before it ran out.
func TestExhausted(t *testing.T) {
	cases := []struct {
		name string
		// after is published after the message, before it runs out.
		after      events.Event
		runs       int
		wantFailed int
	}{
		{name: "no answer: one operation.failed", runs: 1, wantFailed: 1},
		{name: "three processes got the advisory", runs: 3, wantFailed: 1},
		{name: "the stage stored its events before dying", runs: 2, wantFailed: 0,
			after: events.DCAEncoded{Frames: 10, DurationMs: 200}},
		{name: "the failure was recorded already", runs: 1, wantFailed: 1,
			after: events.OperationFailed{Stage: "encode", Code: events.CodeInternal, Message: "x", Attempts: 2}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env, ctx := natstest.StartWithin(t, 30*time.Second)
			opID := events.NewID()
			parent, err := events.New(opID, "song1", events.AudioDownloaded{Song: events.Song{ID: "song1"}, Key: "k", Size: 1})
			if err != nil {
				t.Fatal(err)
			}
			pub := events.NewPublisher(env.JS)
			ack, err := pub.Publish(ctx, parent)
			if err != nil {
				t.Fatal(err)
			}
			if tc.after != nil {
				next, err := events.Next(parent, "", tc.after)
				if err != nil {
					t.Fatal(err)
				}
				next.Cause, next.Batch = parent.ID, 1
				env.Publish(t, next)
			}
			w := &stage.Worker{Stage: "encode", JS: env.JS, Log: slog.New(slog.NewTextHandler(t.Output(), nil))}
			for range tc.runs {
				_, published, err := w.Exhausted(ctx, ack.Sequence, 4)
				if err != nil {
					t.Fatal(err)
				}
				if _, moved := tc.after.(events.DCAEncoded); published && moved {
					t.Error("published operation.failed for a message that was handled")
				}
			}
			if n := countStored(ctx, t, env, events.KindOperationFailed, opID); int(n) != tc.wantFailed {
				t.Errorf("%d operation.failed in the stream, want %d", n, tc.wantFailed)
			}
		})
	}

	t.Run("a message no longer in the stream", func(t *testing.T) {
		env := natstest.Start(t)
		w := &stage.Worker{Stage: "encode", JS: env.JS, Log: slog.New(slog.NewTextHandler(t.Output(), nil))}
		_, _, err := w.Exhausted(context.Background(), 99, 4)
		if !errors.Is(err, jetstream.ErrMsgNotFound) {
			t.Fatalf("err = %v, want ErrMsgNotFound", err)
		}
	})
}
