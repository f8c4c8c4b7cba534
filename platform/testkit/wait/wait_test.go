package wait

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"testing"
	"time"
)

// TestOutputAwait: a waiter wakes on the write that makes its condition
// hold, and gives up at its deadline when none does.
func TestOutputAwait(t *testing.T) {
	var o Output
	go func() {
		for i := range 3 {
			fmt.Fprintf(&o, "line %d\n", i)
		}
	}()
	if !o.Contains(10*time.Second, "line 2") {
		t.Fatalf("line 2 not seen; output %q", o.String())
	}
	if o.Lines() != 3 || o.Tail(1) != "line 2" {
		t.Fatalf("Lines %d, Tail %q; want 3 and line 2", o.Lines(), o.Tail(1))
	}
	if o.Contains(50*time.Millisecond, "line 3") {
		t.Fatal("Contains saw a line never written")
	}
}

// TestUntil: Until returns once the check passes.
func TestUntil(t *testing.T) {
	n := 0
	Until(t, 10*time.Second, "third check", func() error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if n != 3 {
		t.Fatalf("checked %d times; want 3", n)
	}
}

// TestGo: stop cancels the run's context and returns what Run returned,
// the same at every call.
func TestGo(t *testing.T) {
	started := make(chan struct{})
	stop := Go(t, 10*time.Second, func(ctx context.Context) error {
		close(started)
		<-ctx.Done()
		return nil
	})
	<-started
	if err := stop(); err != nil {
		t.Fatalf("stop = %v; want nil", err)
	}
	if err := stop(); err != nil {
		t.Fatalf("second stop = %v; want nil", err)
	}

	stuck := make(chan struct{})
	defer close(stuck)
	ft := &fakeT{TB: t}
	stop = Go(ft, 50*time.Millisecond, func(ctx context.Context) error { <-stuck; return nil })
	if err := stop(); err == nil {
		t.Fatal("stop of a run that does not return = nil; want an error")
	}
}

// fakeT keeps the cleanups of a nested Go to itself, so that the outer
// test does not fail on the stuck run this test makes on purpose.
type fakeT struct{ testing.TB }

func (f *fakeT) Helper()        {}
func (f *fakeT) Cleanup(func()) {}

// TestStartTerm: when the test ends, a process that exits on SIGTERM is
// stopped by it, and one that ignores it is killed once grace runs out.
func TestStartTerm(t *testing.T) {
	cases := []struct {
		name   string
		script string
		want   string // the exit, as ProcessState says it
	}{
		{"exits on SIGTERM", `trap 'exit 3' TERM; echo ready; while :; do sleep 0.01 >/dev/null; done`, "exit status 3"},
		{"ignores SIGTERM", `trap '' TERM; echo ready; exec sleep 60`, "signal: killed"},
	}
	for _, tc := range cases {
		var cmd *exec.Cmd
		var exited <-chan struct{}
		t.Run(tc.name, func(t *testing.T) {
			out := &Output{}
			cmd = exec.Command("sh", "-c", tc.script)
			cmd.Stdout = out
			exited = StartTerm(t, cmd, 2*time.Second)
			if !out.Contains(10*time.Second, "ready") {
				t.Fatal("the script never set its trap")
			}
		})
		// The subtest's cleanup has stopped the process.
		select {
		case <-exited:
		default:
			t.Fatalf("%s: still running after the cleanup", tc.name)
		}
		if got := cmd.ProcessState.String(); got != tc.want {
			t.Errorf("%s: ended with %q, want %q", tc.name, got, tc.want)
		}
	}
}
