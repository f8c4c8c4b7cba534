package main

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/butakero/butakero/platform/runtime/versions"
)

// TestServeWarnsOfAnOldYTDLP: `butakero serve`, which make run runs (go
// run ./cmd/butakero), logs the versions at start and warns when the
// yt-dlp on PATH is more than 90 days old, as Debian stable's is; a
// current one gets no warning. yt-dlp here is a script that answers
// --version with the release date, ahead of the real tools on PATH.
func TestServeWarnsOfAnOldYTDLP(t *testing.T) {
	for _, tc := range []struct {
		name, version string
		warn          bool
	}{
		{"Debian stable's", "2023.03.04", true},
		{"a current one", time.Now().AddDate(0, 0, -10).Format("2006.01.02"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bin := t.TempDir()
			script := "#!/bin/sh\n[ \"$1\" = --version ] && { echo " + tc.version + "; exit 0; }\nexit 1\n"
			if err := os.WriteFile(filepath.Join(bin, "yt-dlp"), []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "serve")
			cmd.Env = []string{execEnv + "=1", "PATH=" + bin + string(os.PathListSeparator) + os.Getenv("PATH"), "HOME=" + t.TempDir(),
				"DATA_DIR=" + t.TempDir(), "HTTP_ADDR=127.0.0.1:0", "LOG_FORMAT=text"}
			pr, pw := io.Pipe()
			cmd.Stdout, cmd.Stderr = pw, pw
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { err := cmd.Wait(); pw.Close(); exited <- err }()

			// The versions line comes once both tools answered.
			var logs []string
			versionsLine, warned := "", false
			sc := bufio.NewScanner(pr)
			for versionsLine == "" && sc.Scan() {
				line := sc.Text()
				logs = append(logs, line)
				if strings.Contains(line, "msg=versions") {
					versionsLine = line
				}
			}
			// Report.Log writes a warning right after the versions line, in
			// the same call, so it comes before anything the stop logs.
			if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			for sc.Scan() {
				logs = append(logs, sc.Text())
				warned = warned || strings.Contains(sc.Text(), versions.StaleWarning)
			}
			if err := <-exited; err != nil {
				t.Errorf("serve did not stop cleanly on SIGINT: %v:\n%s", err, strings.Join(logs, "\n"))
			}
			if versionsLine == "" || !strings.Contains(versionsLine, "yt_dlp="+tc.version) {
				t.Fatalf("no versions line naming yt-dlp %s:\n%s", tc.version, strings.Join(logs, "\n"))
			}
			if warned != tc.warn {
				t.Errorf("yt-dlp %s: warned %v, want %v:\n%s", tc.version, warned, tc.warn, strings.Join(logs, "\n"))
			}
		})
	}
}
