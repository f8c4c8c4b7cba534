// Package loopback hands tests TCP ports on 127.0.0.1 for the servers they
// start.
//
// A port is found by listening on port 0 and closing the listener, so the
// kernel may hand the same port out again a moment later: a test that picks
// a cluster's client and route ports one after another, before any server
// listens, could get one port twice, and a node then fails to listen. Port
// never returns a port it returned before in this process.
package loopback

import (
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
)

var (
	mu    sync.Mutex
	given = map[int]bool{}
)

// maxTries bounds the kernel's answers Port looks at for a port it has not
// returned yet.
const maxTries = 100

// Port returns a TCP port on 127.0.0.1 that was free when asked and that
// no earlier call in this process returned. Another process may still
// take it before the caller's server listens on it.
func Port() (int, error) {
	mu.Lock()
	defer mu.Unlock()
	for range maxTries {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("loopback: find a free port: %w", err)
		}
		p := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if !given[p] {
			given[p] = true
			return p, nil
		}
	}
	return 0, fmt.Errorf("loopback: no free port not returned before in %d tries", maxTries)
}

// MustPort is Port, failing t when none is found.
func MustPort(t testing.TB) int {
	t.Helper()
	p, err := Port()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Addr is MustPort as "127.0.0.1:<port>".
func Addr(t testing.TB) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(MustPort(t)))
}
