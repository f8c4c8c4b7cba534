package stage

import (
	"context"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/runtime/metrics"
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// The attributes of a stage attempt's span. A trace backend finds an
// operation's attempts by butakero.operation_id, a song's by
// butakero.song_id; the failure code is on every failed attempt.
const (
	AttrOperationID = attribute.Key("butakero.operation_id")
	AttrSongID      = attribute.Key("butakero.song_id")
	AttrStage       = attribute.Key("butakero.stage")
	AttrAttempt     = attribute.Key("butakero.attempt")
	AttrEventType   = attribute.Key("butakero.event_type")
	// AttrOutcome is metrics' outcome of the attempt: ok, retry, failed
	// or released.
	AttrOutcome = attribute.Key("butakero.outcome")
	// AttrFailureCode is the events.Code of a failed attempt.
	AttrFailureCode = attribute.Key("butakero.failure_code")
)

// startAttempt starts the span of one attempt at env's message, a child of
// the span that published the message (the parent in ctx, read from its
// traceparent header). Everything the handler starts under the returned
// context (a yt-dlp or ffmpeg run) is its child, and every event the
// attempt publishes names it as parent.
func startAttempt(ctx context.Context, stage, subject string, env events.Envelope, attempt int) (context.Context, trace.Span) {
	return tracer.Start(ctx, stage, trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(
		AttrStage.String(stage),
		AttrOperationID.String(env.OperationID),
		AttrSongID.String(env.SongID),
		AttrAttempt.Int(attempt),
		AttrEventType.String(env.Type),
		attribute.String("messaging.system", "nats"),
		attribute.String("messaging.operation.type", "process"),
		attribute.String("messaging.destination.name", subject),
		attribute.String("messaging.message.id", env.ID),
	))
}

// endAttempt records how the attempt ended on its span: the outcome and,
// for a failure (retried or final), the code, an error status and the
// error as an exception event.
func endAttempt(span trace.Span, outcome string, f *events.Failure) {
	span.SetAttributes(AttrOutcome.String(outcome))
	if f == nil || outcome == metrics.OutcomeOK || outcome == metrics.OutcomeReleased {
		return
	}
	span.SetAttributes(AttrFailureCode.String(string(f.Code)))
	span.RecordError(f)
	span.SetStatus(codes.Error, string(f.Code)+": "+f.Message)
}

// StartWork starts the span of work done for a message outside the stage
// runtime's attempts (the encoder's early encode of an audio.arriving): a
// child of the span that published the message (its headers h), named
// name, with an attempt's attributes. End it with EndWork.
func StartWork(ctx context.Context, name, subject string, h nats.Header, env events.Envelope) (context.Context, trace.Span) {
	return startAttempt(events.ExtractTrace(ctx, h), name, subject, env, 1)
}

// EndWork ends a StartWork span: outcome ok when err is nil, else
// abandoned with err as its reason. Work abandoned is no failure of the
// operation's (another path does it), so the span is no error span.
func EndWork(span trace.Span, err error) {
	if err == nil {
		span.SetAttributes(AttrOutcome.String(metrics.OutcomeOK))
	} else {
		span.SetAttributes(AttrOutcome.String("abandoned"), attribute.String("butakero.reason", err.Error()))
	}
	span.End()
}
