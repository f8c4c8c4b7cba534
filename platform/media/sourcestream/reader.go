package sourcestream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

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

// Polling at the live edge, as framestream.Follower does.
const (
	pollMin    = 20 * time.Millisecond
	pollMax    = 100 * time.Millisecond
	getTimeout = 5 * time.Second
)

// Reader reads one run of an operation's source from its first byte, one
// message per request (the stream's "next message on this subject"), so it
// holds one chunk at most and needs no consumer. Read returns io.EOF once
// the run ended "whole" with every byte read, and an error wrapping
// ErrRunGone, ErrStalled or ErrRunFailed when the run cannot be read to its
// end. It is not safe for concurrent use.
type Reader struct {
	ctx     context.Context
	stream  jetstream.Stream
	subject string
	run     string
	idle    time.Duration

	next  uint64 // stream sequence to look from
	off   int64  // bytes of the run read
	buf   []byte
	err   error
	pause time.Duration
}

// NewReader reads run run of operation opID's source until ctx ends; idle
// is how long it waits for a chunk before it gives up (ErrStalled).
func NewReader(ctx context.Context, js jetstream.JetStream, opID, run string, idle time.Duration) (*Reader, error) {
	s, err := js.Stream(ctx, StreamName)
	if err != nil {
		return nil, fmt.Errorf("sourcestream: read %s: %w", Subject(opID), err)
	}
	return &Reader{ctx: ctx, stream: s, subject: Subject(opID), run: run, idle: idle, next: 1, pause: pollMin}, nil
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
	deadline := time.Now().Add(r.idle)
	for {
		gctx, cancel := context.WithTimeout(r.ctx, getTimeout)
		msg, err := r.stream.GetMsg(gctx, r.next, jetstream.WithGetMsgSubject(r.subject))
		cancel()
		switch {
		case err == nil:
			r.next = msg.Sequence + 1
			r.pause = pollMin
			c, err := chunkOf(msg)
			if err != nil {
				return err
			}
			if c.Run != r.run || c.Offset != r.off {
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
		case r.ctx.Err() != nil:
			return r.ctx.Err()
		case !errors.Is(err, jetstream.ErrMsgNotFound):
			return fmt.Errorf("sourcestream: read %s: %w", r.subject, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: nothing for %s", ErrStalled, r.idle)
		}
		select {
		case <-r.ctx.Done():
			return r.ctx.Err()
		case <-time.After(r.pause):
		}
		r.pause = min(2*r.pause, pollMax)
	}
}
