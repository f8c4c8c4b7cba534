package fetcher

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strings"

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
	// A YouTube song runs with the YouTube extractor alone: a URL it does
	// not take is not a YouTube video, whatever the event claims.
	case strings.Contains(lower, "no suitable extractor"):
		return events.Wrap(events.CodeInvalidInput, err, "the URL is not one of this song's source")
	case strings.Contains(lower, "did not get any data blocks"):
		return events.Wrap(events.CodeEmptyAudio, err, "the source gave no audio: the file is empty")
	// YouTube's bot check ("Sign in to confirm you’re not a bot"): the
	// host is flagged, and no retry within minutes passes it; cookies or
	// a proxy (YTDLP_COOKIES_FILE, YTDLP_PROXY) do.
	case strings.Contains(lower, "not a bot"):
		return events.Wrap(events.CodeSignInRequired, err, "YouTube refused the download: it asks to sign in to confirm this is not a bot")
	case strings.Contains(lower, "sign in to confirm your age") || strings.Contains(lower, "age-restricted"):
		return events.Wrap(events.CodeSignInRequired, err, "the video is age-restricted: it cannot be fetched without a signed-in account")
	case containsAny(lower, "private video", "this video is private"):
		return events.Wrap(events.CodeUnavailable, err, "the video is private")
	case containsAny(lower, "members-only", "join this channel", "this live event", "premieres in",
		"not available in your country", "not made this video available in your country", "geo restrict",
		"copyright", "has been terminated", "has been removed", "drm"):
		return events.Wrap(events.CodeUnavailable, err, "the video cannot be fetched: %s", clean)
	case containsAny(lower, "http error 404", "http error 410", "unsupported url", "video unavailable",
		"this video is unavailable", "does not exist", "no video formats found", "requested format is not available"):
		return events.Wrap(events.CodeNotFound, err, "no audio was found at this URL: %s", clean)
	// Rate limiting passes with time: transient, retried with backoff.
	case containsAny(lower, "http error 429", "too many requests", "try again later"):
		return events.Wrap(events.CodeRateLimited, err, "the source is limiting requests (rate limited); the download will be tried again")
	case containsAny(lower, "name resolution", "name or service not known", "nodename nor servname",
		"connection refused", "connection reset", "network is unreachable", "no route to host",
		"timed out", "urlopen error", "remote end closed connection", "incompleteread"):
		return events.Wrap(events.CodeNetwork, err, "the network failed during the download: %s", clean)
	}
	return events.Wrap(events.CodeDownloadFailed, err, "the download failed: %s", clean)
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
