package app_test

import (
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// faultSilentSource points the fetcher at a source that accepts the
// connection and then never sends a byte. Each attempt ends at
// STAGE_TIMEOUT, and after MAX_ATTEMPTS of them the operation fails with
// code timeout and a message that says so.
func faultSilentSource(t *testing.T, bin string) {
	src := silentServer(t)
	p := startProc(t, bin, "butakero", map[string]string{
		"DATA_DIR":      t.TempDir(),
		"MAX_ATTEMPTS":  "2",
		"STAGE_TIMEOUT": "3s",
	})
	begin := time.Now()
	opID := p.start(t, "http://"+src.addr+"/song.m4a")
	op := p.waitFinal(t, opID, 2*time.Minute)
	t.Logf("failed after %s: %q", time.Since(begin).Round(100*time.Millisecond), op.Message)
	if op.Status != "failed" || op.ErrorCode != "timeout" {
		t.Fatalf("operation ended %q with code %q (%s), want failed with timeout", op.Status, op.ErrorCode, op.Message)
	}
	if op.Attempts != 2 || op.Failures != 2 {
		t.Errorf("status counts %d attempts and %d failures, want 2 and 2 (MAX_ATTEMPTS)", op.Attempts, op.Failures)
	}
	if !strings.Contains(op.Message, "fetch") || !strings.Contains(op.Message, "3s") {
		t.Errorf("message %q does not say that the download took longer than STAGE_TIMEOUT", op.Message)
	}
	if n := src.accepted(); n < 2 {
		t.Errorf("the source saw %d connections; each of the 2 attempts should have reached it", n)
	}
}

// silent is a TCP server on loopback that accepts every connection and
// then neither reads nor writes until the test ends.
type silent struct {
	addr  string
	mu    sync.Mutex
	conns []net.Conn
}

func silentServer(t *testing.T) *silent {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &silent{addr: ln.Addr().String()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, c := range s.conns {
			c.Close()
		}
	})
	return s
}

func (s *silent) accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}
