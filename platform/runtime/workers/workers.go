// Package workers runs a component's loops (a stage's handlers, the
// notifier's deliveries) as a group that stops in order: the loops see
// their ctx end and stop taking work, while the work already taken runs on
// a context that outlives ctx by a grace period (Grace, which s3blob also
// gives an upload so that it can abort its multipart upload).
package workers

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Grace returns a context for work in flight: it ends grace after ctx
// ends, or at once when the returned cancel is called, whichever comes
// first. The caller must call cancel once its work is done; that also
// releases the timer.
func Grace(ctx context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	work, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-t.C:
			cancel()
		case <-work.Done():
		}
	})
	return work, func() {
		stop()
		cancel()
	}
}

// Run runs loop(0) … loop(n-1) at once and returns when every one has
// returned, with their errors joined (nil when all return nil). A loop
// that fails does not stop the others: each stops on its own context.
func Run(n int, loop func(i int) error) error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = loop(i) })
	}
	wg.Wait()
	return errors.Join(errs...)
}
