//go:build !unix

package fetcher

import "os/exec"

// killGroupOnCancel leaves exec's default: cancelling kills yt-dlp alone.
func killGroupOnCancel(*exec.Cmd) {}
