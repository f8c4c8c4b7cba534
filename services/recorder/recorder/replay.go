package recorder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

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

// Replay applies every event of the stream, from its first message to the
// last one present when Replay starts, to store with the same rules as the
// live recorder (Apply). Into fresh stores it rebuilds the projections; into
// stores that already hold them it changes nothing, since each record
// remembers the last sequence applied to it. It does not use or move the
// recorder's durable consumer, so live recorders may keep running.
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
