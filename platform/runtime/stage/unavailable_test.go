package stage_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/runtime/stage"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestUnavailableResumesTheAttempt: while JetStream cannot be reached (the
// handler sees "no responders" or "no response from stream", as during a
// cluster's leader election), the attempt is not spent: the handler runs
// again within the same delivery, and the event it finally publishes says
// attempt 1. Any other error still costs an attempt.
func TestUnavailableResumesTheAttempt(t *testing.T) {
	cases := []struct {
		name        string
		outage      error
		wantKind    events.Kind
		wantAttempt int
	}{
		{"no responders", fmt.Errorf("claims: get: %w", nats.ErrNoResponders), events.KindVideoResolved, 1},
		{"no response from stream", events.Wrap(events.CodeInternal, jetstream.ErrNoStreamResponse, "could not record"), events.KindVideoResolved, 1},
		{"a failure of the work", events.Fail(events.CodeDownloadFailed, "try again"), events.KindVideoResolved, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env, ctx, cons := startConsumer(t, events.ConsumerResolver, 3, 60*time.Second)
			pub := events.NewPublisher(env.JS)
			var calls atomic.Int32
			w := &stage.Worker{
				Stage: "resolve", JS: env.JS, Consumer: cons, Publish: pub, MaxAttempts: 3, Timeout: time.Minute,
				Grace: time.Second, Log: slog.New(slog.NewTextHandler(t.Output(), nil)),
				Handle: func(ctx context.Context, d stage.Delivery) ([]stage.Emit, error) {
					// The first two calls meet the outage.
					if calls.Add(1) <= 2 {
						return nil, tc.outage
					}
					return resolved(), nil
				},
			}
			runWorker(t, ctx, w)
			got, _ := env.Next(ctx, t, tc.wantKind, request(t, env))
			if got.Attempt != tc.wantAttempt {
				t.Errorf("%s carries attempt %d, want %d", tc.wantKind, got.Attempt, tc.wantAttempt)
			}
		})
	}
}

// TestStoredButUnansweredIsNotRedone: a publish that reached the stream but
// whose answer was lost looks like an outage; the runtime publishes the
// same envelope again once JetStream answers, the stream keeps one copy,
// and the handler does not run again.
func TestStoredButUnansweredIsNotRedone(t *testing.T) {
	env, ctx, cons := startConsumer(t, events.ConsumerResolver, 3, 60*time.Second)
	pub := &faultyPublisher{pub: events.NewPublisher(env.JS), kind: events.KindVideoResolved, fault: storedUnanswered}
	var calls atomic.Int32
	w := &stage.Worker{
		Stage: "resolve", JS: env.JS, Consumer: cons, Publish: pub, MaxAttempts: 3, Timeout: time.Minute,
		Grace: time.Second, Log: slog.New(slog.NewTextHandler(t.Output(), nil)),
		Handle: func(ctx context.Context, d stage.Delivery) ([]stage.Emit, error) {
			calls.Add(1)
			return resolved(), nil
		},
	}
	runWorker(t, ctx, w)
	opID := request(t, env)
	env.Next(ctx, t, events.KindVideoResolved, opID)
	waitAcked(ctx, t, cons)
	if n := calls.Load(); n != 1 {
		t.Errorf("handler ran %d times, want 1", n)
	}
	if n := countStored(ctx, t, env, events.KindVideoResolved, opID); n != 1 {
		t.Errorf("%d video.resolved events stored, want 1", n)
	}
}
