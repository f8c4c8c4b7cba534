// Package recorder projects the event stream into the operation and song
// projections (platform/projection): the state the gateway serves.
//
// It reads every event of the stream through the durable consumer
// events.ConsumerRecorder, one at a time in stream order (MaxAckPending 1,
// shared by all recorder processes), and never skips one:
//   - an event is applied (see Apply) and then acked;
//   - a store error Naks it with a backoff delay, and it is retried forever
//     (the consumer has no MaxDeliver), holding back the events after it;
//   - a message that does not decode is terminated with the reason logged:
//     it can never be applied, and later events must not wait for it.
//
// Applying is idempotent by stream sequence: each record keeps the sequence
// of the last event applied to it, and a redelivered event is skipped.
package recorder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/config"
	"github.com/butakero/butakero/platform/kvstore"
	"github.com/butakero/butakero/platform/projection"
	"github.com/butakero/butakero/platform/stage"
	"github.com/nats-io/nats.go/jetstream"
)

// applyTimeout bounds the store calls for one event, below events.AckWait
// so a slow store does not get the event delivered twice at once.
const applyTimeout = 20 * time.Second

// Store holds the projections. Reads of a missing record return
// projection.ErrNotFound. *kvstore.Store satisfies it.
type Store interface {
	Operation(ctx context.Context, id string) (projection.Operation, error)
	PutOperation(ctx context.Context, op projection.Operation) error
	Song(ctx context.Context, id string) (projection.Song, error)
	PutSong(ctx context.Context, song projection.Song) error
}

var _ Store = (*kvstore.Store)(nil)

// Deps is what Run needs.
type Deps struct {
	// JS holds the event stream (which must exist) and the consumer.
	JS    jetstream.JetStream
	Store Store
	// Config gives ShutdownGrace.
	Config config.Config
	Log    *slog.Logger
}

// Run projects events until ctx is cancelled. It then stops taking events,
// finishes the one in hand (within Config.ShutdownGrace; past it the event
// is left unacked for redelivery) and returns nil. Several processes may run
// it: the consumer hands out one event at a time to any of them.
func Run(ctx context.Context, d Deps) error {
	if d.JS == nil || d.Store == nil || d.Log == nil {
		return errors.New("recorder: Deps needs JS, Store and Log")
	}
	cons, err := events.EnsureConsumer(ctx, d.JS, events.ConsumerRecorder, 0)
	if err != nil {
		if ctx.Err() != nil {
			// Stopped before it started: a clean stop.
			return nil
		}
		return fmt.Errorf("recorder: %w", err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(1))
	if err != nil {
		return fmt.Errorf("recorder: consume: %w", err)
	}
	defer it.Stop()
	// work outlives ctx by the grace period so the event in hand is
	// finished; Drain lets a message already pulled be handled too.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	go func() {
		<-ctx.Done()
		it.Drain()
		t := time.NewTimer(d.Config.ShutdownGrace)
		defer t.Stop()
		select {
		case <-t.C:
			cancelWork()
		case <-work.Done():
		}
	}()

	r := &recorder{store: d.Store, log: d.Log}
	d.Log.Info("recorder: running")
	for {
		msg, err := it.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				d.Log.Info("recorder: stopped")
				return nil
			}
			if errors.Is(err, jetstream.ErrConsumerDeleted) {
				return fmt.Errorf("recorder: %w", err)
			}
			d.Log.Warn("recorder: next message", "error", err)
			continue
		}
		r.handle(work, msg)
	}
}

type recorder struct {
	store Store
	log   *slog.Logger
}

// handle applies one message and ends it with Ack, NakWithDelay or Term.
func (r *recorder) handle(ctx context.Context, msg jetstream.Msg) {
	log := r.log.With("subject", msg.Subject())
	md, err := msg.Metadata()
	if err != nil {
		log.Error("recorder: message without metadata", "error", err)
		_ = msg.NakWithDelay(stage.Backoff(1))
		return
	}
	seq := md.Sequence.Stream
	log = log.With("seq", seq)
	env, ev, err := events.Decode(msg.Data())
	if err != nil {
		log.Error("recorder: terminating undecodable message", "error", err)
		_ = msg.TermWithReason("undecodable: " + err.Error())
		return
	}
	log = log.With("operation_id", env.OperationID, "song_id", env.SongID, "event_id", env.ID, "type", env.Type)

	ctx, cancel := context.WithTimeout(ctx, applyTimeout)
	defer cancel()
	if err := r.apply(ctx, env, ev, seq, md.Timestamp, log); err != nil {
		delay := stage.Backoff(int(md.NumDelivered))
		log.Warn("recorder: event not applied, will retry", "error", err, "attempt", md.NumDelivered, "retry_in", delay)
		_ = msg.NakWithDelay(delay)
		return
	}
	if err := msg.Ack(); err != nil {
		// Redelivered later and skipped by sequence.
		log.Warn("recorder: ack", "error", err)
	}
}

// apply loads the records the event touches, applies it and stores what
// changed: the song first, then the operation (see Apply).
func (r *recorder) apply(ctx context.Context, env events.Envelope, ev events.Event, seq uint64, t time.Time, log *slog.Logger) error {
	_, err := r.applyChanged(ctx, env, ev, seq, t, log)
	return err
}

// applyChanged is apply that also reports whether a record changed.
func (r *recorder) applyChanged(ctx context.Context, env events.Envelope, ev events.Event, seq uint64, t time.Time, log *slog.Logger) (bool, error) {
	op, err := r.store.Operation(ctx, env.OperationID)
	if err != nil && !errors.Is(err, projection.ErrNotFound) {
		return false, fmt.Errorf("read operation: %w", err)
	}
	var song projection.Song
	songID := SongID(op, env, ev)
	if songID != "" {
		song, err = r.store.Song(ctx, songID)
		if err != nil && !errors.Is(err, projection.ErrNotFound) {
			return false, fmt.Errorf("read song %s: %w", songID, err)
		}
	}
	newOp, newSong := Apply(op, song, env, ev, seq, t)
	if songID != "" && newSong.LastSeq != song.LastSeq {
		if err := r.store.PutSong(ctx, newSong); err != nil {
			return false, fmt.Errorf("store song %s: %w", songID, err)
		}
	}
	if newOp.LastSeq == op.LastSeq {
		log.Debug("recorder: already applied")
		return newSong.LastSeq != song.LastSeq, nil
	}
	if err := r.store.PutOperation(ctx, newOp); err != nil {
		return false, fmt.Errorf("store operation: %w", err)
	}
	log.Debug("recorder: applied", "status", newOp.Status, "stage", newOp.Stage)
	return true, nil
}
