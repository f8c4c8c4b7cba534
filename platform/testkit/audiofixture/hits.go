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

func (h *hitCounter) total() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, c := range h.n {
		n += c
	}
	return n
}
