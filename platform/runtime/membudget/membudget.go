// Package membudget bounds the all-in-one process's memory while it moves a
// song (a download, an encode, a staged source's deletion), and only then.
//
// Moving a 60-minute song makes garbage faster than the collector, paced by
// GOGC alone, returns it: the heap, and with it the resident set, grows
// with the song. A soft memory limit (debug.SetMemoryLimit) makes the
// collector run as the heap nears it. A limit kept on all the time costs
// the rest of the work dearly: with 48 MiB set for good, the collector ran
// without pause under load and the requests for stored songs fell from
// about 500 to 163 a second. So the limit is set when the first such work
// begins and the previous one is restored when the last one ends.
package membudget

import (
	"math"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// headroom is how far above the live heap the limit is set at least, so
// that a process whose live heap is above the budget is not collected
// without pause: the limit is max(budget, live heap × 5/4).
const headroomNum, headroomDen = 5, 4

// Budget sets the soft memory limit while at least one Hold is held. The
// zero Budget and a nil *Budget set nothing. A Budget is safe for
// concurrent use.
type Budget struct {
	bytes int64

	// setLimit and liveHeap are debug.SetMemoryLimit and the runtime's
	// live heap; tests replace them.
	setLimit func(int64) int64
	liveHeap func() uint64

	mu    sync.Mutex
	holds int
	prev  int64 // the limit before the first Hold
}

// New returns a Budget of bytes; bytes ≤ 0 returns nil, which sets
// nothing (ENCODE_MEMORY_BUDGET=off).
func New(bytes int64) *Budget {
	if bytes <= 0 {
		return nil
	}
	return &Budget{bytes: bytes, setLimit: debug.SetMemoryLimit, liveHeap: liveHeap}
}

// Hold sets the limit for the work about to run and returns the function
// that lets it go; call it once the work has ended, once. While holds are
// held the limit is max(budget, live heap × 1.25) as computed at the
// latest Hold, never above the limit that was set before the first one (a
// GOMEMLIMIT the user set); the last release restores that limit.
func (b *Budget) Hold() (release func()) {
	if b == nil || b.bytes <= 0 {
		return func() {}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.holds == 0 {
		b.prev = b.setLimit(-1)
	}
	b.holds++
	limit := b.bytes
	if live := b.liveHeap(); live > 0 && live < math.MaxInt64/headroomNum {
		if l := int64(live) * headroomNum / headroomDen; l > limit {
			limit = l
		}
	}
	if limit > b.prev {
		limit = b.prev
	}
	b.setLimit(limit)
	var once sync.Once
	return func() { once.Do(b.release) }
}

func (b *Budget) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.holds--
	if b.holds == 0 {
		b.setLimit(b.prev)
	}
}

// liveHeap is the heap the last collection found live, in bytes.
func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
