// Package childproc lists the test process's own child processes as
// Linux's /proc shows them, for tests that check that a tool a component
// ran (ffmpeg, yt-dlp) is gone once it should be.
package childproc

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Child is one child process of this process.
type Child struct {
	PID  string
	Comm string // the command name, as /proc/<pid>/stat has it
	// State is the process state: "R" running, "S" sleeping, "Z" exited
	// but not yet reaped by this process, …
	State string
}

// String is "<pid> <comm> state <state>".
func (c Child) String() string { return c.PID + " " + c.Comm + " state " + c.State }

// List returns this process's children, zombies included. A process that
// exits while List reads /proc is left out.
func List() []Child {
	self := strconv.Itoa(os.Getpid())
	stats, _ := filepath.Glob("/proc/[0-9]*/stat") // the pattern is valid: no error
	var out []Child
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // exited meanwhile
		}
		// pid (comm) state ppid …; comm may hold spaces and parentheses.
		s := string(b)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open {
			continue
		}
		if f := strings.Fields(s[end+1:]); len(f) > 1 && f[1] == self {
			out = append(out, Child{PID: strings.TrimSpace(s[:open]), Comm: s[open+1 : end], State: f[0]})
		}
	}
	return out
}

// Named is the children of List that run name.
func Named(name string) []Child {
	var out []Child
	for _, c := range List() {
		if c.Comm == name {
			out = append(out, c)
		}
	}
	return out
}
