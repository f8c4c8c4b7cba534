package childproc_test

import (
	"os/exec"
	"slices"
	"strconv"
	"testing"

	"github.com/butakero/butakero/platform/testkit/childproc"
	"github.com/butakero/butakero/platform/testkit/wait"
)

// TestNamed starts a child and finds it by name and pid, and finds none
// by a name no child runs.
func TestNamed(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	wait.Start(t, cmd)
	pid := func(c childproc.Child) bool { return c.PID == strconv.Itoa(cmd.Process.Pid) }
	if kids := childproc.Named("sleep"); !slices.ContainsFunc(kids, pid) {
		t.Fatalf("Named(sleep) = %v, want the child %d", kids, cmd.Process.Pid)
	}
	if kids := childproc.Named("no-such-command"); len(kids) != 0 {
		t.Fatalf("Named(no-such-command) = %v, want none", kids)
	}
}
