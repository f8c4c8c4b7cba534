package stage

import (
	"context"
	"errors"
	"sync"
)

// errNotStarted is an attempt's error when the worker stopped while its
// message waited for a slot: the message is handed back untouched.
var errNotStarted = errors.New("stage: stopped before the message had a slot")

// slotGate bounds a Worker with Quick: at most cap(slots) messages run
// Handle at once, and the worker pulls no message while as many wait for
// a slot. A message counts as waiting once Quick has declined it: one
// still in Quick when a pull is decided is not counted yet, so pulls in
// that moment may add a few more (never beyond Concurrency), which wait
// their turn with their heartbeats running. Counting it sooner would
// bound the quick answers to the number of slots while every slot is
// taken. A nil gate (no Quick) bounds nothing.
type slotGate struct {
	slots chan struct{}
	// stopped is the worker's stop: a message still waiting then is
	// released at once, not held through the grace period.
	stopped <-chan struct{}

	mu      sync.Mutex
	room    *sync.Cond
	waiting int
}

func newSlotGate(n int, stopped <-chan struct{}) *slotGate {
	g := &slotGate{slots: make(chan struct{}, n), stopped: stopped}
	g.room = sync.NewCond(&g.mu)
	return g
}

// roomToPull waits until fewer messages wait for a slot than there are
// slots: true then, false once ctx ends.
func (g *slotGate) roomToPull(ctx context.Context) bool {
	if g == nil {
		return ctx.Err() == nil
	}
	return g.await(ctx, func() bool { return g.waiting < cap(g.slots) })
}

// await waits until cond holds (read with mu held): true then, false once
// ctx ends.
func (g *slotGate) await(ctx context.Context, cond func() bool) bool {
	stop := context.AfterFunc(ctx, func() {
		g.mu.Lock()
		g.room.Broadcast()
		g.mu.Unlock()
	})
	defer stop()
	g.mu.Lock()
	defer g.mu.Unlock()
	for !cond() && ctx.Err() == nil {
		g.room.Wait()
	}
	return ctx.Err() == nil
}

// slot waits for a free slot, counted among the waiting meanwhile, and
// returns the func that frees it. ctx ended first returns its cause, the
// worker stopped first errNotStarted.
func (g *slotGate) slot(ctx context.Context) (release func(), err error) {
	g.mu.Lock()
	g.waiting++
	g.room.Broadcast() // for waitFor
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.waiting--
		g.room.Broadcast()
		g.mu.Unlock()
	}()
	select {
	case g.slots <- struct{}{}:
		return func() { <-g.slots }, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	case <-g.stopped:
		return nil, errNotStarted
	}
}

// waitFor waits until n messages wait for a slot: true then, false once
// ctx ends. Tests use it to know a message is waiting.
func (g *slotGate) waitFor(ctx context.Context, n int) bool {
	return g.await(ctx, func() bool { return g.waiting >= n })
}
