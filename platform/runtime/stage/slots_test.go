package stage

import (
	"context"
	"testing"
)

// TestGateCountsUndecided: with every slot taken, a message pulled and
// not yet past Quick holds the next pull back as one waiting for a slot
// would; with a slot free it does not, and once Quick has answered it
// the pull goes ahead.
func TestGateCountsUndecided(t *testing.T) {
	stopped := make(chan struct{})
	g := newSlotGate(1, stopped)
	full := func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.full()
	}
	quick := g.pulled()
	if full() {
		t.Fatal("one undecided message beside a free slot held the next pull back")
	}
	g.decided(quick)

	release, err := g.slot(context.Background(), g.pulled())
	if err != nil {
		t.Fatal(err)
	}
	if full() {
		t.Fatal("the slot taken with nobody waiting held the next pull back")
	}
	b := g.pulled()
	if !full() {
		t.Fatal("an undecided message beside the taken slot let the next pull through")
	}
	g.decided(b)
	g.decided(b) // a second call changes nothing
	if full() {
		t.Fatal("the message Quick answered still held the next pull back")
	}

	c := g.pulled()
	waited := make(chan error, 1)
	go func() {
		release, err := g.slot(context.Background(), c)
		if err == nil {
			release()
		}
		waited <- err
	}()
	release()
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
	if full() {
		t.Fatal("the gate is still full once every message is done")
	}
	if g.undecided != 0 || g.waiting != 0 || g.busy != 0 {
		t.Fatalf("counts left over: undecided %d, waiting %d, busy %d", g.undecided, g.waiting, g.busy)
	}
}
