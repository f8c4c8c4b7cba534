package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/butakero/butakero/platform/runtime/versions"
)

// cmdVersion is `butakero version [-check]`: the versions every process
// logs at start, one per line. With -check it fails when yt-dlp or ffmpeg
// cannot be run or yt-dlp is more than 90 days old; the Dockerfile runs it
// so that no image is built with a yt-dlp YouTube has outgrown.
func cmdVersion(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	check := fs.Bool("check", false, "fail when yt-dlp or ffmpeg is missing, or yt-dlp is more than 90 days old")
	if err := fs.Parse(args); err != nil {
		return err
	}
	r := versions.Probe(ctx, time.Now())
	fmt.Fprintf(stdout, "butakero %s\n", r.Butakero)
	switch {
	case r.YTDLP.Error != "":
		fmt.Fprintf(stdout, "yt-dlp   unavailable: %s\n", r.YTDLP.Error)
	case r.YTDLP.Released != "":
		fmt.Fprintf(stdout, "yt-dlp   %s (released %s, %d days ago)\n", r.YTDLP.Version, r.YTDLP.Released, r.YTDLP.AgeDays)
	default:
		fmt.Fprintf(stdout, "yt-dlp   %s\n", r.YTDLP.Version)
	}
	if r.FFmpeg.Error != "" {
		fmt.Fprintf(stdout, "ffmpeg   unavailable: %s\n", r.FFmpeg.Error)
	} else {
		fmt.Fprintf(stdout, "ffmpeg   %s\n", r.FFmpeg.Version)
	}
	if !*check {
		return nil
	}
	var errs []error
	if r.YTDLP.Error != "" {
		errs = append(errs, errors.New("yt-dlp cannot be run"))
	} else if r.YTDLP.Stale {
		errs = append(errs, errors.New(versions.StaleWarning))
	}
	if r.FFmpeg.Error != "" {
		errs = append(errs, errors.New("ffmpeg cannot be run"))
	}
	return errors.Join(errs...)
}
