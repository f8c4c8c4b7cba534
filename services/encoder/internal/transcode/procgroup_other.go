//go:build !unix

package transcode

import "os/exec"

// killGroupOnCancel leaves exec's default: cancelling kills the process alone.
func killGroupOnCancel(*exec.Cmd) {}
