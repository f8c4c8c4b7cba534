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

// jetStreamer is what *events.Publisher offers besides Publish.
type jetStreamer interface {
	JetStream() jetstream.JetStream
}

// jetStream is Worker.JS, or the JetStream of its publisher, or nil.
func (w *Worker) jetStream() jetstream.JetStream {
	if w.JS != nil {
		return w.JS
	}
	if p, ok := w.Publish.(jetStreamer); ok {
		return p.JetStream()
	}
	return nil
}

// watchExhausted subscribes to the max-deliveries advisory of the worker's
// consumer and, for each message that ran out of deliveries without an
// answer, publishes operation.failed (see Exhausted). It returns once the
// subscription is in place; stop ends it and waits for the advisory in
// hand. Without a JetStream to reach (see Worker.JS) it does nothing.
func (w *Worker) watchExhausted(ctx context.Context) (stop func(), err error) {
	js := w.jetStream()
	if js == nil || w.Consumer == nil {
		return func() {}, nil
	}
	info := w.Consumer.CachedInfo()
	if info == nil || info.Config.MaxDeliver <= 0 {
		// No bound on deliveries: nothing is ever exhausted.
		return func() {}, nil
	}
	maxDeliver := info.Config.MaxDeliver
	advisories := make(chan *nats.Msg, 64)
	sub, err := js.Conn().ChanSubscribe(events.MaxDeliveriesAdvisorySubject(info.Name), advisories)
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
				w.recordExhausted(wctx, js, adv, maxDeliver)
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
func (w *Worker) recordExhausted(ctx context.Context, js jetstream.JetStream, adv events.MaxDeliveriesAdvisory, maxDeliver int) {
	log := w.Log.With("stage", w.Stage, "seq", adv.StreamSeq)
	var err error
	for try := 1; try <= exhaustedTries; try++ {
		var env events.Envelope
		var published bool
		env, published, err = Exhausted(ctx, js, w.Publish, w.Stage, adv.StreamSeq, maxDeliver)
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
// of deliveries on the consumer of stage (maxDeliver of them, all cut short
// by crashes or ended without an answer), by publishing operation.failed
// with code timeout: "the <stage> stage did not finish after <maxDeliver>
// attempts". Its id is derived from the message's (events.Next), as is the
// one the stage worker itself publishes when an attempt fails, so running
// it in several processes, or after the worker did record a failure,
// stores one event.
//
// When the operation's history already holds an event after the message
// (the stage published its result, or a failure, before dying unacked),
// the operation has moved on and nothing is published: published is false.
// env is the message's envelope. The error wraps events.ErrMalformed for
// a message that does not decode and jetstream.ErrMsgNotFound for one no
// longer in the stream; both are final.
func Exhausted(ctx context.Context, js jetstream.JetStream, pub Publisher, stage string, seq uint64, maxDeliver int) (env events.Envelope, published bool, err error) {
	stream, err := js.Stream(ctx, events.StreamName)
	if err != nil {
		return env, false, fmt.Errorf("stage %s: stream: %w", stage, err)
	}
	raw, err := stream.GetMsg(ctx, seq)
	if err != nil {
		return env, false, fmt.Errorf("stage %s: message %d: %w", stage, seq, err)
	}
	env, _, err = events.Decode(raw.Data)
	if err != nil {
		return env, false, fmt.Errorf("stage %s: message %d: %w", stage, seq, err)
	}
	last, err := stream.GetLastMsgForSubject(ctx, events.OperationSubjects(env.OperationID))
	if err != nil {
		return env, false, fmt.Errorf("stage %s: history of %s: %w", stage, env.OperationID, err)
	}
	if last.Sequence > seq {
		return env, false, nil
	}
	failed, err := events.Next(env, "", events.OperationFailed{
		Stage:    stage,
		Code:     events.CodeTimeout,
		Message:  fmt.Sprintf("the %s stage did not finish after %d attempts", stage, maxDeliver),
		Attempts: maxDeliver,
	})
	if err != nil {
		return env, false, err
	}
	failed.Attempt = maxDeliver
	// The failure continues the operation's trace.
	if _, err := pub.Publish(events.ExtractTrace(ctx, raw.Header), failed); err != nil {
		return env, false, err
	}
	return env, true, nil
}
