package stage

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/runtime/metrics"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrCancelled is the cause of an attempt's context, and the Err of its
// Outcome, when its operation was cancelled (operation.cancelled).
var ErrCancelled = errors.New("stage: the operation was cancelled")

// A Cancellable worker stops the work of an operation once it is
// cancelled:
//
//   - Every worker subscribes (core NATS) to operation.cancelled.*, which
//     the server delivers to it as the event is stored, and cancels the
//     context of the attempt that works on that operation with cause
//     ErrCancelled: the handler's processes (yt-dlp, ffmpeg) are killed by
//     that context within moments.
//   - Before an attempt starts, the stream is asked whether the operation
//     has an operation.cancelled: a message of an operation cancelled
//     while it waited in the consumer, or while no worker was watching, is
//     not handled at all.
//   - Before an attempt publishes its events the stream is asked again,
//     unless the watch has missed nothing since the first read (the
//     connection stayed up, with no reconnect, and the subscription
//     dropped nothing): a cancel the watch missed (published while the
//     worker's connection was down) still stops them.
//   - A cancelled attempt publishes nothing (the publish of each event
//     checks again), runs the Ended hook with Outcome.Cancelled, and is
//     acked: the stage lets go of what it held (a staging blob, a claim),
//     and the operation's history ends at its operation.cancelled.
//
// A cancel that arrives once every event of the message is stored changes
// nothing for that message; the next stage does not handle its successor.
type cancelWatch struct {
	mu sync.Mutex
	// running maps an operation id to the cancel funcs of the attempts
	// working on it in this worker.
	running map[string]map[uint64]context.CancelCauseFunc
	next    uint64
	// seen holds the operations this worker saw cancelled, and when, for
	// cancelMemory: the check before each publish reads it.
	seen map[string]time.Time
}

// cancelMemory is how long a worker remembers a cancelled operation. Past
// it, the stream answers (the check before an attempt).
const cancelMemory = 10 * time.Minute

// newCancelWatch returns an empty watch. The methods of a nil one (a
// Worker used outside Run) see no cancel.
func newCancelWatch() *cancelWatch {
	return &cancelWatch{running: map[string]map[uint64]context.CancelCauseFunc{}, seen: map[string]time.Time{}}
}

// cancel marks opID cancelled and cancels its attempts in flight.
func (c *cancelWatch) cancel(opID string) int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	c.seen[opID] = now
	for id, at := range c.seen {
		if now.Sub(at) > cancelMemory {
			delete(c.seen, id)
		}
	}
	n := 0
	for _, f := range c.running[opID] {
		f(ErrCancelled)
		n++
	}
	return n
}

// cancelled reports whether opID was seen cancelled.
func (c *cancelWatch) cancelled(opID string) bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.seen[opID]
	return ok
}

// track returns ctx that a cancel of opID ends with cause ErrCancelled,
// and the func that stops tracking it (and releases its resources).
func (c *cancelWatch) track(ctx context.Context, opID string) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	if c == nil {
		return ctx, func() { cancel(context.Canceled) }
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.seen[opID]; ok {
		cancel(ErrCancelled)
	}
	if c.running[opID] == nil {
		c.running[opID] = map[uint64]context.CancelCauseFunc{}
	}
	c.next++
	key := c.next
	c.running[opID][key] = cancel
	return ctx, func() {
		c.mu.Lock()
		delete(c.running[opID], key)
		if len(c.running[opID]) == 0 {
			delete(c.running, opID)
		}
		c.mu.Unlock()
		cancel(context.Canceled)
	}
}

// watchCancelled subscribes to operation.cancelled.* for a Cancellable
// worker; stop ends the subscription.
func (w *Worker) watchCancelled() (stop func(), err error) {
	if !w.Cancellable {
		return func() {}, nil
	}
	sub, err := w.JS.Conn().Subscribe(events.CancelledSubjects(), func(m *nats.Msg) {
		_, opID, ok := events.KindOf(m.Subject)
		if !ok {
			return
		}
		if n := w.cancels.cancel(opID); n > 0 {
			w.Log.Info("stage: operation cancelled; stopping its work", "stage", w.Stage, "operation_id", opID, "attempts", n)
		}
	})
	if err != nil {
		return nil, err
	}
	w.cancelSub = sub
	return func() { _ = sub.Unsubscribe() }, nil
}

// watchMark is the state of a Cancellable worker's watch at one moment:
// two marks equal and ok mean the watch missed no cancel between them
// (the connection stayed up, with no reconnect, and the subscription
// dropped no message).
type watchMark struct {
	ok         bool
	reconnects uint64
	dropped    int
}

// mark is the watch's state now; not ok when it cannot be told.
func (w *Worker) mark() watchMark {
	if w.cancelSub == nil {
		return watchMark{}
	}
	nc := w.JS.Conn()
	dropped, err := w.cancelSub.Dropped()
	if err != nil || !nc.IsConnected() || !w.cancelSub.IsValid() {
		return watchMark{}
	}
	return watchMark{ok: true, reconnects: nc.Stats().Reconnects, dropped: dropped}
}

// unbroken reports whether the watch missed nothing from m to now.
func (m watchMark) unbroken(now watchMark) bool {
	return m.ok && now.ok && m == now
}

// cancelTimeout bounds the stream read that tells whether an operation
// was cancelled before its message was handled.
const cancelTimeout = 5 * time.Second

// isCancelled reports whether opID is cancelled: seen by the watch, or
// its operation.cancelled is in the stream. A stream that cannot be read
// says no: the work goes on, and the watch still stops it. since is the
// watch's mark taken just before the stream said no (not ok otherwise):
// while the watch stays unbroken from it, a cancel reaches the watch and
// the stream need not be asked again (publish).
func (w *Worker) isCancelled(ctx context.Context, opID string, log interface{ Warn(string, ...any) }) (cancelled bool, since watchMark) {
	if !w.Cancellable {
		return false, watchMark{}
	}
	if w.cancels.cancelled(opID) {
		return true, watchMark{}
	}
	mark := w.mark()
	ctx, cancel := context.WithTimeout(ctx, cancelTimeout)
	defer cancel()
	stream, err := w.eventStream(ctx)
	if err == nil {
		_, err = stream.GetLastMsgForSubject(ctx, events.Subject(events.KindOperationCancelled, opID))
		if err == nil {
			w.cancels.cancel(opID)
			return true, watchMark{}
		}
	}
	if !errors.Is(err, jetstream.ErrMsgNotFound) {
		log.Warn("stage: whether the operation is cancelled could not be read", "error", err)
		return false, watchMark{}
	}
	return false, mark
}

// cancelledInStream reports whether opID's operation.cancelled is in the
// stream (one direct read of the last message on its subject), or was seen
// by the watch. It is asked before an attempt publishes: a cancel the watch
// missed (published while this worker's connection was down, its core
// subscription not yet renewed) still stops the attempt's events. JetStream
// out of reach is waited out, within ctx, as a publish would wait; any
// other failure to read says no, and is logged.
func (w *Worker) cancelledInStream(ctx context.Context, opID string, log interface{ Warn(string, ...any) }) bool {
	if !w.Cancellable {
		return false
	}
	for {
		if w.cancels.cancelled(opID) {
			return true
		}
		rctx, cancel := context.WithTimeout(ctx, cancelTimeout)
		stream, err := w.eventStream(rctx)
		if err == nil {
			_, err = stream.GetLastMsgForSubject(rctx, events.Subject(events.KindOperationCancelled, opID))
		}
		cancel()
		switch {
		case err == nil:
			w.cancels.cancel(opID)
			return true
		case errors.Is(err, jetstream.ErrMsgNotFound):
			return false
		case ctx.Err() != nil:
			return false
		case Unavailable(err) || errors.Is(err, context.DeadlineExceeded):
			if !w.awaitJetStream(ctx) {
				return false
			}
		default:
			log.Warn("stage: whether the operation is cancelled could not be read", "error", err)
			return false
		}
	}
}

// cancelledNow reports whether the attempt with context ctx was cancelled,
// or its operation seen cancelled since.
func (w *Worker) cancelledNow(ctx context.Context, opID string) bool {
	if !w.Cancellable {
		return false
	}
	return errors.Is(context.Cause(ctx), ErrCancelled) || w.cancels.cancelled(opID)
}

// endCancelled ends the message of a cancelled operation: the Ended hook
// lets go of what it held, and the message is acked, nothing published.
func (w *Worker) endCancelled(ctx context.Context, d Delivery, msg jetstream.Msg, after func() (context.Context, context.CancelFunc), took time.Duration) {
	w.Metrics.ObserveAttempt(w.Stage, metrics.OutcomeCancelled, "", took)
	d.Log.Info("stage: the operation is cancelled; its message ends here")
	endCtx, cancel := after()
	w.ended(endCtx, d, Outcome{Err: ErrCancelled, Cancelled: true})
	cancel()
	ackCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ackTimeout)
	defer cancel()
	if err := msg.DoubleAck(ackCtx); err != nil {
		d.Log.Warn("stage: ack", "error", err)
	}
}
