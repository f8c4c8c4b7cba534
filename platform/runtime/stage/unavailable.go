package stage

import (
	"context"
	"errors"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Unavailable reports whether err says JetStream could not be reached at
// all (no server answered, a stream has no leader while a cluster elects
// one, the connection is reconnecting), as opposed to an answer that the
// work failed. Such an error says nothing about the song: the attempt is not
// over, and the worker runs the handler again once JetStream answers.
func Unavailable(err error) bool {
	return errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrConnectionReconnecting) ||
		errors.Is(err, nats.ErrDisconnected)
}

// unavailableBackoff spaces the probes while JetStream is unreachable.
func unavailableBackoff(n int) time.Duration {
	return min(250*time.Millisecond<<min(n, 5), 5*time.Second)
}

// awaitJetStream waits until the event stream answers an info request, or
// ctx ends (false). A cluster that lost the stream's leader answers again
// once it has elected another, typically within seconds.
func (w *Worker) awaitJetStream(ctx context.Context) bool {
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(unavailableBackoff(n)):
		}
		probe, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := w.JS.Stream(probe, events.StreamName)
		cancel()
		if err == nil {
			return true
		}
	}
}
