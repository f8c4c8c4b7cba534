// Package wait lets a test wait for a condition instead of sleeping: for
// output that a process or a logger writes (Output), for a component run in
// the background to stop (Go), for a child process to exit (Start), or,
// where nothing signals the change, for a check that a user would make to
// pass (Until).
package wait

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
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

// Go runs run (a component's Run) in a goroutine of its own, on a context
// that stop cancels. stop then waits up to within for run to return and
// returns run's error, or one saying that it did not return; it may be
// called more than once and returns the same each time. When the test
// ends stop is called, and an error fails the test: a component must stop
// cleanly when its context ends.
func Go(t testing.TB, within time.Duration, run func(ctx context.Context) error) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	stop = sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(within):
			return fmt.Errorf("it did not return within %s of the cancel", within)
		}
	})
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return stop
}

// Start starts cmd for t: the process gets SIGKILL if the test binary dies
// first (Pdeathsig), and is killed and reaped when t ends. exited is closed
// once it has exited, whatever ended it.
func Start(t testing.TB, cmd *exec.Cmd) (exited <-chan struct{}) {
	t.Helper()
	return StartTerm(t, cmd, 0)
}

// StartTerm is Start for a process that shuts down cleanly on SIGTERM:
// when t ends, a process still running is sent SIGTERM, and SIGKILL only
// if it has not exited within grace (at once if grace is 0). Either way
// the cleanup returns once it has exited, so that a cleanup registered
// before StartTerm (one that shows the process's log, say) runs after it.
func StartTerm(t testing.TB, cmd *exec.Cmd, grace time.Duration) (exited <-chan struct{}) {
	t.Helper()
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := cmd.Start(); err != nil {
		t.Fatalf("wait: start %s: %v", cmd.Path, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		if grace > 0 {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
				return
			case <-time.After(grace):
			}
		}
		_ = cmd.Process.Kill()
		<-done
	})
	return done
}
