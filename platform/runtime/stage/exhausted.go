package stage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// exhaustedTries bounds the attempts to record one exhausted message: the
// advisory is sent once, so a publish that fails (a leader election in the
// cluster) is tried again for a while; every other process of the stage
// received the same advisory and tries too.
const exhaustedTries = 6

// watchExhausted subscribes to the max-deliveries advisory of the worker's
// consumer and, for each message that ran out of deliveries without an
// answer, publishes operation.failed (see Exhausted). It returns once the
// subscription is in place; stop ends it and waits for the advisory in
// hand.
func (w *Worker) watchExhausted(ctx context.Context) (stop func(), err error) {
	info := w.Consumer.CachedInfo()
	if info == nil || info.Config.MaxDeliver <= 0 {
		// No bound on deliveries: nothing is ever exhausted.
		return func() {}, nil
	}
	maxDeliver := info.Config.MaxDeliver
	advisories := make(chan *nats.Msg, 64)
	sub, err := w.JS.Conn().ChanSubscribe(events.MaxDeliveriesAdvisorySubject(info.Name), advisories)
	if err != nil {
		return nil, fmt.Errorf("stage %s: watch max-deliveries advisories: %w", w.Stage, err)
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-wctx.Done():
				return
			case m := <-advisories:
				var adv events.MaxDeliveriesAdvisory
				if err := json.Unmarshal(m.Data, &adv); err != nil || adv.Stream != events.StreamName || adv.StreamSeq == 0 {
					w.Log.Warn("stage: unreadable max-deliveries advisory", "stage", w.Stage, "error", err)
					continue
				}
				w.recordExhausted(wctx, adv, maxDeliver)
			}
		}
	}()
	return func() {
		_ = sub.Unsubscribe()
		cancel()
		<-done
	}, nil
}

// recordExhausted tries Exhausted a few times with backoff, logging the
// outcome once.
func (w *Worker) recordExhausted(ctx context.Context, adv events.MaxDeliveriesAdvisory, maxDeliver int) {
	log := w.Log.With("stage", w.Stage, "seq", adv.StreamSeq)
	var err error
	for try := 1; try <= exhaustedTries; try++ {
		var env events.Envelope
		var published bool
		env, published, err = w.Exhausted(ctx, adv.StreamSeq, maxDeliver)
		if err == nil {
			log = log.With("operation_id", env.OperationID, "song_id", env.SongID, "event_id", env.ID)
			if published {
				log.Error("stage: operation failed: every delivery died without an answer", "attempts", maxDeliver)
			} else {
				log.Info("stage: message ran out of deliveries after the operation moved on; nothing to record")
			}
			return
		}
		if errors.Is(err, events.ErrMalformed) || errors.Is(err, events.ErrUnknownType) || errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(Backoff(try)):
		}
	}
	log.Error("stage: could not record a message that ran out of deliveries", "error", err)
}

// Exhausted ends the operation of the stream message at seq, which ran out
// of deliveries on the worker's consumer (maxDeliver of them, all cut short
// by crashes or ended without an answer), by publishing operation.failed
// with code timeout: "the <stage> stage did not finish after <maxDeliver>
// attempts". Its id is derived from the message's, as is the one the
// worker publishes when an attempt fails, so running it in several
// processes, or after the worker did record a failure, stores one event.
// The Ended hook then runs as for any failure.
//
// When the stream holds every event the message causes (it was handled and
// only the ack was lost), nothing is published: published is false. env is
// the message's envelope. The error wraps events.ErrMalformed for a message
// that does not decode and jetstream.ErrMsgNotFound for one no longer in
// the stream; both are final.
func (w *Worker) Exhausted(ctx context.Context, seq uint64, maxDeliver int) (env events.Envelope, published bool, err error) {
	stream, err := w.eventStream(ctx)
	if err != nil {
		return env, false, err
	}
	raw, err := stream.GetMsg(ctx, seq)
	if err != nil {
		return env, false, fmt.Errorf("stage %s: message %d: %w", w.Stage, seq, err)
	}
	env, ev, err := events.Decode(raw.Data)
	if err != nil {
		return env, false, fmt.Errorf("stage %s: message %d: %w", w.Stage, seq, err)
	}
	d := Delivery{Envelope: env, Event: ev, Seq: seq, Attempt: maxDeliver, Log: w.Log}
	found, done, err := w.caused(ctx, d)
	if err != nil {
		return env, false, err
	}
	if done && outcomeOf(found).Err == nil {
		return env, false, nil
	}
	if cancelled, _ := w.isCancelled(ctx, env.OperationID, w.Log); cancelled {
		// A cancelled operation has ended: nothing more is published.
		w.ended(ctx, d, Outcome{Err: ErrCancelled, Cancelled: true})
		return env, false, nil
	}
	f := events.Fail(events.CodeTimeout, "the %s stage did not finish after %d attempts", w.Stage, maxDeliver)
	// The failure continues the operation's trace.
	failed, err := w.publish(events.ExtractTrace(ctx, raw.Header), ctx, d, []Emit{{Event: events.OperationFailed{
		Stage: w.Stage, Code: f.Code, Message: f.Message, Attempts: maxDeliver,
	}}}, found)
	if err != nil {
		return env, false, err
	}
	w.ended(ctx, d, Outcome{Err: f, Events: failed})
	return env, true, nil
}
