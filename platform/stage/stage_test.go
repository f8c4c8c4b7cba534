package stage_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/metrics"
	"github.com/butakero/butakero/platform/natstest"
	"github.com/butakero/butakero/platform/stage"
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
			env := natstest.Start(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cons, err := events.EnsureConsumer(ctx, env.JS, events.ConsumerResolver, 1)
			if err != nil {
				t.Fatal(err)
			}
			m := metrics.New(metrics.NewRegistry())
			pub := events.NewPublisher(env.JS)
			seen := make(chan trace.SpanContext, 1)
			w := &stage.Worker{
				Stage: "resolve", Consumer: cons, Publish: pub, MaxAttempts: 1, Timeout: 10 * time.Second,
				Grace: time.Second, Metrics: m, Log: slog.New(slog.NewTextHandler(t.Output(), nil)),
				Handle: func(ctx context.Context, d stage.Delivery) error {
					seen <- trace.SpanContextFromContext(ctx)
					if tc.fail != nil {
						return tc.fail
					}
					return resolve(ctx, pub, d)
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
