package fetcher

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/media/sourcestream"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// announceTimeout bounds the writes that begin and end a run of the source
// on BUTAKERO_SOURCES and its announcement: a stream slow to answer costs
// the encode its head start, never the download.
const announceTimeout = 5 * time.Second

// Arrivals publishes a download as it arrives (events.AudioArriving and
// its run on BUTAKERO_SOURCES), so the encoder can begin before the
// download ends. A nil *Arrivals publishes nothing.
type Arrivals struct {
	JS jetstream.JetStream
	// Publish stores the announcement in the event stream.
	Publish func(ctx context.Context, env events.Envelope) error
}

// arrival is one run of a download's source.
type arrival struct {
	w   *sourcestream.Writer
	log *slog.Logger
}

// begin starts a run of operation opID's source and announces it; size is
// the source's size if known (else 0 or less). It returns nil when there
// is nothing to publish to, or the run could not begin: the download then
// goes on alone.
func (a *Arrivals) begin(ctx context.Context, opID string, song events.Song, ext string, size int64, log *slog.Logger) *arrival {
	if a == nil || a.JS == nil || a.Publish == nil {
		return nil
	}
	run := nuid.Next()
	ctx, cancel := context.WithTimeout(ctx, announceTimeout)
	defer cancel()
	w, err := sourcestream.Begin(ctx, a.JS, opID, run)
	if err != nil {
		log.Warn("fetcher: the source cannot be published as it arrives; the encode waits for the download", "error", err)
		return nil
	}
	env, err := events.NewWithID(events.ArrivingID(opID, run), opID, song.ID, events.AudioArriving{Song: song, Run: run, Ext: ext, Size: max(size, 0)})
	if err == nil {
		err = a.Publish(ctx, env)
	}
	if err != nil {
		log.Warn("fetcher: the download could not be announced; the encode waits for it", "error", err)
		return nil
	}
	return &arrival{w: w, log: log}
}

// tee is r, whose bytes also go out on the run as they are read.
func (ar *arrival) tee(r io.Reader) io.Reader {
	if ar == nil {
		return r
	}
	return io.TeeReader(r, ar.w)
}

// run is the run's id, "" without one.
func (ar *arrival) run() string {
	if ar == nil {
		return ""
	}
	return ar.w.Run()
}

// end ends the run: whole (size bytes staged) when err is nil, else
// failed, so that an encode begun on it stops.
func (ar *arrival) end(size int64, err error) {
	if ar == nil {
		return
	}
	var perr error
	if err == nil {
		perr = ar.w.Whole(size)
	} else {
		f := events.AsFailure(err)
		code, msg := string(f.Code), f.Message
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			code, msg = string(events.CodeTimeout), "the download stopped before the end"
		}
		perr = ar.w.Failed(code, msg)
	}
	if perr != nil {
		ar.log.Warn("fetcher: the source's run was not all published; the encode uses the staged file", "error", perr)
	}
}
