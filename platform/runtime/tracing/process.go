package tracing

import (
	"context"
	"errors"
	"os/exec"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// tracer names the spans of external programs' runs.
var tracer = otel.Tracer("github.com/butakero/butakero/platform/runtime/tracing")

// AttrProgram names the program a process span ran (yt-dlp, ffmpeg, ffprobe).
const AttrProgram = attribute.Key("process.executable.name")

// StartProcess starts the span of one run of an external program, a child
// of ctx's span (the stage attempt that runs it): yt-dlp, ffmpeg, ffprobe.
// The span is named for the program; attrs say what the run is for. End it
// with EndProcess.
func StartProcess(ctx context.Context, program string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	return tracer.Start(ctx, program, trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(append([]attribute.KeyValue{AttrProgram.String(program)}, attrs...)...))
}

// EndProcess ends a process span with the run's outcome: err nil is a
// success; any other is recorded as the span's error, with the exit code
// when the program exited with one.
func EndProcess(span trace.Span, err error) {
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			span.SetAttributes(attribute.Int("process.exit.code", exit.ExitCode()))
		}
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
