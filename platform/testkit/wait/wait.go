// Package wait lets a test wait for a condition instead of sleeping: for
// output that a process or a logger writes (Output), or, where nothing
// signals the change, for a check that a user would make to pass (Until).
package wait

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

// Output collects what a process or a logger writes, for a test to read
// and to wait on. Its methods are safe for concurrent use; the zero value
// is ready.
type Output struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	written chan struct{} // closed and replaced at each Write
}

// Write appends p and wakes the waiters of Await.
func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	n, err := o.buf.Write(p)
	if o.written != nil {
		close(o.written)
		o.written = nil
	}
	return n, err
}

// String is everything written so far.
func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// Bytes is a copy of everything written so far.
func (o *Output) Bytes() []byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	return bytes.Clone(o.buf.Bytes())
}

// Lines is the number of complete lines written so far.
func (o *Output) Lines() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return bytes.Count(o.buf.Bytes(), []byte("\n"))
}

// Tail returns the last n lines.
func (o *Output) Tail(n int) string {
	lines := strings.Split(strings.TrimRight(o.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Await reports whether ok holds of the output within d: it checks now
// and again after each write, never on a timer.
func (o *Output) Await(d time.Duration, ok func(text string) bool) bool {
	timeout := time.NewTimer(d)
	defer timeout.Stop()
	for {
		o.mu.Lock()
		if ok(o.buf.String()) {
			o.mu.Unlock()
			return true
		}
		if o.written == nil {
			o.written = make(chan struct{})
		}
		written := o.written
		o.mu.Unlock()
		select {
		case <-written:
		case <-timeout.C:
			return false
		}
	}
}

// Contains reports whether s is written within d.
func (o *Output) Contains(d time.Duration, s string) bool {
	return o.Await(d, func(text string) bool { return strings.Contains(text, s) })
}

// Interval is how often Until checks.
const Interval = 50 * time.Millisecond

// Until checks check every Interval until it returns nil, and fails t with
// what and the last error if that has not happened within d. Use it only
// where nothing signals the change, with a check that asks what a user
// would ask (is the server healthy, does the consumer count the messages).
func Until(t testing.TB, d time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(Interval)
	defer tick.Stop()
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, d, err)
		}
		<-tick.C
	}
}
