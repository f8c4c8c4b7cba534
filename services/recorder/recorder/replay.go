package recorder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/nats-io/nats.go/jetstream"
)

// ReplayStats counts what Replay did.
type ReplayStats struct {
	// Events is how many messages of the stream were read.
	Events int
	// Applied is how many changed a record; the rest were applied already
	// (their sequence is at or below the record's) or are undecodable.
	Applied int
	// Undecodable counts messages skipped because they do not decode.
	Undecodable int
	// LastSeq is the last stream sequence read.
	LastSeq uint64
}

// Replay applies every event the stream holds, from its first message (the
// oldest one a limited stream still keeps: see events.StreamLimits) to the
// last one present when Replay starts, to store with the same rules as the
// live recorder (projection.Apply). Into fresh stores it rebuilds the projections of
// what the stream holds; into stores that already hold them it changes
// nothing, since each record remembers the last sequence applied to it.
// It deletes nothing: records of operations whose events the stream no
// longer holds stay as they are. It does not use or move the recorder's
// durable consumer.
//
// A live recorder writing the same store meanwhile can lose fields (each
// writes a record it read before the other's write): a store without
// conditional writes (JetStream KV) must be replayed with no recorder
// running; see CheckNoRecorder.
func Replay(ctx context.Context, js jetstream.JetStream, store Store, log *slog.Logger) (ReplayStats, error) {
	var st ReplayStats
	stream, err := js.Stream(ctx, events.StreamName)
	if err != nil {
		return st, fmt.Errorf("replay: %w", err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return st, fmt.Errorf("replay: stream info: %w", err)
	}
	last := info.State.LastSeq
	if info.State.Msgs == 0 {
		return st, nil
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return st, fmt.Errorf("replay: consumer: %w", err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(256))
	if err != nil {
		return st, fmt.Errorf("replay: consume: %w", err)
	}
	defer it.Stop()
	go func() {
		<-ctx.Done()
		it.Stop()
	}()

	r := &recorder{store: store, log: log}
	for st.LastSeq < last {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return st, ctx.Err()
			}
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return st, fmt.Errorf("replay: stopped at sequence %d of %d", st.LastSeq, last)
			}
			return st, fmt.Errorf("replay: %w", err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return st, fmt.Errorf("replay: metadata: %w", err)
		}
		st.Events++
		st.LastSeq = md.Sequence.Stream
		env, ev, err := events.Decode(msg.Data())
		if err != nil {
			st.Undecodable++
			log.Warn("replay: skipping undecodable message", "seq", st.LastSeq, "subject", msg.Subject(), "error", err)
			continue
		}
		changed, err := r.applyChanged(ctx, env, ev, st.LastSeq, md.Timestamp, log)
		if err != nil {
			return st, fmt.Errorf("replay: sequence %d: %w", st.LastSeq, err)
		}
		if changed {
			st.Applied++
		}
	}
	return st, nil
}

// RecorderRunningError is CheckNoRecorder's answer when a recorder
// consumes the stream.
type RecorderRunningError struct {
	// Why says what showed it, e.g. "1 pull request waiting".
	Why string
}

func (e *RecorderRunningError) Error() string {
	return fmt.Sprintf("a recorder is running (its consumer %q on stream %s: %s): stop every butakero and recorder process using this NATS before replaying into JetStream KV, or its writes and the replay's can overwrite each other",
		events.ConsumerRecorder, events.StreamName, e.Why)
}

// CheckNoRecorder returns a *RecorderRunningError when a recorder process
// consumes the stream, nil when none does (or none ever did), watching the
// recorder's durable consumer for window. A running recorder always either
// has a pull request waiting at the server (NumWaiting, while idle or
// between events) or moves the consumer on (its delivered and ack
// sequences, while busy); a stopped one does neither, and its pull
// requests are dropped with its subscription. So the check is answered as
// soon as a sign shows, and a quiet window of window means none runs. A
// recorder dead with an event in hand counts as stopped.
//
// It is a check, not a lock: a recorder started after it returns is not
// seen.
func CheckNoRecorder(ctx context.Context, js jetstream.JetStream, window time.Duration) error {
	cons, err := js.Consumer(ctx, events.StreamName, events.ConsumerRecorder)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil // no recorder ever ran on this stream
	}
	if err != nil {
		return fmt.Errorf("replay: the recorder's consumer: %w", err)
	}
	const every = 50 * time.Millisecond
	deadline := time.Now().Add(window)
	var first *jetstream.ConsumerInfo
	for {
		info, err := cons.Info(ctx)
		if err != nil {
			return fmt.Errorf("replay: the recorder's consumer: %w", err)
		}
		switch {
		case info.NumWaiting > 0:
			return &RecorderRunningError{Why: fmt.Sprintf("%d pull request(s) waiting", info.NumWaiting)}
		case info.PushBound:
			return &RecorderRunningError{Why: "a push subscription bound"}
		case first == nil:
			first = info
		case info.Delivered.Stream != first.Delivered.Stream || info.AckFloor.Stream != first.AckFloor.Stream:
			return &RecorderRunningError{Why: fmt.Sprintf("applied events %d to %d while watched", first.AckFloor.Stream, info.AckFloor.Stream)}
		}
		if !time.Now().Before(deadline) {
			return nil
		}
		t := time.NewTimer(min(every, time.Until(deadline)))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}
