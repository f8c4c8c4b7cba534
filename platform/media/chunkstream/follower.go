package chunkstream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrIdle is Follower.Next's answer when no message came in the time it
// was given.
var ErrIdle = errors.New("chunkstream: no chunk for now")

// Polling at the live edge: a follower that has read every chunk there is
// asks again after pollMin, then less often, up to pollMax.
const (
	pollMin = 20 * time.Millisecond
	pollMax = 100 * time.Millisecond
	// getTimeout bounds one read.
	getTimeout = 5 * time.Second
)

// Follower reads the messages of one subject, every run, from the oldest
// the stream holds, one message per request (the stream's "next message
// on this subject from this sequence"), so that it holds one chunk at most
// whatever the run's length and however many followers there are, and
// needs no consumer on the server: a connection lost and found again
// loses it nothing. It is not safe for concurrent use.
type Follower struct {
	stream  jetstream.Stream
	subject string
	next    uint64 // stream sequence to look from
	pause   time.Duration
}

// Follow starts reading subject of stream stream from its start.
func Follow(ctx context.Context, js jetstream.JetStream, stream, subject string) (*Follower, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("chunkstream: follow %s: %w", subject, err)
	}
	return &Follower{stream: s, subject: subject, next: 1, pause: pollMin}, nil
}

// Next returns the next message, waiting up to wait for it (ErrIdle), or
// ctx's error once ctx ends. A message that is not a run's (its headers
// are not) is an error; the next call reads past it.
func (f *Follower) Next(ctx context.Context, wait time.Duration) (Chunk, error) {
	deadline := time.Now().Add(wait)
	for {
		gctx, cancel := context.WithTimeout(ctx, getTimeout)
		msg, err := f.stream.GetMsg(gctx, f.next, jetstream.WithGetMsgSubject(f.subject))
		cancel()
		switch {
		case err == nil:
			f.next = msg.Sequence + 1
			f.pause = pollMin
			return chunkOf(msg)
		case ctx.Err() != nil:
			return Chunk{}, ctx.Err()
		case !errors.Is(err, jetstream.ErrMsgNotFound):
			return Chunk{}, fmt.Errorf("chunkstream: read %s: %w", f.subject, err)
		}
		left := time.Until(deadline)
		if left <= 0 {
			return Chunk{}, ErrIdle
		}
		select {
		case <-ctx.Done():
			return Chunk{}, ctx.Err()
		case <-time.After(min(f.pause, left)):
		}
		f.pause = min(2*f.pause, pollMax)
	}
}

// Close ends the follow; it holds nothing on the server.
func (f *Follower) Close() {}
