package stage_test

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/runtime/metrics"
	"github.com/butakero/butakero/platform/runtime/stage"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel/trace"
)

// TestTraceAndMetrics runs a worker on the resolver's consumer: the trace
// context of the consumed message reaches the handler and the event it
// publishes, and each attempt is measured with its outcome.
func TestTraceAndMetrics(t *testing.T) {
	tests := []struct {
		name     string
		fail     error // what the handler returns
		wantNext events.Kind
		outcome  string
		code     string
	}{
		{name: "success", wantNext: events.KindVideoResolved, outcome: metrics.OutcomeOK},
		{name: "permanent failure", fail: events.Fail(events.CodeNotFound, "nothing found"),
			wantNext: events.KindOperationFailed, outcome: metrics.OutcomeFailed, code: string(events.CodeNotFound)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env, ctx, cons := startConsumer(t, events.ConsumerResolver, 1, 30*time.Second)
			m := metrics.New(metrics.NewRegistry())
			pub := events.NewPublisher(env.JS)
			seen := make(chan trace.SpanContext, 1)
			w := &stage.Worker{
				Stage: "resolve", JS: env.JS, Consumer: cons, Publish: pub, MaxAttempts: 1, Timeout: 10 * time.Second,
				Grace: time.Second, Metrics: m, Log: slog.New(slog.NewTextHandler(t.Output(), nil)),
				Handle: func(ctx context.Context, d stage.Delivery) ([]stage.Emit, error) {
					seen <- trace.SpanContextFromContext(ctx)
					if tc.fail != nil {
						return nil, tc.fail
					}
					return resolved(), nil
				},
			}
			stop := runWorker(t, ctx, w)

			tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
			sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
			traced := trace.ContextWithSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
				TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}))
			opID := events.NewID()
			req, err := events.New(opID, "", events.SongRequested{Query: "rick astley"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := pub.Publish(traced, req); err != nil {
				t.Fatal(err)
			}
			if sc := <-seen; sc.TraceID() != tid {
				t.Errorf("handler trace id %s, want %s", sc.TraceID(), tid)
			}
			env.Next(ctx, t, tc.wantNext, opID)
			msg, err := env.Stream.GetLastMsgForSubject(ctx, events.Subject(tc.wantNext, opID))
			if err != nil {
				t.Fatal(err)
			}
			if tp := msg.Header.Get("traceparent"); !strings.HasPrefix(tp, "00-"+tid.String()+"-") {
				t.Errorf("%s traceparent %q, want trace %s", tc.wantNext, tp, tid)
			}
			// Run returns once the in-flight attempt has ended and been
			// recorded.
			if err := stop(); err != nil {
				t.Errorf("Run: %v", err)
			}
			if got := testutil.ToFloat64(m.StageAttempts.WithLabelValues("resolve")); got != 1 {
				t.Errorf("attempts %v, want 1", got)
			}
			if got := testutil.CollectAndCount(m.StageDuration); got != 1 {
				t.Errorf("%d duration series, want 1", got)
			}
			if tc.code != "" {
				if got := testutil.ToFloat64(m.StageFailures.WithLabelValues("resolve", tc.code, "true")); got != 1 {
					t.Errorf("final failures %v, want 1", got)
				}
			}
		})
	}
}

// TestLostPublishCompletesTheBatch: a message that causes two events (as
// the encoder's does: dca.encoded, then upload.done) loses one publish, in
// every way a publish can be lost. The runtime always ends with both
// events stored once and the message acked; the handler runs again only
// when an event is missing from the stream.
func TestLostPublishCompletesTheBatch(t *testing.T) {
	type tcase struct {
		name      string
		kind      events.Kind
		fault     fault
		wantCalls int32
	}
	var cases []tcase
	for _, kind := range []events.Kind{events.KindDCAEncoded, events.KindUploadDone} {
		for _, f := range []fault{dropped, storedUnanswered, storedFailed} {
			// An outage is waited out within the attempt; any other
			// failure costs a redelivery, which runs the handler again
			// only if an event is missing.
			calls := int32(2)
			if f == storedUnanswered || f == storedFailed && kind == events.KindUploadDone {
				calls = 1
			}
			cases = append(cases, tcase{name: string(kind) + " " + f.String(), kind: kind, fault: f, wantCalls: calls})
		}
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env, ctx, cons := startConsumer(t, events.ConsumerEncoder, 3, 60*time.Second)
			pub := &faultyPublisher{pub: events.NewPublisher(env.JS), kind: tc.kind, fault: tc.fault}
			var calls atomic.Int32
			ended := make(chan stage.Outcome, 4)
			w := &stage.Worker{
				Stage: "encode", JS: env.JS, Consumer: cons, Publish: pub, MaxAttempts: 3, Timeout: time.Minute,
				Grace: time.Second, Log: slog.New(slog.NewTextHandler(t.Output(), nil)),
				Handle: func(ctx context.Context, d stage.Delivery) ([]stage.Emit, error) {
					calls.Add(1)
					return []stage.Emit{
						{Event: events.DCAEncoded{Frames: 50, DurationMs: 1000}},
						{Event: events.UploadDone{Song: events.Song{ID: "song1"}, Key: "audio/song1.dca", Size: 10}},
					}, nil
				},
				Ended: func(ctx context.Context, d stage.Delivery, o stage.Outcome) { ended <- o },
			}
			runWorker(t, ctx, w)
			parent := downloaded(t, env)
			opID := parent.OperationID
			done, _ := env.Next(ctx, t, events.KindUploadDone, opID)
			if done.Cause != parent.ID || done.Batch != 2 {
				t.Errorf("upload.done cause %q batch %d, want %q and 2", done.Cause, done.Batch, parent.ID)
			}
			waitAcked(ctx, t, cons)
			for _, kind := range []events.Kind{events.KindDCAEncoded, events.KindUploadDone} {
				if n := countStored(ctx, t, env, kind, opID); n != 1 {
					t.Errorf("%d %s events stored, want 1", n, kind)
				}
			}
			if n := countStored(ctx, t, env, events.KindOperationFailed, opID); n != 0 {
				t.Errorf("%d operation.failed stored, want none", n)
			}
			if n := calls.Load(); n != tc.wantCalls {
				t.Errorf("handler ran %d times, want %d", n, tc.wantCalls)
			}
			select {
			case o := <-ended:
				if o.Err != nil || len(o.Events) != 2 {
					t.Errorf("Ended with %v and %d events, want success with 2", o.Err, len(o.Events))
				}
			case <-ctx.Done():
				t.Fatal("Ended never ran")
			}
		})
	}
}
