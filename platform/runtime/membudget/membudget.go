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
//
// The budget is per song being moved: the download, the encode and the
// follows of one song share it, and each other song moved at once adds as
// much. One limit for any number of songs fell below the live heap of a
// burst (twelve 30-second songs at once, bench section 6) and the
// collector then ran back to back: 575 collections in about six seconds,
// 630 ms of the process's CPU a song instead of 150 ms.
package membudget

import (
	"math"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// headroom is how far above the live heap the limit is set at least, so
// that a process whose live heap is above the budget is not collected
// without pause: the limit is max(budget × songs, live heap × 5/4).
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
	holds map[string]int // per song, the holds held
	prev  int64          // the limit before the first Hold
}

// New returns a Budget of bytes; bytes ≤ 0 returns nil, which sets
// nothing (ENCODE_MEMORY_BUDGET=off).
func New(bytes int64) *Budget {
	if bytes <= 0 {
		return nil
	}
	return &Budget{bytes: bytes, setLimit: debug.SetMemoryLimit, liveHeap: liveHeap, holds: map[string]int{}}
}

// Hold sets the limit for the work about to run on song (its id; the
// work of one song shares its budget) and returns the function that lets
// it go; call it once the work has ended, once. While holds are held the
// limit is max(budget × the songs held, live heap × 1.25) as computed at
// the latest Hold or release, never above the limit that was set before
// the first one (a GOMEMLIMIT the user set); the last release restores
// that limit.
func (b *Budget) Hold(song string) (release func()) {
	if b == nil || b.bytes <= 0 {
		return func() {}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.holds) == 0 {
		b.prev = b.setLimit(-1)
	}
	b.holds[song]++
	b.setLimit(b.limitLocked())
	var once sync.Once
	return func() { once.Do(func() { b.release(song) }) }
}

// limitLocked is the limit for the songs held and the live heap now; b.mu
// is held.
func (b *Budget) limitLocked() int64 {
	limit := b.bytes
	if n := int64(len(b.holds)); n > 1 && limit < math.MaxInt64/n {
		limit *= n
	}
	if live := b.liveHeap(); live > 0 && live < math.MaxInt64/headroomNum {
		if l := int64(live) * headroomNum / headroomDen; l > limit {
			limit = l
		}
	}
	return min(limit, b.prev)
}

func (b *Budget) release(song string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.holds[song]--; b.holds[song] <= 0 {
		delete(b.holds, song)
	}
	if len(b.holds) == 0 {
		b.setLimit(b.prev)
		return
	}
	b.setLimit(b.limitLocked())
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
