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

	a := NewApplier(store, log)
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
		changed, err := a.Apply(ctx, env, ev, st.LastSeq, md.Timestamp)
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
	// Consumer names the consumer that showed it.
	Consumer string
	// Why says what showed it, e.g. "1 pull request waiting".
	Why string
}

func (e *RecorderRunningError) Error() string {
	return fmt.Sprintf("a recorder is running (%s: %s): stop every butakero and recorder process using this NATS before replaying into JetStream KV, or its writes and the replay's can overwrite each other",
		e.Consumer, e.Why)
}

// CheckNoRecorder returns a *RecorderRunningError when a recorder process
// consumes the stream, nil when none does (or none ever did), watching the
// recorder's durable consumers (its lanes on events.LanesStreamName, and
// the single consumer of a recorder from before lanes) for window. A
// running recorder always either has a pull request waiting at the server
// (NumWaiting, while idle or between events) or moves a consumer on (its
// delivered and ack sequences, while busy); a stopped one does neither,
// and its pull requests are dropped with its subscription. So the check is
// answered as soon as a sign shows, and a quiet window of window means
// none runs. A recorder dead with an event in hand counts as stopped.
//
// It is a check, not a lock: a recorder started after it returns is not
// seen.
func CheckNoRecorder(ctx context.Context, js jetstream.JetStream, window time.Duration) error {
	type watched struct {
		name  string
		cons  jetstream.Consumer
		first *jetstream.ConsumerInfo
	}
	var all []*watched
	if c, err := js.Consumer(ctx, events.StreamName, events.ConsumerRecorder); err == nil {
		all = append(all, &watched{name: fmt.Sprintf("its consumer %q on stream %s", events.ConsumerRecorder, events.StreamName), cons: c})
	} else if !errors.Is(err, jetstream.ErrConsumerNotFound) && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("replay: the recorder's consumer: %w", err)
	}
	lanes, err := js.Stream(ctx, events.LanesStreamName)
	switch {
	case err == nil:
		for name := range lanes.ConsumerNames(ctx).Name() {
			c, err := lanes.Consumer(ctx, name)
			if err != nil {
				return fmt.Errorf("replay: the recorder's lane %s: %w", name, err)
			}
			all = append(all, &watched{name: fmt.Sprintf("its lane %q on stream %s", name, events.LanesStreamName), cons: c})
		}
	case !errors.Is(err, jetstream.ErrStreamNotFound):
		return fmt.Errorf("replay: the recorder's lanes: %w", err)
	}
	if len(all) == 0 {
		return nil // no recorder ever ran on this stream
	}
	const every = 50 * time.Millisecond
	deadline := time.Now().Add(window)
	for {
		for _, w := range all {
			info, err := w.cons.Info(ctx)
			if err != nil {
				return fmt.Errorf("replay: the recorder's consumer %s: %w", w.name, err)
			}
			switch {
			case info.NumWaiting > 0:
				return &RecorderRunningError{Consumer: w.name, Why: fmt.Sprintf("%d pull request(s) waiting", info.NumWaiting)}
			case info.PushBound:
				return &RecorderRunningError{Consumer: w.name, Why: "a push subscription bound"}
			case w.first == nil:
				w.first = info
			case info.Delivered.Stream != w.first.Delivered.Stream || info.AckFloor.Stream != w.first.AckFloor.Stream:
				return &RecorderRunningError{Consumer: w.name, Why: fmt.Sprintf("applied events %d to %d while watched", w.first.AckFloor.Stream, info.AckFloor.Stream)}
			}
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
