package encoder

import (
	"context"
	"errors"
	"io"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/blob"
	"github.com/butakero/butakero/platform/runtime/stage"
	"github.com/butakero/butakero/services/encoder/internal/transcode"
)

// LoudnessStage names the loudness worker in logs and metrics. It never
// fails an operation, so no operation.failed names it.
const LoudnessStage = "loudness"

// LoudnessConcurrency is how many stored DCAs one process measures at
// once. A measure is two ffmpeg (one decodes, one runs ebur128 with the
// true peak), about a core each, off the path to any operation's end: the
// encodes keep the rest of the CPUs.
const LoudnessConcurrency = 1

// measurer answers loudness.measured for every dca.encoded whose loudness
// is pending (events.DCAEncoded.LoudnessPending): a passthrough (its
// packets are copied, never decoded, so the copy is not held back by the
// measure) and a dca.encoded rebuilt from a stored DCA (describe), whose
// streamed header has none. A transcode is measured in its own run, and a
// dca.encoded of an encoder before this one says nothing pending: neither
// is measured again. It takes
// dca.encoded from its own consumer (events.ConsumerEncoderLoudness), once
// the DCA is stored, and measures the stored packets as a player decodes
// them (transcode.MeasureDCA): what a bot plays.
//
// A DCA that is gone, or that ffmpeg cannot measure, is logged and left
// without loudness; a store that does not answer is tried again, without
// bound (the consumer has none), since the operation has ended and
// nothing waits for the measure but the catalog.
type measurer struct {
	blobs Blobs
}

func (m *measurer) handle(ctx context.Context, d stage.Delivery) ([]stage.Emit, error) {
	enc, ok := d.Event.(events.DCAEncoded)
	if !ok || !enc.LoudnessPending {
		return nil, nil
	}
	songID := d.Envelope.SongID
	if events.ValidSongID(songID) != nil {
		d.Log.Warn("encoder: a dca.encoded names no valid song id; its loudness is not measured")
		return nil, nil
	}
	key := blob.DCAKey(songID)
	r, _, err := m.blobs.Open(ctx, key)
	if errors.Is(err, blob.ErrNotFound) {
		d.Log.Warn("encoder: the DCA to measure is no longer stored", "dca_key", key)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer r.Close()
	src := &readTracker{r: r}
	l, err := transcode.MeasureDCA(ctx, src)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if src.err != nil {
			return nil, src.err // the store broke off: tried again
		}
		d.Log.Warn("encoder: the stored DCA's loudness could not be measured", "dca_key", key, "error", err)
		return nil, nil
	}
	d.Log.Info("encoder: measured the stored DCA", "dca_key", key, "loudness_lufs", value(l.LUFS), "true_peak_db", value(l.TruePeakDB))
	return []stage.Emit{{SongID: songID, Event: events.LoudnessMeasured{Key: key, LoudnessLUFS: l.LUFS, TruePeakDB: l.TruePeakDB}}}, nil
}

// readTracker keeps the first error other than io.EOF its reader returns.
type readTracker struct {
	r   io.Reader
	err error
}

func (t *readTracker) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF && t.err == nil {
		t.err = err
	}
	return n, err
}

// value is what a log shows of a measure: the number, or "none".
func value(v *float64) any {
	if v == nil {
		return "none"
	}
	return *v
}
