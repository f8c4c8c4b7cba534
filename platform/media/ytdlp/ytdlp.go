// Package ytdlp holds what every service that runs yt-dlp through
// goutubedl must do to the command: goutubedl hands the *exec.Cmd to its
// StderrFn hook before starting it, and that hook is where these apply.
package ytdlp

import (
	"bytes"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"
)

// WaitDelay bounds how long Wait waits for yt-dlp's pipes after it exits
// (or is killed), so a child that keeps them open cannot hold a worker.
const WaitDelay = 5 * time.Second

// Harden makes yt-dlp ignore every configuration file (system, user, the
// working directory's), so nothing on the host changes what it does, and
// bounds Wait. goutubedl already passes the URL on standard input
// (--batch-file -), so no user input ever becomes an option. Calling Harden
// twice on one command is harmless.
func Harden(cmd *exec.Cmd) {
	cmd.WaitDelay = WaitDelay
	if len(cmd.Args) == 0 || slices.Contains(cmd.Args, "--ignore-config") {
		return
	}
	args := make([]string, 0, len(cmd.Args)+1)
	args = append(args, cmd.Args[0], "--ignore-config")
	cmd.Args = append(args, cmd.Args[1:]...)
}

// Tail keeps the last Max bytes written to it: yt-dlp's standard error, for
// logs and for classifying failures. It is safe for concurrent use.
type Tail struct {
	Max int
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write keeps p's bytes, dropping the oldest beyond Max. It never fails.
func (t *Tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf.Write(p)
	if extra := t.buf.Len() - t.Max; extra > 0 {
		t.buf.Next(extra)
	}
	return len(p), nil
}

// String is the kept text without surrounding space.
func (t *Tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(t.buf.String())
}
