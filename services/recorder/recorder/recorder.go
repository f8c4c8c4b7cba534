// Package recorder projects the event stream into the operation and song
// projections (platform/projection): the state the gateway serves.
//
// It reads every event of the stream through the recorder's lanes
// (events.EnsureLanes: RECORDER_PARTITIONS durable consumers, each holding
// the events of the operations whose ids hash to it, one at a time in
// stream order, shared by all recorder processes), on the stage runtime
// every consumer runs on (platform/runtime/stage), and never skips one:
//   - an event is applied (see projection.Apply) and then acked;
//   - a store error Naks it with a backoff delay, and it is retried forever
//     (the consumer has no MaxDeliver, the worker no MaxAttempts), holding
//     back the events of its lane after it;
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
	"strconv"
	"sync"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/projection"
	"github.com/butakero/butakero/platform/runtime/config"
	"github.com/butakero/butakero/platform/runtime/metrics"
	"github.com/butakero/butakero/platform/runtime/stage"
	"github.com/nats-io/nats.go/jetstream"
)

// StageName names the recorder in the stage runtime's logs and metrics.
const StageName = "record"

// applyTimeout bounds the store calls for one event, below events.AckWait
// so a slow store does not get the event delivered twice at once.
const applyTimeout = 20 * time.Second

// Store holds the projections. Reads of a missing record return
// projection.ErrNotFound. The writes are conditional on the record the
// recorder built on: each stores its record only if the stored one is
// still prev (the zero record: none is stored) and reports whether it did.
// *kvstore.Store (by revision) and *dynamostore.Store (one conditional
// PutItem) satisfy it.
type Store interface {
	Operation(ctx context.Context, id string) (projection.Operation, error)
	PutOperationIf(ctx context.Context, op, prev projection.Operation) (bool, error)
	Song(ctx context.Context, id string) (projection.Song, error)
	PutSongIf(ctx context.Context, song, prev projection.Song) (bool, error)
}

var _ Store = projection.Store(nil)

// Deps is what Run needs.
type Deps struct {
	// JS holds the event stream (which must exist) and the lanes.
	JS    jetstream.JetStream
	Store Store
	// Config gives ShutdownGrace, RecorderPartitions (the lanes) and
	// StreamReplicas (the lanes stream's).
	Config config.Config
	// Metrics, when set, records the projection lag and exports each
	// lane's pending count.
	Metrics *metrics.Metrics
	Log     *slog.Logger
}

// Run projects events until ctx is cancelled. It then stops taking events,
// finishes those in hand (within Config.ShutdownGrace; past it they are
// left unacked for redelivery) and returns nil.
//
// Events go through Config.RecorderPartitions lanes (events.EnsureLanes):
// the events of one operation are in one lane, in stream order, and each
// lane hands out one event at a time, so an operation's events are applied
// one after another in order while different lanes apply at once. Several
// processes may run it: each pulls from every lane, and the server hands
// each event of a lane to one of them only once the one before is acked.
func Run(ctx context.Context, d Deps) error {
	if d.JS == nil || d.Store == nil || d.Log == nil {
		return errors.New("recorder: Deps needs JS, Store and Log")
	}
	n := max(d.Config.RecorderPartitions, 1)
	if n > events.MaxPartitions {
		return fmt.Errorf("recorder: %d lanes: at most %d", n, events.MaxPartitions)
	}
	// Creating the lanes (a stream and n consumers, each a raft group in
	// a cluster) may meet a connection cut or a leader election: it is
	// tried again until it succeeds, as the stages wait for JetStream.
	var lanes []jetstream.Consumer
	for attempt := 1; ; attempt++ {
		var err error
		lanes, err = events.EnsureLanes(ctx, d.JS, n, d.Config.StreamReplicas)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			// Stopped before it started: a clean stop.
			return nil
		}
		d.Log.Warn("recorder: the lanes are not ready; trying again", "error", err, "attempt", attempt)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(stage.Backoff(attempt)):
		}
	}
	d.Metrics.WatchConsumers(d.JS, events.LanesStreamName, events.LaneConsumers(n)...)
	r := newRecorder(d.Store, d.Log, d.Metrics)
	d.Log.Info("recorder: running", "lanes", n)
	errs := make(chan error, n)
	for i, cons := range lanes {
		lane := strconv.Itoa(i)
		w := &stage.Worker{
			Stage:    StageName,
			JS:       d.JS,
			Consumer: cons,
			Handle: func(ctx context.Context, dl stage.Delivery) ([]stage.Emit, error) {
				return r.handle(ctx, lane, dl)
			},
			Log:         d.Log.With("lane", i),
			Timeout:     applyTimeout,
			Concurrency: 1,
			// A lane hands out one event at a time (MaxAckPending 1):
			// its next event comes as soon as the ack reaches the
			// server.
			HeldPull: true,
			Grace:    d.Config.ShutdownGrace,
		}
		go func() { errs <- w.Run(ctx) }()
	}
	var all []error
	for range n {
		if err := <-errs; err != nil {
			all = append(all, err)
		}
	}
	d.Log.Info("recorder: stopped")
	return errors.Join(all...)
}

type recorder struct {
	store   Store
	log     *slog.Logger
	metrics *recorderMetrics

	// The records this process last wrote or read, shared by its lanes:
	// applying an event to a record held here costs one conditional write
	// and no read. A record another process changed meanwhile (two
	// processes share the lanes, and the songs) fails its write's
	// condition, and is read again.
	ops   held[projection.Operation]
	songs held[projection.Song]
}

// maxHeld bounds the records held of each kind; past it they are all let
// go, and read again from the store as their operations go on.
const maxHeld = 16384

// held is the records of one kind a recorder last wrote or read, by id,
// at most maxHeld of them. Its zero value holds none; it is safe for
// concurrent use.
type held[R any] struct {
	mu sync.Mutex
	m  map[string]R
}

// get returns the record held with id, if any.
func (h *held[R]) get(id string) (R, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	rec, ok := h.m[id]
	return rec, ok
}

// getOrRead returns the record held with id, or else reads it with read
// and holds it. A record the store does not have (projection.ErrNotFound)
// is the zero record, and is not held.
func (h *held[R]) getOrRead(ctx context.Context, id string, read func(context.Context, string) (R, error)) (R, error) {
	if rec, ok := h.get(id); ok {
		return rec, nil
	}
	rec, err := read(ctx, id)
	if errors.Is(err, projection.ErrNotFound) {
		var none R
		return none, nil
	}
	if err != nil {
		return rec, err
	}
	h.hold(id, rec)
	return rec, nil
}

// hold keeps rec as the record with id, letting every other go first when
// maxHeld are held.
func (h *held[R]) hold(id string, rec R) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil {
		h.m = map[string]R{}
	}
	if len(h.m) >= maxHeld {
		clear(h.m)
	}
	h.m[id] = rec
}

// forget lets the record with id go: it is read again when next asked for.
func (h *held[R]) forget(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.m, id)
}

// maxConflicts bounds the conditional writes of one event that lose to
// another writer before the event is given back for a later retry.
const maxConflicts = 64

func newRecorder(store Store, log *slog.Logger, m *metrics.Metrics) *recorder {
	return &recorder{store: store, log: log, metrics: newRecorderMetrics(m)}
}

// operation returns the operation with id, held or read. With assumeNew
// an operation not held is taken to be new (the zero record) without a
// read: the write built on it is conditional on no record being stored,
// and fails if one is.
func (r *recorder) operation(ctx context.Context, id string, assumeNew bool) (projection.Operation, error) {
	if assumeNew {
		op, _ := r.ops.get(id)
		return op, nil
	}
	return r.ops.getOrRead(ctx, id, r.store.Operation)
}

// song returns the song with id, held or read.
func (r *recorder) song(ctx context.Context, id string) (projection.Song, error) {
	return r.songs.getOrRead(ctx, id, r.store.Song)
}

// Applier applies events to the projections as the recorder's lanes do
// (the same records held, the same conditional writes, the same retries
// of a write lost to another writer), without a stream to take them
// from: Replay applies through one, and the bench sets the store's work
// alone against the lanes draining the same events. It is safe for
// concurrent use by events of different operations; the events of one
// operation must come one at a time, in stream order.
type Applier struct{ r *recorder }

// NewApplier returns an Applier writing to store.
func NewApplier(store Store, log *slog.Logger) *Applier {
	return &Applier{r: newRecorder(store, log, nil)}
}

// Apply applies ev (in env), the stream's message seq stored at t, and
// reports whether a record changed; an event applied already changes
// nothing.
func (a *Applier) Apply(ctx context.Context, env events.Envelope, ev events.Event, seq uint64, t time.Time) (bool, error) {
	return a.r.applyChanged(ctx, env, ev, seq, t, a.r.log)
}

// forget lets the records of operation opID and song songID go, after a
// write lost to another writer: both are read again.
func (r *recorder) forget(opID, songID string) {
	r.ops.forget(opID)
	r.songs.forget(songID)
}

// handle applies one event. The runtime acks it once applied and retries
// it, forever, when a store fails.
func (r *recorder) handle(ctx context.Context, lane string, d stage.Delivery) ([]stage.Emit, error) {
	log := d.Log.With("seq", d.Seq, "type", d.Envelope.Type)
	if _, err := r.applyChanged(ctx, d.Envelope, d.Event, d.Seq, d.Time, log); err != nil {
		return nil, fmt.Errorf("recorder: apply: %w", err)
	}
	if !d.Envelope.Time.IsZero() {
		r.metrics.ObserveProjectionLag(lane, time.Since(d.Envelope.Time))
	}
	return nil, nil
}

// applyChanged applies the event to the records it touches and stores
// what changed, the song first, then the operation (see projection.Apply),
// each with one conditional write on the record it was built from. A
// write that loses to another writer reads the records again and applies
// the event to them. It reports whether a record changed.
//
// The records this process holds are not read again, and neither is the
// operation of a song.requested (an operation's first event) nor the song
// of an event that does not change songs (projection.TouchesSong): in the
// usual case an event costs one write per record it changes and no read.
func (r *recorder) applyChanged(ctx context.Context, env events.Envelope, ev events.Event, seq uint64, t time.Time, log *slog.Logger) (bool, error) {
	songChanged := false
	_, first := ev.(events.SongRequested)
	for attempt := range maxConflicts {
		op, err := r.operation(ctx, env.OperationID, first && attempt == 0)
		if err != nil {
			return false, fmt.Errorf("read operation: %w", err)
		}
		var song projection.Song
		songID := projection.SongID(op, env, ev)
		if songID != "" && projection.TouchesSong(ev) {
			song, err = r.song(ctx, songID)
			if err != nil {
				return false, fmt.Errorf("read song %s: %w", songID, err)
			}
		}
		newOp, newSong := projection.Apply(op, song, env, ev, seq, t)
		if songID != "" && !newSong.Equal(song) {
			ok, err := r.store.PutSongIf(ctx, newSong, song)
			if err != nil {
				return false, fmt.Errorf("store song %s: %w", songID, err)
			}
			if !ok {
				r.forget(env.OperationID, songID)
				continue
			}
			r.songs.hold(songID, newSong)
			songChanged = true
		}
		if newOp.LastSeq == op.LastSeq {
			log.Debug("recorder: already applied")
			return songChanged, nil
		}
		ok, err := r.store.PutOperationIf(ctx, newOp, op)
		if err != nil {
			return false, fmt.Errorf("store operation: %w", err)
		}
		if !ok {
			r.forget(env.OperationID, songID)
			continue
		}
		r.ops.hold(env.OperationID, newOp)
		log.Debug("recorder: applied", "status", newOp.Status, "stage", newOp.Stage)
		return true, nil
	}
	return false, fmt.Errorf("the records of operation %s changed under %d writes in a row", env.OperationID, maxConflicts)
}
