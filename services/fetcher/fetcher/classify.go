package fetcher

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/wader/goutubedl"
)

// classify turns a yt-dlp failure into a Failure. msg is yt-dlp's last
// "ERROR:" line when known (else err's text is used). A cancelled or
// expired ctx wins over everything: the failure is then the stage's
// timeout or shutdown, never the source's.
func classify(ctx context.Context, err error, msg string) error {
	if ctx.Err() != nil {
		return fmt.Errorf("fetcher: yt-dlp stopped: %w", ctx.Err())
	}
	if errors.Is(err, goutubedl.ErrNotASingleEntry) {
		return events.Wrap(events.CodeUnavailable, err, "the URL names a playlist, not one song")
	}
	var execErr *exec.Error
	if errors.As(err, &execErr) {
		return events.Wrap(events.CodeInternal, err, "yt-dlp could not be started")
	}
	if msg == "" && err != nil {
		msg = err.Error()
	}
	if err == nil {
		err = errors.New(msg)
	}
	lower := strings.ToLower(msg)
	clean := cleanMessage(msg)
	switch {
	case strings.Contains(lower, "did not get any data blocks"):
		return events.Wrap(events.CodeEmptyAudio, err, "the source gave no audio: the file is empty")
	case containsAny(lower, "private video", "sign in to confirm", "members-only", "join this channel",
		"this live event", "premieres in", "not available in your country", "geo restrict",
		"copyright", "has been terminated", "has been removed", "drm"):
		return events.Wrap(events.CodeUnavailable, err, "the video cannot be fetched: %s", clean)
	case containsAny(lower, "http error 404", "http error 410", "unsupported url", "video unavailable",
		"this video is unavailable", "does not exist", "no video formats found", "requested format is not available"):
		return events.Wrap(events.CodeNotFound, err, "no audio was found at this URL: %s", clean)
	}
	return events.Wrap(events.CodeDownloadFailed, err, "the download failed: %s", clean)
}

// admit refuses, before anything is downloaded, what the pipeline must not
// take: live streams and songs longer than max.
func admit(info goutubedl.Info, max time.Duration) error {
	if info.IsLive {
		return events.Fail(events.CodeUnavailable, "live streams cannot be fetched")
	}
	d := time.Duration(info.Duration * float64(time.Second))
	if max > 0 && d > max {
		return events.Fail(events.CodeUnavailable, "the song lasts %s, longer than the %s limit", d.Round(time.Second), max)
	}
	return nil
}

var (
	urlPattern  = regexp.MustCompile(`(?i)\b[a-z][a-z0-9+.-]*://[^\s'"<>)]+`)
	ipv4Pattern = regexp.MustCompile(`\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b`)
	ipv6Pattern = regexp.MustCompile(`\[[0-9a-fA-F:.%]*:[0-9a-fA-F:.%]*\](?::\d+)?`)
	// "[generic] None: ", "[youtube] dQw4w9WgXcQ: "
	extractorTag = regexp.MustCompile(`^\[[^\]]+\]\s+(?:[^\s:]+:\s+)?`)
)

// cleanMessage makes a yt-dlp error fit for a user: no extractor tag, no
// Python exception, no plea to report a bug, and no URL or IP address that
// could name an internal host. The full text stays in the log.
func cleanMessage(msg string) string {
	s := msg
	if i := strings.Index(s, "; please report this issue"); i >= 0 {
		s = s[:i]
	}
	if i := strings.Index(s, " (caused by "); i >= 0 {
		s = s[:i]
	}
	s = extractorTag.ReplaceAllString(s, "")
	s = urlPattern.ReplaceAllString(s, "<url>")
	s = ipv6Pattern.ReplaceAllString(s, "<address>")
	s = ipv4Pattern.ReplaceAllString(s, "<address>")
	s = strings.TrimRight(strings.TrimSpace(s), ";:,.")
	if len(s) > 300 {
		s = strings.ToValidUTF8(s[:300], "") + "…"
	}
	if s == "" {
		return "yt-dlp gave no reason"
	}
	return s
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
