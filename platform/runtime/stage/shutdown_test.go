package stage_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/runtime/stage"
)

// started is what a handler reports when a delivery reaches it.
type started struct {
	attempt int
	ctx     context.Context
}

// TestShutdown stops a worker while a handler runs: within the grace
// period the attempt finishes and is acked; past it the message is
// released at once (no AckWait to wait) and the next worker gets it as
// attempt 2. Either way, a stopped worker takes nothing new.
func TestShutdown(t *testing.T) {
	cases := []struct {
		name  string
		grace time.Duration
		// finish: the handler returns nil once the worker is told to stop;
		// otherwise it runs until its context ends.
		finish      bool
		wantAcked   bool
		wantAttempt int // of the next worker's delivery; 0 means none
	}{
		{name: "finishes within the grace period", grace: time.Minute, finish: true, wantAcked: true},
		{name: "released when the grace period runs out", grace: 50 * time.Millisecond, wantAttempt: 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env, ctx, cons := startConsumer(t, events.ConsumerResolver, 3, 60*time.Second)
			pub := events.NewPublisher(env.JS)
			reached := make(chan started, 4)
			proceed := make(chan struct{})
			newWorker := func() *stage.Worker {
				return &stage.Worker{
					Stage: "resolve", JS: env.JS, Consumer: cons, Publish: pub, MaxAttempts: 3, Timeout: time.Minute,
					Grace: tc.grace, Log: slog.New(slog.NewTextHandler(t.Output(), nil)),
					Handle: func(ctx context.Context, d stage.Delivery) ([]stage.Emit, error) {
						reached <- started{d.Attempt, ctx}
						select {
						case <-proceed:
							if tc.finish {
								return nil, nil
							}
							<-ctx.Done()
						case <-ctx.Done():
						}
						return nil, ctx.Err()
					},
				}
			}
			runCtx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- newWorker().Run(runCtx) }()

			first, err := events.New(events.NewID(), "", events.SongRequested{Query: "first"})
			if err != nil {
				t.Fatal(err)
			}
			ack, err := pub.Publish(ctx, first)
			if err != nil {
				t.Fatal(err)
			}
			if s := <-reached; s.attempt != 1 {
				t.Fatalf("first delivery: attempt %d, want 1", s.attempt)
			}
			stop()
			// Published after the stop: the stopped worker must leave it.
			second, err := events.New(events.NewID(), "", events.SongRequested{Query: "second"})
			if err != nil {
				t.Fatal(err)
			}
			env.Publish(t, second)
			close(proceed)
			if err := <-done; err != nil {
				t.Fatalf("Run: %v", err)
			}
			select {
			case s := <-reached:
				t.Fatalf("a stopped worker handled another delivery (attempt %d)", s.attempt)
			default:
			}

			// Acks are confirmed before Run returns; a released message
			// stays pending until it is delivered again.
			info, err := cons.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if acked := info.AckFloor.Stream >= ack.Sequence; acked != tc.wantAcked {
				t.Errorf("first message acked: %v, want %v (ack floor %d)", acked, tc.wantAcked, info.AckFloor.Stream)
			}

			// The next worker: the released message comes back at once.
			next := newWorker()
			next.Handle = func(ctx context.Context, d stage.Delivery) ([]stage.Emit, error) {
				reached <- started{d.Attempt, ctx}
				return nil, nil
			}
			runCtx, stop = context.WithCancel(ctx)
			go func() { done <- next.Run(runCtx) }()
			defer func() { stop(); <-done }()
			want := map[int]bool{1: true} // the second message, first delivery
			if tc.wantAttempt != 0 {
				want[tc.wantAttempt] = true
			}
			for len(want) > 0 {
				select {
				case s := <-reached:
					if !want[s.attempt] {
						t.Fatalf("next worker got a delivery with attempt %d; want one of %v", s.attempt, want)
					}
					delete(want, s.attempt)
				case <-time.After(events.AckWait / 2):
					t.Fatalf("next worker still waits for deliveries with attempts %v: a released message must not wait for AckWait", want)
				}
			}
		})
	}
}

// TestAttemptStamped checks that each event a stage publishes says which
// delivery produced it, operation.failed included.
func TestAttemptStamped(t *testing.T) {
	cases := []struct {
		name        string
		failUntil   int // the handler fails transiently on attempts below it
		maxAttempts int
		wantKind    events.Kind
		wantAttempt int
	}{
		{name: "first attempt", failUntil: 1, maxAttempts: 3, wantKind: events.KindVideoResolved, wantAttempt: 1},
		{name: "after one retry", failUntil: 2, maxAttempts: 3, wantKind: events.KindVideoResolved, wantAttempt: 2},
		{name: "every attempt fails", failUntil: 99, maxAttempts: 2, wantKind: events.KindOperationFailed, wantAttempt: 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env, ctx, cons := startConsumer(t, events.ConsumerResolver, tc.maxAttempts, 60*time.Second)
			pub := events.NewPublisher(env.JS)
			w := &stage.Worker{
				Stage: "resolve", JS: env.JS, Consumer: cons, Publish: pub, MaxAttempts: tc.maxAttempts, Timeout: time.Minute,
				Grace: time.Second, Log: slog.New(slog.NewTextHandler(t.Output(), nil)),
				Handle: func(ctx context.Context, d stage.Delivery) ([]stage.Emit, error) {
					if d.Attempt < tc.failUntil {
						return nil, events.Fail(events.CodeDownloadFailed, "try again")
					}
					return resolved(), nil
				},
			}
			runWorker(t, ctx, w)
			opID := request(t, env)
			got, ev := env.Next(ctx, t, tc.wantKind, opID)
			if got.Attempt != tc.wantAttempt {
				t.Errorf("%s carries attempt %d, want %d", tc.wantKind, got.Attempt, tc.wantAttempt)
			}
			if f, ok := ev.(events.OperationFailed); ok && f.Attempts != tc.wantAttempt {
				t.Errorf("operation.failed says %d attempts, want %d", f.Attempts, tc.wantAttempt)
			}
			// The request was published by no stage: it has no attempt.
			raw, err := env.Stream.GetLastMsgForSubject(ctx, events.Subject(events.KindSongRequested, opID))
			if err != nil {
				t.Fatal(err)
			}
			if first, _, err := events.Decode(raw.Data); err != nil || first.Attempt != 0 {
				t.Errorf("song.requested attempt %d (%v), want none", first.Attempt, err)
			}
		})
	}
}
