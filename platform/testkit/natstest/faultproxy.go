package natstest

import (
	"bytes"
	"io"
	"net"
	"sync"
	"testing"
)

// FaultProxy is a TCP proxy between NATS clients and a server that loses a
// chosen publish for real: armed with a subject prefix, it cuts the
// client's connection at the first publish (PUB or HPUB) to a subject with
// that prefix, before the server sees it, as a dropped connection would.
// An optional hook runs first, with the publish still held back: a test
// can SIGKILL the publishing process there, so that it dies between two
// publishes. Everything else is forwarded untouched, and clients that
// reconnect through it are served as before.
type FaultProxy struct {
	// Addr is the proxy's address, 127.0.0.1:<port>.
	Addr string

	ln     net.Listener
	target string

	mu     sync.Mutex
	marker []byte // "PUB <prefix>"; nil when disarmed
	hook   func()
	fired  int
	conns  map[net.Conn]struct{}
}

// StartFaultProxy listens on a free loopback port and forwards every
// connection to target (host:port). It is closed when t ends.
func StartFaultProxy(t testing.TB, target string) *FaultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("natstest: fault proxy: %v", err)
	}
	p := &FaultProxy{Addr: ln.Addr().String(), ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	go p.serve()
	t.Cleanup(p.close)
	return p
}

// URL is the proxy's NATS URL.
func (p *FaultProxy) URL() string { return "nats://" + p.Addr }

// Arm makes the next publish to a subject starting with prefix fail: hook
// (if not nil) runs, then that client's connection is cut without
// forwarding it. The proxy disarms itself after firing once.
func (p *FaultProxy) Arm(prefix string, hook func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.marker = []byte("PUB " + prefix)
	p.hook = hook
}

// Fired is how many publishes the proxy has cut so far.
func (p *FaultProxy) Fired() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fired
}

func (p *FaultProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[s] = struct{}{}, struct{}{}
		p.mu.Unlock()
		cut := func() {
			c.Close()
			s.Close()
			p.mu.Lock()
			delete(p.conns, c)
			delete(p.conns, s)
			p.mu.Unlock()
		}
		go func() { _, _ = io.Copy(c, s); cut() }()
		go func() { p.clientToServer(c, s); cut() }()
	}
}

// clientToServer forwards what the client sends, looking for the armed
// publish. The protocol is text: a publish starts with "PUB <subject>" or
// "HPUB <subject>", and the marker may straddle two reads, so the last
// bytes of each read are kept to be searched with the next.
func (p *FaultProxy) clientToServer(c, s net.Conn) {
	buf := make([]byte, 32<<10)
	var tail []byte
	for {
		n, err := c.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			if p.trip(append(tail, chunk...)) {
				return
			}
			if _, werr := s.Write(chunk); werr != nil {
				return
			}
			keep := min(len(chunk), 128)
			tail = append(tail[:0], chunk[len(chunk)-keep:]...)
		}
		if err != nil {
			return
		}
	}
}

// trip reports whether data holds the armed publish, firing the fault.
func (p *FaultProxy) trip(data []byte) bool {
	p.mu.Lock()
	marker, hook := p.marker, p.hook
	if marker == nil || !bytes.Contains(data, marker) {
		p.mu.Unlock()
		return false
	}
	p.marker, p.hook = nil, nil
	p.fired++
	p.mu.Unlock()
	if hook != nil {
		hook()
	}
	return true
}

func (p *FaultProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}
