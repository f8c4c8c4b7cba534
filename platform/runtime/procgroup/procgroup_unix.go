//go:build unix

// Package procgroup runs a child program in a process group of its own, so
// that cancelling its context kills what it started too (ffmpeg under
// yt-dlp, ffmpeg's own children): nothing outlives a cancelled operation,
// a timeout or a shutdown past its grace.
package procgroup

import (
	"os/exec"
	"syscall"
)

// KillOnCancel starts cmd in a process group of its own and makes the
// cancellation of its context kill the whole group.
func KillOnCancel(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.Cancel = func() error {
		if cmd.Process == nil {
			return nil
		}
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
