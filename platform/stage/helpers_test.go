package stage_test

import (
	"context"
	"sync"
	"testing"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/natstest"
	"github.com/butakero/butakero/platform/stage"
)

// resolve is the work most test handlers do: publish the delivery's
// video.resolved, with the id derived from the delivery.
func resolve(ctx context.Context, pub stage.Publisher, d stage.Delivery) error {
	next, err := events.Next(d.Envelope, "dQw4w9WgXcQ", events.VideoResolved{Song: events.Song{ID: "dQw4w9WgXcQ"}})
	if err != nil {
		return err
	}
	_, err = pub.Publish(ctx, next)
	return err
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
