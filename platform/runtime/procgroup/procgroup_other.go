//go:build !unix

// Package procgroup runs a child program in a process group of its own
// where the system has them; elsewhere cancelling kills the program alone.
package procgroup

import "os/exec"

// KillOnCancel leaves exec's default: cancelling kills the process alone.
func KillOnCancel(*exec.Cmd) {}
