package sourcestream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/butakero/butakero/platform/media/chunkstream"
	"github.com/nats-io/nats.go/jetstream"
)

// Errors of a Reader that cannot read its run to its end.
var (
	// ErrRunGone: the run's chunks are gone (a new run purged them) or
	// another run's came in their place.
	ErrRunGone = errors.New("sourcestream: the run is gone")
	// ErrStalled: no chunk came for the Reader's idle time: the fetcher
	// died or lost the stream.
	ErrStalled = errors.New("sourcestream: the run stalled")
	// ErrRunFailed: the download failed.
	ErrRunFailed = errors.New("sourcestream: the download failed")
)

// Reader reads one run of an operation's source from its first byte
// (chunkstream.Follower: one message per request, so it holds one chunk at
// most and needs no consumer). Read returns io.EOF once the run ended
// "whole" with every byte read, and an error wrapping ErrRunGone,
// ErrStalled or ErrRunFailed when the run cannot be read to its end. It is
// not safe for concurrent use.
type Reader struct {
	ctx     context.Context
	f       *chunkstream.Follower
	subject string
	run     string
	idle    time.Duration

	off int64 // bytes of the run read
	buf []byte
	err error
}

// NewReader reads run run of operation opID's source until ctx ends; idle
// is how long it waits for a chunk before it gives up (ErrStalled).
func NewReader(ctx context.Context, js jetstream.JetStream, opID, run string, idle time.Duration) (*Reader, error) {
	f, err := chunkstream.Follow(ctx, js, StreamName, Subject(opID))
	if err != nil {
		return nil, err
	}
	return &Reader{ctx: ctx, f: f, subject: Subject(opID), run: run, idle: idle}, nil
}

// Read reads the run's next bytes, waiting for them at the live edge.
func (r *Reader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		r.err = r.fetch()
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// Offset is how many bytes of the run were read.
func (r *Reader) Offset() int64 { return r.off - int64(len(r.buf)) }

// fetch gets the next message into buf, or returns why it cannot.
func (r *Reader) fetch() error {
	c, err := r.f.Next(r.ctx, r.idle)
	switch {
	case errors.Is(err, chunkstream.ErrIdle):
		return fmt.Errorf("%w: nothing for %s", ErrStalled, r.idle)
	case err != nil:
		return err
	case c.Run != r.run || c.Offset != r.off:
		return fmt.Errorf("%w: %s holds run %s at %d, not %s at %d", ErrRunGone, r.subject, c.Run, c.Offset, r.run, r.off)
	}
	switch c.End {
	case EndWhole:
		if c.Size != r.off {
			return fmt.Errorf("%w: the run says %d bytes, %d came", ErrRunGone, c.Size, r.off)
		}
		return io.EOF
	case "":
		r.buf = c.Data
		r.off += int64(len(c.Data))
		return nil
	default:
		return fmt.Errorf("%w: %s", ErrRunFailed, c.Message)
	}
}
