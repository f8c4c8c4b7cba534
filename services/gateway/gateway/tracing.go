package gateway

import (
	"context"
	"fmt"
	"net/http"

	"github.com/butakero/butakero/events"
	"github.com/gofiber/fiber/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// startRequestSpan starts the request's server span: a child of the
// client's traceparent when it sent one, else the root of a new trace.
// With no tracing SDK installed the span records nothing, and a client
// without traceparent gets a trace id of the gateway's own (requestTrace)
// so that the operation's events still share one.
func startRequestSpan(c *fiber.Ctx) (context.Context, trace.Span) {
	name := "HTTP " + c.Method()
	ctx, span := tracer.Start(events.TracePropagator.Extract(c.UserContext(), fiberCarrier{c}), name,
		trace.WithSpanKind(trace.SpanKindServer))
	if span.SpanContext().IsValid() {
		return ctx, span
	}
	return tracer.Start(requestTrace(c), name, trace.WithSpanKind(trace.SpanKindServer))
}

// endRequestSpan names the span for its route ("POST /v1/operations", the
// OpenTelemetry HTTP convention) and records the answer, and the operation
// and song the request named, on it. A 5xx is an error span.
func endRequestSpan(span trace.Span, c *fiber.Ctx, route string, status int) {
	span.SetName(c.Method() + " " + route)
	span.SetAttributes(
		attribute.String("http.request.method", c.Method()),
		attribute.String("http.route", route),
		attribute.String("url.path", c.Path()),
		attribute.Int("http.response.status_code", status),
	)
	if id, ok := c.Locals(localOperationID).(string); ok && id != "" {
		span.SetAttributes(attribute.String("butakero.operation_id", id))
	}
	if id, ok := c.Locals(localSongID).(string); ok && id != "" {
		span.SetAttributes(attribute.String("butakero.song_id", id))
	}
	if status >= http.StatusInternalServerError {
		span.SetStatus(codes.Error, fmt.Sprintf("HTTP %d", status))
	}
}
