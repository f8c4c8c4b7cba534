package stage_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/runtime/stage"
	"github.com/butakero/butakero/platform/testkit/natstest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// resolved is what most test handlers return: the delivery's
// video.resolved.
func resolved() []stage.Emit {
	return []stage.Emit{{SongID: "dQw4w9WgXcQ", Event: events.VideoResolved{Song: events.Song{ID: "dQw4w9WgXcQ"}}}}
}

// runWorker runs w until stop is called or the test ends. stop cancels
// it, waits until Run has returned, and returns Run's error; a second call
// returns nil at once.
func runWorker(t *testing.T, ctx context.Context, w *stage.Worker) (stop func() error) {
	t.Helper()
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()
	var once sync.Once
	stop = func() (err error) {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// startConsumer starts a JetStream server with the stage consumer name
// (maxAttempts deliveries), and a context that ends after timeout or
// with the test.
func startConsumer(t *testing.T, name string, maxAttempts int, timeout time.Duration) (*natstest.Env, context.Context, jetstream.Consumer) {
	t.Helper()
	env, ctx := natstest.StartWithin(t, timeout)
	cons, err := events.EnsureConsumer(ctx, env.JS, name, maxAttempts)
	if err != nil {
		t.Fatal(err)
	}
	return env, ctx, cons
}

// request publishes song.requested for a new operation and returns its id.
func request(t *testing.T, env *natstest.Env) string {
	t.Helper()
	opID := events.NewID()
	req, err := events.New(opID, "", events.SongRequested{Query: "q"})
	if err != nil {
		t.Fatal(err)
	}
	env.Publish(t, req)
	return opID
}

// downloaded publishes audio.downloaded of song1 for a new operation, the
// encode stage's input, and returns it.
func downloaded(t *testing.T, env *natstest.Env) events.Envelope {
	t.Helper()
	opID := events.NewID()
	parent, err := events.New(opID, "song1", events.AudioDownloaded{Song: events.Song{ID: "song1"}, Key: "staging/" + opID + ".m4a", Size: 10})
	if err != nil {
		t.Fatal(err)
	}
	env.Publish(t, parent)
	return parent
}

// fault is how a faultyPublisher's first publish of its kind fails.
type fault int

const (
	// dropped: nothing is stored, and the error is no outage (the
	// connection dropped on the publish).
	dropped fault = iota
	// storedUnanswered: the event is stored but its answer is lost, as a
	// timeout (an outage to the runtime).
	storedUnanswered
	// storedFailed: the event is stored, then the publish fails with an
	// error that is no outage (the ack lost with the connection).
	storedFailed
)

func (f fault) String() string {
	return [...]string{"dropped", "stored but unanswered", "stored but failed"}[f]
}

// faultyPublisher publishes through pub, except that the first publish of
// kind fails as fault says.
type faultyPublisher struct {
	pub   stage.Publisher
	kind  events.Kind
	fault fault
	hit   atomic.Bool
}

func (p *faultyPublisher) Publish(ctx context.Context, env events.Envelope) (*jetstream.PubAck, error) {
	subject, err := env.Subject()
	if err != nil {
		return nil, err
	}
	if kind, _, _ := events.KindOf(subject); kind != p.kind || p.hit.Swap(true) {
		return p.pub.Publish(ctx, env)
	}
	switch p.fault {
	case dropped:
		return nil, errors.New("test: connection dropped on " + subject)
	case storedUnanswered:
		if _, err := p.pub.Publish(ctx, env); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("test: %w", nats.ErrTimeout)
	default:
		if _, err := p.pub.Publish(ctx, env); err != nil {
			return nil, err
		}
		return nil, errors.New("test: connection dropped after " + subject)
	}
}

// waitAcked waits until cons has nothing pending nor unacked.
func waitAcked(ctx context.Context, t *testing.T, cons jetstream.Consumer) {
	t.Helper()
	for {
		info, err := cons.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.NumAckPending == 0 && info.NumPending == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatal("the message was never acked")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// countStored is how many events of kind the stream holds for opID.
func countStored(ctx context.Context, t *testing.T, env *natstest.Env, kind events.Kind, opID string) uint64 {
	t.Helper()
	subject := events.Subject(kind, opID)
	s, err := env.Stream.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	return s.State.Subjects[subject]
}
