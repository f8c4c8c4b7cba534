// Package stage runs one pipeline stage (resolve, fetch, encode): it pulls
// events from the stage's durable consumer, hands each to a Handler, and
// ends every message explicitly.
//
// Ack semantics, per message:
//   - undecodable (malformed JSON, unknown type): Term, with the reason logged.
//   - handler returned nil: Ack. The handler has published its next event.
//   - handler returned a permanent *events.Failure: operation.failed is
//     published, then Term.
//   - handler returned any other error, or ran over the stage timeout: Nak
//     with a backoff delay while deliveries remain, else as permanent.
//   - the worker is shutting down and the grace period ran out: Nak at once,
//     so another process takes the message over.
//
// While a handler runs, the message is kept alive with InProgress heartbeats.
// If the process dies, the heartbeats stop and the server redelivers the
// message after events.AckWait: nothing is lost. A worker pulls a message
// only when one of its Concurrency slots is free, so no message waits in a
// client buffer while its AckWait runs out.
//
// A message whose every delivery dies without an answer (the process
// crashes on it each time) is never ended by a handler. The server then
// announces it on the consumer's max-deliveries advisory, and every worker
// of the stage, in every process, turns the advisory into operation.failed
// (code timeout); the event's id is derived from the message, so the copies
// of several processes collapse into one.
//
// Every event a handler publishes with the context it was given carries the
// delivery attempt (events.WithAttempt), and so does operation.failed: the
// recorder counts an operation's attempts and failures from them.
package stage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/metrics"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
)

// Delivery is one message handed to a Handler.
type Delivery struct {
	Envelope events.Envelope
	Event    events.Event
	// Attempt counts deliveries of this message, from 1.
	Attempt int
	// Log carries operation_id, song_id and the stage.
	Log *slog.Logger
}

// Handler handles one delivery. It is safe to call twice for the same
// delivery: a handler publishes its next event with events.Next, whose id is
// derived from the delivery, so the stream keeps one copy.
type Handler func(ctx context.Context, d Delivery) error

// Publisher is the part of events.Publisher the worker needs.
type Publisher interface {
	Publish(ctx context.Context, env events.Envelope) (*jetstream.PubAck, error)
}

// Worker consumes one stage's events.
type Worker struct {
	// Stage names the stage in logs and in operation.failed events.
	Stage    string
	Consumer jetstream.Consumer
	Publish  Publisher
	// JS reaches the stream and the server's advisories, to turn messages
	// that run out of deliveries into operation.failed. Nil means the
	// JetStream of Publish when it has one (*events.Publisher does); with
	// neither, exhausted messages are only logged by the server.
	JS     jetstream.JetStream
	Handle Handler
	Log    *slog.Logger
	// MaxAttempts is the number of deliveries after which a transient
	// failure is final. The consumer (events.EnsureConsumer with the same
	// number) allows one spare delivery for an attempt cut short by a
	// shutdown or crash; that delivery's failure is final too.
	MaxAttempts int
	// Timeout bounds one attempt (STAGE_TIMEOUT).
	Timeout time.Duration
	// Concurrency is how many messages this process handles at once.
	Concurrency int
	// Grace is how long in-flight work may go on after ctx is cancelled.
	Grace time.Duration
	// Metrics, when set, records each attempt's duration and outcome and
	// each failure's code; nil records nothing.
	Metrics *metrics.Metrics
}

// tracer names the spans of stage attempts. With no OpenTelemetry SDK
// installed it is a no-op that still carries the incoming trace context, so
// the handler's published events continue the trace.
var tracer = otel.Tracer("github.com/butakero/butakero/platform/stage")

// Run consumes until ctx is cancelled, then stops taking messages and waits
// for in-flight ones to end (within Grace). It returns nil after a clean stop,
// and an error at once if it cannot watch the consumer's advisories.
func (w *Worker) Run(ctx context.Context) error {
	n := w.Concurrency
	if n < 1 {
		n = 1
	}
	stopWatch, err := w.watchExhausted(ctx)
	if err != nil {
		return err
	}
	defer stopWatch()
	// work outlives ctx by the grace period so in-flight handlers can finish.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	go func() {
		<-ctx.Done()
		t := time.NewTimer(w.Grace)
		defer t.Stop()
		select {
		case <-t.C:
			cancelWork()
		case <-work.Done():
		}
	}()

	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- w.loop(ctx, work)
		}()
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		if err != nil {
			all = append(all, err)
		}
	}
	return errors.Join(all...)
}

// pullWait is how long one pull for a message waits on the server.
const pullWait = 5 * time.Second

// releaseDelay is the delay of the Nak that hands a message back at
// shutdown. A plain Nak lives only in the server's memory, so a restarted
// embedded server would hold the message for AckWait; a Nak with a delay is
// written to the consumer's state and survives the restart.
const releaseDelay = time.Millisecond

// ackTimeout bounds the wait for the server to confirm an ack.
const ackTimeout = 10 * time.Second

// loop takes one message at a time until ctx ends. It pulls the next
// message only once the previous one is ended: a prefetched message would
// sit in the client, its AckWait running, behind a long encode.
func (w *Worker) loop(ctx, work context.Context) error {
	failing := 0
	for ctx.Err() == nil {
		pull, cancel := context.WithTimeout(ctx, pullWait)
		msg, err := w.Consumer.Next(jetstream.FetchContext(pull))
		cancel()
		if err != nil {
			switch {
			case ctx.Err() != nil:
				return nil
			case errors.Is(err, nats.ErrTimeout), errors.Is(err, jetstream.ErrNoMessages), errors.Is(err, context.DeadlineExceeded):
				failing = 0
				continue
			case errors.Is(err, jetstream.ErrConsumerDeleted), errors.Is(err, jetstream.ErrConsumerNotFound):
				return fmt.Errorf("stage %s: %w", w.Stage, err)
			}
			// The connection is down or the cluster electing a leader:
			// pull again after a pause rather than spin.
			failing++
			w.Log.Warn("stage: next message", "stage", w.Stage, "error", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(Backoff(failing)):
			}
			continue
		}
		failing = 0
		if ctx.Err() != nil {
			// Pulled as the worker stopped: hand it back untouched.
			_ = msg.NakWithDelay(releaseDelay)
			return nil
		}
		w.handle(ctx, work, msg)
	}
	return nil
}

func (w *Worker) handle(ctx, work context.Context, msg jetstream.Msg) {
	log := w.Log.With("stage", w.Stage, "subject", msg.Subject())
	env, ev, err := events.Decode(msg.Data())
	if err != nil {
		log.Error("stage: terminating undecodable message", "error", err)
		_ = msg.TermWithReason("undecodable: " + err.Error())
		return
	}
	attempt, seq := 1, uint64(0)
	if md, err := msg.Metadata(); err == nil {
		attempt, seq = int(md.NumDelivered), md.Sequence.Stream
	}
	log = log.With("operation_id", env.OperationID, "song_id", env.SongID, "event_id", env.ID, "attempt", attempt)

	// The trace context the publisher put in the headers continues here:
	// the handler's events carry it on.
	traceCtx, span := tracer.Start(events.ExtractTrace(work, msg.Headers()), w.Stage,
		trace.WithSpanKind(trace.SpanKindConsumer))
	defer span.End()
	if sc := span.SpanContext(); sc.HasTraceID() {
		log = log.With("trace_id", sc.TraceID().String())
	}

	begin := time.Now()
	attemptCtx, cancel := context.WithTimeout(events.WithAttempt(traceCtx, attempt), w.Timeout)
	defer cancel()
	stopBeat := heartbeat(attemptCtx, msg)
	d := Delivery{Envelope: env, Event: ev, Attempt: attempt, Log: log}
	// A redelivered message may have been handled already: its result
	// stored, only the ack lost.
	if attempt > 1 && w.handled(attemptCtx, env.OperationID, seq) {
		log.Info("stage: redelivered message was handled already")
	} else {
		err = w.Handle(attemptCtx, d)
	}
	// JetStream out of reach (a cluster electing a new leader) is no verdict
	// on the work: the same attempt runs again once it answers, within the
	// attempt's timeout, unless what failed to answer had in fact stored the
	// result. The handler is safe to run twice.
	for err != nil && Unavailable(err) && attemptCtx.Err() == nil && work.Err() == nil {
		log.Warn("stage: JetStream unavailable; the attempt resumes once it answers", "error", err)
		if !w.awaitJetStream(attemptCtx) {
			break
		}
		if w.handled(attemptCtx, env.OperationID, seq) {
			err = nil
			break
		}
		err = w.Handle(attemptCtx, d)
	}
	stopBeat()
	took := time.Since(begin)

	if err == nil {
		w.Metrics.ObserveAttempt(w.Stage, metrics.OutcomeOK, "", took)
		// Acked with the server's confirmation, so that a worker that has
		// returned from Run has nothing it finished left to redeliver. A
		// lost ack costs a redelivery, which the handler's derived event
		// ids make harmless.
		ackCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ackTimeout)
		err := msg.DoubleAck(ackCtx)
		cancel()
		if err != nil {
			log.Warn("stage: ack", "error", err)
		}
		return
	}
	if work.Err() != nil {
		// Shut down mid-attempt: let another process take it over.
		w.Metrics.ObserveAttempt(w.Stage, metrics.OutcomeReleased, "", took)
		log.Info("stage: shutting down, message left for redelivery")
		_ = msg.NakWithDelay(releaseDelay)
		return
	}
	f := events.AsFailure(err)
	if errors.Is(attemptCtx.Err(), context.DeadlineExceeded) && !f.Code.Permanent() {
		f = events.Wrap(events.CodeTimeout, err, "the %s stage took longer than %s", w.Stage, w.Timeout)
	}
	if !f.Code.Permanent() && attempt < w.MaxAttempts {
		delay := Backoff(attempt)
		w.Metrics.ObserveAttempt(w.Stage, metrics.OutcomeRetry, string(f.Code), took)
		log.Warn("stage: attempt failed, will retry", "code", f.Code, "error", f, "retry_in", delay)
		_ = msg.NakWithDelay(delay)
		return
	}
	w.Metrics.ObserveAttempt(w.Stage, metrics.OutcomeFailed, string(f.Code), took)
	log.Error("stage: operation failed", "code", f.Code, "error", f)
	failed, err := events.Next(env, "", events.OperationFailed{
		Stage: w.Stage, Code: f.Code, Message: f.Message, Attempts: attempt,
	})
	failed.Attempt = attempt
	if err == nil {
		pubCtx, cancel := context.WithTimeout(trace.ContextWithSpanContext(context.WithoutCancel(ctx), span.SpanContext()), 10*time.Second)
		_, err = w.Publish.Publish(pubCtx, failed)
		cancel()
	}
	if err != nil {
		// The failure is not recorded: keep the message so it is.
		log.Error("stage: publish operation.failed", "error", err)
		_ = msg.NakWithDelay(Backoff(1))
		return
	}
	_ = msg.TermWithReason(string(f.Code))
}

// Backoff is the delay before delivery attempt+1: 1s, 2s, 4s… up to 30s.
func Backoff(attempt int) time.Duration {
	d := time.Second << min(max(attempt-1, 0), 5)
	return min(d, 30*time.Second)
}

// heartbeat tells the server the message is in progress every third of
// AckWait until stop is called or ctx ends.
func heartbeat(ctx context.Context, msg jetstream.Msg) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(events.AckWait / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				_ = msg.InProgress()
			}
		}
	}()
	return func() { cancel(); <-done }
}
