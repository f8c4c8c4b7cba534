package wait

import (
	"errors"
	"fmt"
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
