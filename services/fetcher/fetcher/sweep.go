package fetcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/blob"
	"github.com/nats-io/nats.go/jetstream"
)

// StagingBlobs is what the sweep needs of the blob store (*objstore.Store,
// *s3blob.Store).
type StagingBlobs interface {
	// List returns the Info of every blob whose key starts with prefix.
	List(ctx context.Context, prefix string) ([]blob.Info, error)
	// Delete removes blob key; a missing key is not an error.
	Delete(ctx context.Context, key string) error
}

var _ StagingBlobs = blob.Store(nil)

// Sweeper deletes staged downloads left behind. The encoder deletes a
// song's staged source once its operation ends, whichever way; what a
// crash kept it from deleting (or a fetch stage that failed after storing
// it) is found here. A staged blob is deleted once it is older than MaxAge
// and its operation is over: its history ends with upload.done or
// operation.failed, or the stream holds none of it. So the sweep never
// takes the source of an operation still in progress, however long it
// waits in the encoder's backlog.
type Sweeper struct {
	Blobs StagingBlobs
	// Stream is the event stream, where an operation's end is read.
	Stream jetstream.Stream
	MaxAge time.Duration
	Log    *slog.Logger
}

// sweepEvery is how often Run sweeps: a quarter of MaxAge, within
// [1 min, 15 min].
func (s *Sweeper) sweepEvery() time.Duration {
	return min(max(s.MaxAge/4, time.Minute), 15*time.Minute)
}

// Run sweeps at start, then periodically until ctx ends. Several
// processes may run it: deleting twice is harmless.
func (s *Sweeper) Run(ctx context.Context) {
	t := time.NewTicker(s.sweepEvery())
	defer t.Stop()
	for {
		if n, err := s.Sweep(ctx, time.Now()); err != nil && ctx.Err() == nil {
			s.Log.Warn("fetcher: sweep of staged downloads", "error", err, "deleted", n)
		} else if n > 0 {
			s.Log.Info("fetcher: swept staged downloads left behind", "deleted", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sweep deletes, once, the staged downloads older than MaxAge at now whose
// operations are over, and returns how many it deleted.
func (s *Sweeper) Sweep(ctx context.Context, now time.Time) (int, error) {
	staged, err := s.Blobs.List(ctx, blob.StagingPrefix)
	if err != nil {
		return 0, err
	}
	deleted := 0
	var errs []error
	for _, info := range staged {
		if now.Sub(info.Modified) < s.MaxAge {
			continue
		}
		over, err := s.over(ctx, blob.StagedOperation(info.Key))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !over {
			continue
		}
		if err := s.Blobs.Delete(ctx, info.Key); err != nil {
			errs = append(errs, err)
			continue
		}
		deleted++
	}
	return deleted, errors.Join(errs...)
}

// over reports whether operation opID has ended: the stream holds one of
// its final events (events.FinalKinds; the last event may come after it,
// as a passthrough's loudness.measured does), or none of it (a key naming
// no operation, or one trimmed from the stream).
func (s *Sweeper) over(ctx context.Context, opID string) (bool, error) {
	if events.ValidOperationID(opID) != nil {
		return true, nil
	}
	last, err := s.Stream.GetLastMsgForSubject(ctx, events.OperationSubjects(opID))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("fetcher: history of %s: %w", opID, err)
	}
	if kind, _, _ := events.KindOf(last.Subject); events.IsFinal(kind) {
		return true, nil
	}
	for _, k := range events.FinalKinds {
		_, err := s.Stream.GetLastMsgForSubject(ctx, events.Subject(k, opID))
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, jetstream.ErrMsgNotFound) {
			return false, fmt.Errorf("fetcher: history of %s: %w", opID, err)
		}
	}
	return false, nil
}
