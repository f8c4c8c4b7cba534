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
// a slot. A nil gate (no Quick) bounds nothing.
//
// A message pulled and not yet past Quick is undecided: it may be
// answered at once or join the wait. While every slot is taken it counts
// as waiting, so that a pull never slips in between a message's pull and
// its turn to wait; while a slot is free it does not, and quick answers
// keep flowing at the worker's whole concurrency.
type slotGate struct {
	slots chan struct{}
	// stopped is the worker's stop: a message still waiting then is
	// released at once, not held through the grace period.
	stopped <-chan struct{}

	mu        sync.Mutex
	room      *sync.Cond
	waiting   int
	undecided int
	busy      int
}

// ticket is one pulled message's place among the undecided, given up
// once (decided) when Quick answers it, it starts to wait for a slot, or
// its handling ends.
type ticket struct{ decided bool }

func newSlotGate(n int, stopped <-chan struct{}) *slotGate {
	g := &slotGate{slots: make(chan struct{}, n), stopped: stopped}
	g.room = sync.NewCond(&g.mu)
	return g
}

// full says whether a pull now could add a message to those waiting
// beyond the number of slots. Called with mu held.
func (g *slotGate) full() bool {
	n := cap(g.slots)
	return g.waiting >= n || (g.busy >= n && g.waiting+g.undecided >= n)
}

// roomToPull waits until a pulled message could not make more messages
// wait for a slot than there are slots: true then, false once ctx ends.
func (g *slotGate) roomToPull(ctx context.Context) bool {
	if g == nil {
		return ctx.Err() == nil
	}
	stop := context.AfterFunc(ctx, func() {
		g.mu.Lock()
		g.room.Broadcast()
		g.mu.Unlock()
	})
	defer stop()
	g.mu.Lock()
	defer g.mu.Unlock()
	for g.full() && ctx.Err() == nil {
		g.room.Wait()
	}
	return ctx.Err() == nil
}

// pulled counts a message just pulled among the undecided.
func (g *slotGate) pulled() *ticket {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	g.undecided++
	g.mu.Unlock()
	return &ticket{}
}

// decided takes t's message off the undecided; a second call, or a nil
// gate or ticket, does nothing.
func (g *slotGate) decided(t *ticket) {
	if g == nil || t == nil {
		return
	}
	g.mu.Lock()
	g.decide(t)
	g.mu.Unlock()
}

// decide is decided with mu held.
func (g *slotGate) decide(t *ticket) {
	if t == nil || t.decided {
		return
	}
	t.decided = true
	g.undecided--
	g.room.Broadcast()
}

// slot waits for a free slot, counted among the waiting meanwhile (and
// no longer among the undecided), and returns the func that frees it.
// ctx ended first returns its cause, the worker stopped first
// errNotStarted.
func (g *slotGate) slot(ctx context.Context, t *ticket) (release func(), err error) {
	g.mu.Lock()
	g.decide(t)
	g.waiting++
	g.mu.Unlock()
	select {
	case g.slots <- struct{}{}:
		g.mu.Lock()
		g.waiting--
		g.busy++
		g.room.Broadcast()
		g.mu.Unlock()
		return func() {
			<-g.slots
			g.mu.Lock()
			g.busy--
			g.room.Broadcast()
			g.mu.Unlock()
		}, nil
	case <-ctx.Done():
		err = context.Cause(ctx)
	case <-g.stopped:
		err = errNotStarted
	}
	g.mu.Lock()
	g.waiting--
	g.room.Broadcast()
	g.mu.Unlock()
	return nil, err
}
