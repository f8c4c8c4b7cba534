// Package recorder projects the event stream into the operation and song
// projections (platform/projection): the state the gateway serves.
//
// It reads every event of the stream through the durable consumer
// events.ConsumerRecorder, one at a time in stream order (MaxAckPending 1,
// shared by all recorder processes), on the stage runtime every consumer
// runs on (platform/runtime/stage), and never skips one:
//   - an event is applied (see projection.Apply) and then acked;
//   - a store error Naks it with a backoff delay, and it is retried forever
//     (the consumer has no MaxDeliver, the worker no MaxAttempts), holding
//     back the events after it;
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
	"github.com/butakero/butakero/platform/projection"
	"github.com/butakero/butakero/platform/runtime/config"
	"github.com/butakero/butakero/platform/runtime/stage"
	"github.com/butakero/butakero/platform/store/kvstore"
	"github.com/nats-io/nats.go/jetstream"
)

// StageName names the recorder in the stage runtime's logs and metrics.
const StageName = "record"

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
	r := &recorder{store: d.Store, log: d.Log}
	w := &stage.Worker{
		Stage:       StageName,
		JS:          d.JS,
		Consumer:    cons,
		Handle:      r.handle,
		Log:         d.Log,
		Timeout:     applyTimeout,
		Concurrency: 1,
		Grace:       d.Config.ShutdownGrace,
	}
	d.Log.Info("recorder: running")
	err = w.Run(ctx)
	d.Log.Info("recorder: stopped")
	return err
}

type recorder struct {
	store Store
	log   *slog.Logger
}

// handle applies one event. The runtime acks it once applied and retries
// it, forever, when a store fails.
func (r *recorder) handle(ctx context.Context, d stage.Delivery) ([]stage.Emit, error) {
	log := d.Log.With("seq", d.Seq, "type", d.Envelope.Type)
	if _, err := r.applyChanged(ctx, d.Envelope, d.Event, d.Seq, d.Time, log); err != nil {
		return nil, fmt.Errorf("recorder: apply: %w", err)
	}
	return nil, nil
}

// applyChanged loads the records the event touches, applies it and stores
// what changed: the song first, then the operation (see
// projection.Apply). It reports whether a record changed.
func (r *recorder) applyChanged(ctx context.Context, env events.Envelope, ev events.Event, seq uint64, t time.Time, log *slog.Logger) (bool, error) {
	op, err := r.store.Operation(ctx, env.OperationID)
	if err != nil && !errors.Is(err, projection.ErrNotFound) {
		return false, fmt.Errorf("read operation: %w", err)
	}
	var song projection.Song
	songID := projection.SongID(op, env, ev)
	if songID != "" {
		song, err = r.store.Song(ctx, songID)
		if err != nil && !errors.Is(err, projection.ErrNotFound) {
			return false, fmt.Errorf("read song %s: %w", songID, err)
		}
	}
	newOp, newSong := projection.Apply(op, song, env, ev, seq, t)
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
