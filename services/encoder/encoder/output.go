package encoder

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/blob"
	"github.com/butakero/butakero/platform/media/framestream"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// liveTimeout bounds the frame stream's requests made once the encode is
// over (its end message, the purge), whose context may have ended.
const liveTimeout = 10 * time.Second

// output is where one encode's DCA goes as it is made (transcode.Output):
// into the blob store, through a pipe that Put reads (the upload streams:
// nothing of the DCA is held), and onto the song's subject of
// BUTAKERO_FRAMES as one run (framestream.Writer), for the clients that
// play it before it is stored.
//
// A DCA begun and then discarded (a passthrough that had to transcode) is
// failed on both: Put leaves nothing, the run ends "failed", and the next
// Begin starts a new run. commit waits for the stored DCA, then ends the
// run "stored" and purges the song's subject: from then on readers read
// the stored DCA, whose bytes are the run's.
type output struct {
	ctx    context.Context
	blobs  Blobs
	js     jetstream.JetStream
	key    string
	songID string
	meta   map[string]string
	log    *slog.Logger

	pw   *io.PipeWriter
	done chan put
	live *framestream.Writer
	// begun is set once a DCA was begun: its first frames may be out.
	begun bool
}

type put struct {
	info blob.Info
	err  error
}

// Begin starts a DCA: a new upload and a new run. The song's subject is
// purged first, so that a run an earlier attempt left (failed, or cut by
// a crash) is not what late readers find.
func (o *output) Begin() (io.Writer, string, error) {
	if o.pw != nil {
		return nil, "", errors.New("encoder: a DCA was begun twice")
	}
	run := nuid.Next()
	o.begun = true
	if o.js != nil {
		if err := o.purge(); err != nil {
			o.log.Warn("encoder: purge the song's frames before a new run", "error", err)
		}
		o.live = framestream.NewWriter(o.js, o.songID, run)
	}
	pr, pw := io.Pipe()
	o.pw, o.done = pw, make(chan put, 1)
	go func() {
		info, err := o.blobs.Put(o.ctx, o.key, ContentType, o.meta, pr)
		// Unblock the encoder if Put gave up before the end.
		pr.CloseWithError(errors.Join(err, io.ErrClosedPipe))
		o.done <- put{info, err}
	}()
	if o.live == nil {
		return pw, run, nil
	}
	// The frames go out before the upload takes them: a slow store does
	// not hold the first frames back.
	return io.MultiWriter(o.live, pw), run, nil
}

// Discard fails the DCA begun last; the next Begin starts another.
func (o *output) Discard(reason error) {
	_ = o.fail(events.Wrap(events.CodeInternal, reason, "the encode started again: the source cannot be copied"))
	o.pw, o.live = nil, nil
}

// fail ends the DCA begun, if any, with err: the upload is abandoned and
// the run ends "failed". It returns Put's own error, if Put failed first.
func (o *output) fail(err error) error {
	if o.pw == nil {
		return nil
	}
	o.pw.CloseWithError(err)
	p := <-o.done
	o.ended(err)
	return p.err
}

// ended ends the run with err's failure, once.
func (o *output) ended(err error) {
	if o.live == nil {
		return
	}
	live := o.live
	o.live = nil
	f := events.AsFailure(err)
	code, msg := string(f.Code), f.Message
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		code, msg = string(events.CodeTimeout), "the encode stopped before the end"
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(o.ctx), liveTimeout)
	defer cancel()
	if err := live.Failed(ctx, code, msg); err != nil {
		o.log.Warn("encoder: the song's frames were not all published", "error", err)
	}
}

// commit completes the upload of a DCA of size bytes and ends the run.
func (o *output) commit(size int64) (blob.Info, error) {
	if o.pw == nil {
		return blob.Info{}, events.Fail(events.CodeInternal, "the encode made no DCA")
	}
	o.pw.Close()
	p := <-o.done
	if p.err != nil {
		err := events.Wrap(events.CodeInternal, p.err, "the DCA could not be stored")
		o.ended(err)
		return blob.Info{}, err
	}
	if p.info.Size != size {
		err := events.Fail(events.CodeInternal, "the DCA was stored with %d bytes, %d written", p.info.Size, size)
		o.ended(err)
		return blob.Info{}, err
	}
	if o.live != nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(o.ctx), liveTimeout)
		defer cancel()
		if err := o.live.Stored(ctx, size); err != nil {
			o.log.Warn("encoder: the song's frames were not all published", "error", err)
		}
		o.live = nil
		if err := o.purge(); err != nil {
			o.log.Warn("encoder: purge the song's frames once stored", "error", err)
		}
	}
	return p.info, nil
}

func (o *output) purge() error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(o.ctx), liveTimeout)
	defer cancel()
	return framestream.Purge(ctx, o.js, o.songID)
}
