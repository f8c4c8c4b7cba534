package framestream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrIdle is Follower.Next's answer when no message came in the time it
// was given.
var ErrIdle = errors.New("framestream: no chunk for now")

// pullBytes bounds what one follower's client buffers: a few chunks, so
// that memory does not grow with the number of followers or the song's
// length.
const pullBytes = 64 << 10

// Follower reads the messages of one song's subject, every run, from the
// oldest the stream holds, through a JetStream ordered consumer (in order,
// without gaps across reconnections). It is not safe for concurrent use.
type Follower struct {
	cons jetstream.Consumer
	it   jetstream.MessagesContext
}

// Follow starts reading song songID's subject from its start.
func Follow(ctx context.Context, js jetstream.JetStream, songID string) (*Follower, error) {
	cons, err := js.OrderedConsumer(ctx, StreamName, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{Subject(songID)},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		NamePrefix:     "frames-follower",
	})
	if err != nil {
		return nil, fmt.Errorf("framestream: follow %s: %w", Subject(songID), err)
	}
	it, err := cons.Messages(jetstream.PullMaxBytes(pullBytes))
	if err != nil {
		return nil, fmt.Errorf("framestream: follow %s: %w", Subject(songID), err)
	}
	return &Follower{cons: cons, it: it}, nil
}

// Next returns the next message, waiting up to wait for it (ErrIdle), or
// ctx's error once ctx ends.
func (f *Follower) Next(ctx context.Context, wait time.Duration) (Chunk, error) {
	nctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	msg, err := f.it.Next(jetstream.NextContext(nctx))
	if err != nil {
		if ctx.Err() != nil {
			return Chunk{}, ctx.Err()
		}
		if nctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
			return Chunk{}, ErrIdle
		}
		return Chunk{}, fmt.Errorf("framestream: %w", err)
	}
	return chunkOf(msg)
}

// Close stops the consumer.
func (f *Follower) Close() { f.it.Stop() }
