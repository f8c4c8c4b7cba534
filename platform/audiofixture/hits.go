package audiofixture

import "sync"

type hitCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func newHitCounter() *hitCounter { return &hitCounter{n: map[string]int{}} }

func (h *hitCounter) add(p string) {
	h.mu.Lock()
	h.n[p]++
	h.mu.Unlock()
}

func (h *hitCounter) get(p string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n[p]
}
