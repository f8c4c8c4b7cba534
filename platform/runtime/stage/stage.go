// Package stage is the one runtime of every consumer of the event stream:
// the three pipeline stages (resolve, fetch, encode) and the recorder. It
// pulls messages from a durable consumer, hands each to a Handler, publishes
// the events the handler returns, and ends every message explicitly.
//
// The runtime owns the flow. A handler only says what its message causes
// (a list of Emit); the runtime wraps each in an envelope whose id derives
// from the message's (events.Next), stamps it with the delivery attempt, the
// message's id as its Cause and the number of events the message causes as
// its Batch, and publishes them in order. A message is handled when all of
// its events are in the stream: a redelivered message whose events are all
// there is acked without running the handler; one whose events are there in
// part (a publish lost between two, a crash between them) runs the handler
// again and only the missing events are published. Nothing depends on
// which other events the operation has.
//
// Ack semantics, per message:
//   - undecodable (malformed JSON, unknown type): Term, with the reason logged.
//   - the handler succeeded and every event it returned is stored: Ack.
//   - the handler returned a permanent *events.Failure: operation.failed is
//     published, then Term.
//   - the handler returned any other error, or ran over the stage timeout: Nak
//     with a backoff delay while deliveries remain, else as permanent. A
//     Worker with no MaxAttempts (the recorder) never fails an operation:
//     every error is a Nak with backoff, forever.
//   - JetStream out of reach (a cluster electing a leader, the connection
//     reconnecting), in the handler or in a publish, costs no attempt: the
//     runtime waits for it to answer and carries on within the attempt.
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
package stage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/runtime/metrics"
	"github.com/butakero/butakero/platform/runtime/workers"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
)

// Delivery is one message handed to a Handler.
type Delivery struct {
	Envelope events.Envelope
	Event    events.Event
	// Seq is the message's sequence in the event stream (for a message
	// of the recorder's lanes, the sequence of the event it was sourced
	// from: events.SourceSeq), and Time when the consumed stream stored
	// it.
	Seq  uint64
	Time time.Time
	// Attempt counts deliveries of this message, from 1.
	Attempt int
	// Log carries operation_id, song_id and the stage.
	Log *slog.Logger

	// watched is the cancel watch's mark when the stream said the
	// operation was not cancelled, before the attempt (isCancelled).
	watched watchMark
}

// Emit is one event that handling a message causes. The runtime publishes
// it in an envelope whose id derives from the message's id and the event's
// type, so a message handled twice causes the same ids.
type Emit struct {
	// SongID is the envelope's song id; empty means the message's.
	SongID string
	Event  events.Event
}

// Handler handles one delivery and returns the events it causes, in the
// order they are to be stored (none for the recorder, whose work is its
// projections). It publishes nothing itself.
//
// A handler may be called again for a delivery it has handled: a message
// whose events were stored only in part is handled again and the missing
// ones published. It must then return the same events, and whatever it
// stores on the way (blobs, claims) must be safe to store twice.
type Handler func(ctx context.Context, d Delivery) ([]Emit, error)

// Outcome is how a message ended, as the Worker's Ended hook sees it.
type Outcome struct {
	// Err is nil when every event the message causes is stored, else the
	// failure that operation.failed recorded.
	Err error
	// Events are the message's events found in or published to the
	// stream, in order; operation.failed for a failure.
	Events []events.Envelope
	// Cancelled is set when the operation was cancelled (Err is then
	// ErrCancelled): nothing was published for the message (see
	// cancel.go).
	Cancelled bool
}

// Publisher stores envelopes in the stream (*events.Publisher).
type Publisher interface {
	Publish(ctx context.Context, env events.Envelope) (*jetstream.PubAck, error)
}

// Worker consumes one consumer's messages.
type Worker struct {
	// Stage names the stage in logs, metrics and operation.failed events.
	Stage string
	// JS holds the event stream: the runtime reads an operation's history
	// from it and watches the consumer's max-deliveries advisories on its
	// connection. Required.
	JS       jetstream.JetStream
	Consumer jetstream.Consumer
	// Publish stores the events; nil means events.NewPublisher(JS).
	Publish Publisher
	Handle  Handler
	// Ended, when set, runs once for each message that ends (its events
	// stored, or operation.failed), before the message is acked or
	// terminated, with a context that outlives the attempt by a few
	// seconds. It is where a stage lets go of what the message held (a
	// staging blob, a claim). It also runs for a redelivered message found
	// already handled, so it must be safe to run twice. It does not run
	// for an attempt that will be retried or released at shutdown.
	Ended func(ctx context.Context, d Delivery, o Outcome)
	Log   *slog.Logger
	// MaxAttempts is the number of deliveries after which a transient
	// failure is final. The consumer (events.EnsureConsumer with the same
	// number) allows one spare delivery for an attempt cut short by a
	// shutdown or crash; that delivery's failure is final too. 0 means no
	// bound and no operation.failed ever: the recorder's.
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
	// Cancellable makes the worker stop the work of an operation once it
	// is cancelled, publish nothing more for it and ack its message (see
	// cancel.go). The pipeline stages set it; the recorder, which must
	// project every event, does not.
	Cancellable bool
	// HeldPull keeps a pull for the next message waiting on the server
	// while one is handled, instead of pulling only after it ends: the
	// server hands over the next message as soon as the ack reaches it,
	// with no pull request, subscription or round trip in between. It is
	// only for a consumer whose MaxAckPending is Concurrency (the
	// recorder's lanes: 1), so that the server sends nothing before an
	// ack and no message waits in the client with its AckWait running.
	// At shutdown a message that arrived for the waiting pull is handed
	// back (Nak) untouched.
	HeldPull bool
	// Quick, when set, is tried first on every message, within
	// QuickTimeout: the answer a stage gives without the work its Slots
	// bound (the fetcher's song already stored). It returns ErrNotQuick
	// for a message it cannot answer so; that message then waits for one
	// of Slots, with its heartbeats running and before its STAGE_TIMEOUT
	// starts, and Handle runs it. Any other error is the attempt's, as
	// Handle's would be. Quick must return for a message what Handle
	// would (the same events), since a redelivery may run either.
	Quick Handler
	// QuickTimeout bounds one Quick; 0 means DefaultQuickTimeout.
	QuickTimeout time.Duration
	// Slots is how many messages run Handle at once when Quick is set
	// (Concurrency is then how many are held at once, quick ones
	// included); 0 means Concurrency. While Slots messages wait for a
	// slot the worker pulls nothing more: the rest stays in the
	// consumer, where it counts as backlog, and none waits in this
	// process with its AckWait running. (A message still in Quick is not
	// counted yet, so pulls in that moment may add a few waiters; quick
	// answers run at Concurrency whatever the slots hold.)
	Slots int

	gate      *slotGate
	cancels   *cancelWatch
	cancelSub *nats.Subscription
	streamMu  sync.Mutex
	stream    jetstream.Stream
}

// tracer names the spans of stage attempts. With no OpenTelemetry SDK
// installed it is a no-op that still carries the incoming trace context, so
// the events the runtime publishes continue the trace.
var tracer = otel.Tracer("github.com/butakero/butakero/platform/runtime/stage")

// Run consumes until ctx is cancelled, then stops taking messages and waits
// for in-flight ones to end (within Grace). It returns nil after a clean stop,
// and an error at once if it cannot watch the consumer's advisories.
func (w *Worker) Run(ctx context.Context) error {
	if w.JS == nil || w.Consumer == nil || w.Handle == nil || w.Log == nil {
		return fmt.Errorf("stage %s: Worker needs JS, Consumer, Handle and Log", w.Stage)
	}
	n := w.Concurrency
	if n < 1 {
		n = 1
	}
	// Before any goroutine of the worker reads them.
	w.cancels = newCancelWatch()
	w.gate = nil
	if w.Quick != nil {
		slots := w.Slots
		if slots < 1 || slots > n {
			slots = n
		}
		w.gate = newSlotGate(slots, ctx.Done())
	}
	stopWatch, err := w.watchExhausted(ctx)
	if err != nil {
		return err
	}
	defer stopWatch()
	stopCancels, err := w.watchCancelled()
	if err != nil {
		return fmt.Errorf("stage %s: watch cancellations: %w", w.Stage, err)
	}
	defer stopCancels()
	// work outlives ctx by the grace period so in-flight handlers can finish.
	work, cancelWork := workers.Grace(ctx, w.Grace)
	defer cancelWork()
	loop := w.loop
	if w.HeldPull {
		loop = w.heldLoop
	}
	return workers.Run(n, func(int) error { return loop(ctx, work) })
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
	for {
		if !w.gate.roomToPull(ctx) {
			return nil
		}
		msg, err := Next(ctx, w.Consumer, w.Log.With("stage", w.Stage), "stage: next message")
		if err != nil {
			return fmt.Errorf("stage %s: %w", w.Stage, err)
		}
		if msg == nil {
			return nil
		}
		if ctx.Err() != nil {
			// Pulled as the worker stopped: hand it back untouched.
			_ = msg.NakWithDelay(releaseDelay)
			return nil
		}
		w.handle(ctx, work, msg)
	}
}

// heldLoop is loop with a pull always waiting on the server (HeldPull).
// A failure of the pull other than the consumer's deletion is logged and
// the pull made again after a pause of Backoff.
func (w *Worker) heldLoop(ctx, work context.Context) error {
	log := w.Log.With("stage", w.Stage)
	for failing := 0; ; failing++ {
		err := w.held(ctx, work)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, jetstream.ErrConsumerDeleted), errors.Is(err, jetstream.ErrConsumerNotFound):
			return fmt.Errorf("stage %s: %w", w.Stage, err)
		}
		log.Warn("stage: next message", "error", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(Backoff(failing + 1)):
		}
	}
}

// held handles messages from one held pull until ctx ends (nil, once the
// messages that came for the pull are handed back) or the pull fails.
func (w *Worker) held(ctx, work context.Context) error {
	// A missed heartbeat (a busy server, a reconnect) is not a failure:
	// the iterator makes its pull again by itself.
	it, err := w.Consumer.Messages(jetstream.PullMaxMessages(1), jetstream.PullExpiry(pullWait),
		jetstream.WithMessagesErrOnMissingHeartbeat(false))
	if err != nil {
		return err
	}
	defer it.Stop()
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if ctx.Err() != nil {
			if msg != nil {
				_ = msg.NakWithDelay(releaseDelay)
			}
			// What the server sent for the waiting pull meanwhile is
			// handed back too.
			it.Drain()
			for {
				msg, err := it.Next()
				if err != nil {
					return nil
				}
				_ = msg.NakWithDelay(releaseDelay)
			}
		}
		if err != nil {
			return err
		}
		w.handle(ctx, work, msg)
	}
}

// Next pulls cons's next message, waiting at most pullWait a pull, until
// one comes: nil once ctx ends, an error once the consumer is gone. A pull
// that fails otherwise (the connection down, the cluster electing a
// leader) is logged at warn as warning and tried again after a pause of
// Backoff, rather than in a spin.
func Next(ctx context.Context, cons jetstream.Consumer, log *slog.Logger, warning string) (jetstream.Msg, error) {
	failing := 0
	for ctx.Err() == nil {
		pull, cancel := context.WithTimeout(ctx, pullWait)
		msg, err := cons.Next(jetstream.FetchContext(pull))
		cancel()
		switch {
		case err == nil:
			return msg, nil
		case ctx.Err() != nil:
			return nil, nil
		case errors.Is(err, nats.ErrTimeout), errors.Is(err, jetstream.ErrNoMessages), errors.Is(err, context.DeadlineExceeded):
			failing = 0
			continue
		case errors.Is(err, jetstream.ErrConsumerDeleted), errors.Is(err, jetstream.ErrConsumerNotFound):
			return nil, err
		}
		failing++
		log.Warn(warning, "error", err)
		select {
		case <-ctx.Done():
			return nil, nil
		case <-time.After(Backoff(failing)):
		}
	}
	return nil, nil
}

// endTimeout bounds what runs once an attempt is over, whose own context
// may have ended: publishing operation.failed and the Ended hook.
const endTimeout = 10 * time.Second

// maxHistory bounds the events read from one operation's history when
// looking for a message's events.
const maxHistory = 256

func (w *Worker) handle(ctx, work context.Context, msg jetstream.Msg) {
	log := w.Log.With("stage", w.Stage, "subject", msg.Subject())
	env, ev, err := events.Decode(msg.Data())
	if err != nil {
		log.Error("stage: terminating undecodable message", "error", err)
		_ = msg.TermWithReason("undecodable: " + err.Error())
		return
	}
	attempt, seq, stored := 1, uint64(0), time.Time{}
	if md, err := msg.Metadata(); err == nil {
		attempt, seq, stored = int(md.NumDelivered), md.Sequence.Stream, md.Timestamp
	}
	// A message the recorder's lanes sourced from the event stream is
	// known by its sequence there, which projections and histories use.
	if h := msg.Headers().Get(events.SourceHeader); h != "" {
		if origin, ok := events.SourceSeq(h); ok {
			seq = origin
		}
	}
	log = log.With("operation_id", env.OperationID, "song_id", env.SongID, "event_id", env.ID, "attempt", attempt)

	// The trace context the publisher put in the headers continues here:
	// the events this message causes carry it on.
	traceCtx, span := startAttempt(events.ExtractTrace(work, msg.Headers()), w.Stage, msg.Subject(), env, attempt)
	defer span.End()
	if sc := span.SpanContext(); sc.HasTraceID() {
		log = log.With("trace_id", sc.TraceID().String())
	}
	// after is the context of what follows the attempt.
	after := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(trace.ContextWithSpanContext(context.WithoutCancel(ctx), span.SpanContext()), endTimeout)
	}

	begin := time.Now()
	d := Delivery{Envelope: env, Event: ev, Seq: seq, Time: stored, Attempt: attempt, Log: log}
	cancelled, since := w.isCancelled(work, env.OperationID, log)
	if cancelled {
		w.endCancelled(ctx, d, msg, after, time.Since(begin))
		return
	}
	d.watched = since
	attemptCtx, untrack := w.cancels.track(traceCtx, env.OperationID)
	defer untrack()
	stopBeat := heartbeat(attemptCtx, msg)
	out, err := w.attempt(attemptCtx, work, d)
	stopBeat()
	took := time.Since(begin)

	if err == nil {
		w.Metrics.ObserveAttempt(w.Stage, metrics.OutcomeOK, "", took)
		endAttempt(span, metrics.OutcomeOK, nil)
		endCtx, cancel := after()
		w.ended(endCtx, d, out)
		cancel()
		// Acked with the server's confirmation, so that a worker that has
		// returned from Run has nothing it finished left to redeliver. A
		// lost ack costs a redelivery, which finds the events stored.
		ackCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ackTimeout)
		err := msg.DoubleAck(ackCtx)
		cancel()
		if err != nil {
			log.Warn("stage: ack", "error", err)
		}
		return
	}
	if work.Err() != nil || errors.Is(err, errNotStarted) {
		// Shut down mid-attempt, or before it had a slot: let another
		// process take it over.
		w.Metrics.ObserveAttempt(w.Stage, metrics.OutcomeReleased, "", took)
		endAttempt(span, metrics.OutcomeReleased, nil)
		log.Info("stage: shutting down, message left for redelivery")
		_ = msg.NakWithDelay(releaseDelay)
		return
	}
	if w.cancelledNow(attemptCtx, env.OperationID) {
		w.endCancelled(ctx, d, msg, after, took)
		return
	}
	f := events.AsFailure(err)
	if w.MaxAttempts <= 0 || (!f.Code.Permanent() && attempt < w.MaxAttempts) {
		delay := Backoff(attempt)
		w.Metrics.ObserveAttempt(w.Stage, metrics.OutcomeRetry, string(f.Code), took)
		endAttempt(span, metrics.OutcomeRetry, f)
		log.Warn("stage: attempt failed, will retry", "code", f.Code, "error", f, "retry_in", delay)
		_ = msg.NakWithDelay(delay)
		return
	}
	w.Metrics.ObserveAttempt(w.Stage, metrics.OutcomeFailed, string(f.Code), took)
	endAttempt(span, metrics.OutcomeFailed, f)
	log.Error("stage: operation failed", "code", f.Code, "error", f)
	endCtx, cancelEnd := after()
	defer cancelEnd()
	failed, err := w.publish(endCtx, endCtx, d, []Emit{{Event: events.OperationFailed{
		Stage: w.Stage, Code: f.Code, Message: f.Message, Attempts: attempt,
	}}}, nil)
	if errors.Is(err, ErrCancelled) {
		// Cancelled while it failed: the history ends at its
		// operation.cancelled, not with a failure.
		w.endCancelled(ctx, d, msg, after, took)
		return
	}
	if err != nil {
		// The failure is not recorded: keep the message so it is.
		log.Error("stage: publish operation.failed", "error", err)
		_ = msg.NakWithDelay(Backoff(1))
		return
	}
	w.ended(endCtx, d, Outcome{Err: f, Events: failed})
	_ = msg.TermWithReason(string(f.Code))
}

// attempt handles d. On a redelivery it first looks for the message's
// events in the stream: all there, the message was handled and only its
// ack was lost; some there, the handler runs and only the missing ones are
// published. With Quick set, Quick is tried first; a message it does not
// answer waits for a slot before Handle runs. STAGE_TIMEOUT bounds the
// handling from the moment it has a slot (a failure past it is a timeout).
// JetStream out of reach, in the handler or a publish, costs no attempt:
// it waits until JetStream answers and carries on, within the timeout.
//
// A nil error means every event is stored; the Outcome's Err is then set
// only for a message found already failed (its operation.failed stored).
// ctx ended before the message had a slot returns ctx's cause.
func (w *Worker) attempt(ctx, work context.Context, d Delivery) (Outcome, error) {
	var have []events.Envelope
	if d.Attempt > 1 {
		hctx, cancel := context.WithTimeout(ctx, w.Timeout)
		found, done, err := w.caused(hctx, d)
		cancel()
		switch {
		case err != nil:
			// Publish as if nothing were stored: within the duplicate
			// window the stream keeps one copy of each id.
			d.Log.Warn("stage: the history of a redelivered message is unreadable", "error", err)
		case done:
			d.Log.Info("stage: redelivered message was handled already")
			return outcomeOf(found), nil
		default:
			have = found
		}
	}
	if w.Quick != nil {
		out, err := w.quick(ctx, work, d, have)
		if !errors.Is(err, ErrNotQuick) {
			return out, err
		}
		release, err := w.gate.slot(ctx)
		if err != nil {
			return Outcome{}, err
		}
		defer release()
	}
	tctx, cancel := context.WithTimeout(ctx, w.Timeout)
	defer cancel()
	out, err := w.run(tctx, work, d, w.Handle, have)
	if err != nil && errors.Is(tctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
		if f := events.AsFailure(err); !f.Code.Permanent() {
			err = events.Wrap(events.CodeTimeout, err, "the %s stage took longer than %s", w.Stage, w.Timeout)
		}
	}
	return out, err
}

// DefaultQuickTimeout bounds one Worker.Quick when QuickTimeout is 0.
const DefaultQuickTimeout = 10 * time.Second

// ErrNotQuick is what a Worker's Quick returns for a message it cannot
// answer without the work the Slots bound.
var ErrNotQuick = errors.New("stage: not answered quickly")

// quick runs Quick within QuickTimeout: ErrNotQuick when it does not
// answer, else the outcome as run's.
func (w *Worker) quick(ctx, work context.Context, d Delivery, have []events.Envelope) (Outcome, error) {
	timeout := w.QuickTimeout
	if timeout <= 0 {
		timeout = DefaultQuickTimeout
	}
	qctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out, err := w.run(qctx, work, d, w.Quick, have)
	if err != nil && errors.Is(qctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil && !errors.Is(err, ErrNotQuick) {
		if f := events.AsFailure(err); !f.Code.Permanent() {
			err = events.Wrap(events.CodeTimeout, err, "the %s stage's quick answer took longer than %s", w.Stage, timeout)
		}
	}
	return out, err
}

// run calls handle on d, waiting out JetStream out of reach, and publishes
// the events it returns that have does not hold.
func (w *Worker) run(ctx, work context.Context, d Delivery, handle Handler, have []events.Envelope) (Outcome, error) {
	for {
		emits, err := handle(ctx, d)
		if err == nil {
			envs, err := w.publish(ctx, work, d, emits, have)
			return Outcome{Events: envs}, err
		}
		if !Unavailable(err) || ctx.Err() != nil || work.Err() != nil {
			return Outcome{}, err
		}
		d.Log.Warn("stage: JetStream unavailable; the attempt resumes once it answers", "error", err)
		if !w.awaitJetStream(ctx) {
			return Outcome{}, err
		}
	}
}

// publish wraps emits in d's derived envelopes, stamped with the attempt,
// the cause and the batch size, and stores in order those that have does
// not hold. It returns every envelope of the batch.
func (w *Worker) publish(ctx, work context.Context, d Delivery, emits []Emit, have []events.Envelope) ([]events.Envelope, error) {
	stored := make(map[string]bool, len(have))
	for _, e := range have {
		stored[e.ID] = true
	}
	envs := make([]events.Envelope, 0, len(emits))
	for _, e := range emits {
		env, err := events.Next(d.Envelope, e.SongID, e.Event)
		if err != nil {
			return nil, events.Wrap(events.CodeInternal, err, "the %s event could not be made", e.Event.Kind())
		}
		env.Attempt, env.Cause, env.Batch = d.Attempt, d.Envelope.ID, len(emits)
		envs = append(envs, env)
	}
	asked := false
	for i, env := range envs {
		if stored[env.ID] {
			continue
		}
		if w.cancelledNow(ctx, d.Envelope.OperationID) {
			return envs, ErrCancelled
		}
		if !asked {
			// The watch misses a cancel published while this worker's
			// connection was down: unless it has missed nothing since
			// the read before the attempt, the stream is asked once,
			// before the first event of the attempt is published.
			asked = true
			if !d.watched.unbroken(w.mark()) && w.cancelledInStream(ctx, d.Envelope.OperationID, d.Log) {
				return envs, ErrCancelled
			}
		}
		if err := w.store(ctx, work, env, d.Log); err != nil {
			return envs, events.Wrap(events.CodeInternal, err, "the %s event could not be recorded", env.Type)
		}
		w.Metrics.EventPublished(w.Stage, string(emits[i].Event.Kind()))
	}
	return envs, nil
}

// publishTimeout bounds the wait for the answer to one publish. A publish
// in flight when the connection drops is never answered, even once the
// client has reconnected: without a bound of its own it would hold the
// attempt until STAGE_TIMEOUT.
const publishTimeout = 5 * time.Second

// store publishes env. A publish JetStream does not answer is made again,
// with the same id, once it answers: if the first one was stored after
// all, the stream keeps one copy (events.DuplicateWindow).
func (w *Worker) store(ctx, work context.Context, env events.Envelope, log *slog.Logger) error {
	for {
		pubCtx, cancel := context.WithTimeout(ctx, publishTimeout)
		_, err := w.publisher().Publish(pubCtx, env)
		cancel()
		unanswered := errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil
		if err == nil || !(unanswered || Unavailable(err)) || ctx.Err() != nil || work.Err() != nil {
			return err
		}
		log.Warn("stage: JetStream unavailable; the publish is made again once it answers", "type", env.Type, "error", err)
		if !w.awaitJetStream(ctx) {
			return err
		}
	}
}

// caused returns the events of d's message that the stream holds, in
// stream order: those after it in its operation's history whose Cause is
// its id. done says the message was handled: its operation.failed is
// there, or every event of its batch.
func (w *Worker) caused(ctx context.Context, d Delivery) (found []events.Envelope, done bool, err error) {
	if d.Seq == 0 {
		return nil, false, nil
	}
	stream, err := w.eventStream(ctx)
	if err != nil {
		return nil, false, err
	}
	filter := events.OperationSubjects(d.Envelope.OperationID)
	next := d.Seq + 1
	for range maxHistory {
		raw, err := stream.GetMsg(ctx, next, jetstream.WithGetMsgSubject(filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, false, fmt.Errorf("stage %s: history of %s: %w", w.Stage, d.Envelope.OperationID, err)
		}
		next = raw.Sequence + 1
		var env events.Envelope
		if json.Unmarshal(raw.Data, &env) != nil || env.Cause != d.Envelope.ID {
			continue
		}
		found = append(found, env)
	}
	results := 0
	for _, env := range found {
		if env.Type == events.TypeOperationFailed {
			return found, true, nil
		}
		results++
	}
	return found, results > 0 && results >= found[0].Batch, nil
}

// outcomeOf is the Outcome of a message whose events were found stored.
func outcomeOf(found []events.Envelope) Outcome {
	for _, env := range found {
		if env.Type != events.TypeOperationFailed {
			continue
		}
		f := events.Fail(events.CodeInternal, "the operation failed")
		if ev, err := env.Event(); err == nil {
			failed := ev.(events.OperationFailed)
			f = events.Fail(failed.Code, "%s", failed.Message)
		}
		return Outcome{Err: f, Events: found}
	}
	return Outcome{Events: found}
}

// ended runs the Ended hook, if any.
func (w *Worker) ended(ctx context.Context, d Delivery, o Outcome) {
	if w.Ended != nil {
		w.Ended(ctx, d, o)
	}
}

// publisher is Publish, or events.NewPublisher(JS).
func (w *Worker) publisher() Publisher {
	if w.Publish != nil {
		return w.Publish
	}
	return events.NewPublisher(w.JS)
}

// eventStream is the event stream's handle, looked up once.
func (w *Worker) eventStream(ctx context.Context) (jetstream.Stream, error) {
	w.streamMu.Lock()
	defer w.streamMu.Unlock()
	if w.stream != nil {
		return w.stream, nil
	}
	s, err := w.JS.Stream(ctx, events.StreamName)
	if err != nil {
		return nil, fmt.Errorf("stage %s: stream: %w", w.Stage, err)
	}
	w.stream = s
	return s, nil
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
