package loopback_test

import (
	"net"
	"testing"

	"github.com/butakero/butakero/platform/testkit/loopback"
)

// TestPortsAreDistinct: ports asked for one after another, none listened
// on meanwhile, are all different, and each can be listened on.
func TestPortsAreDistinct(t *testing.T) {
	seen := map[int]bool{}
	for range 500 {
		p := loopback.MustPort(t)
		if seen[p] {
			t.Fatalf("port %d returned twice", p)
		}
		seen[p] = true
	}
	addr := loopback.Addr(t)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	ln.Close()
}
