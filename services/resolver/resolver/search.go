package resolver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/media/songquery"
	"github.com/butakero/butakero/platform/media/ytdlp"
	"github.com/butakero/butakero/platform/runtime/tracing"
	"github.com/butakero/butakero/platform/searchcache"
	"github.com/wader/goutubedl"
	"go.opentelemetry.io/otel/attribute"
)

// Searcher finds the YouTube video that best matches free text, without
// the Data API (the fallback).
//
// Search returns the video with at least ID (a valid video id) and URL, and
// what else is known of it, or an error: an *events.Failure with
// CodeNotFound when nothing matches (permanent), any other error when the
// search may succeed later (transient). It must stop when ctx ends and be
// safe for concurrent use.
type Searcher interface {
	Search(ctx context.Context, text string) (searchcache.Video, error)
}

// YTDLPSearcher searches YouTube through yt-dlp ("ytsearch1:<text>") with
// goutubedl. The query reaches yt-dlp on its standard input (--batch-file
// -), so no query can become a command-line option. It is safe for
// concurrent use: every search runs its own process.
type YTDLPSearcher struct {
	// Proxy and Cookies are handed to yt-dlp when set
	// (YTDLP_PROXY, YTDLP_COOKIES_FILE).
	Proxy   string
	Cookies string
}

var _ Searcher = (*YTDLPSearcher)(nil)

// Search implements Searcher.
//
// yt-dlp answers a search it could not run (no network, YouTube refusing)
// with a playlist whose only entry is null and exit status 1, which
// goutubedl reports as success with an empty entry. A search with no usable
// entry is CodeNotFound; an error goutubedl does report is transient.
func (s *YTDLPSearcher) Search(ctx context.Context, text string) (_ searchcache.Video, err error) {
	ctx, span := tracing.StartProcess(ctx, "yt-dlp", attribute.String("butakero.purpose", "search"))
	defer func() { tracing.EndProcess(span, err) }()
	stderr := &ytdlp.Tail{Max: 4 << 10}
	res, err := goutubedl.New(ctx, "ytsearch1:"+text, goutubedl.Options{
		Type:     goutubedl.TypeAny,
		ProxyUrl: s.Proxy,
		Cookies:  s.Cookies,
		StderrFn: func(cmd *exec.Cmd) io.Writer {
			ytdlp.Harden(cmd)
			return stderr
		},
	})
	if err != nil {
		if ctx.Err() != nil {
			return searchcache.Video{}, fmt.Errorf("search: %w", ctx.Err())
		}
		var ytErr goutubedl.YoutubedlError
		if errors.As(err, &ytErr) {
			return searchcache.Video{}, events.Wrap(events.CodeDownloadFailed, err, "the search for %q failed; it will be tried again", text)
		}
		return searchcache.Video{}, events.Wrap(events.CodeInternal, err, "the search could not be run")
	}
	var found searchResult
	if err := json.Unmarshal(res.RawJSON, &found); err != nil {
		return searchcache.Video{}, events.Wrap(events.CodeInternal, err, "the search answer could not be read")
	}
	candidates := found.Entries
	if found.Type != "playlist" && found.Type != "multi_video" {
		candidates = []*searchEntry{&found.searchEntry}
	}
	for _, e := range candidates {
		if e == nil || !songquery.IsVideoID(e.ID) {
			continue
		}
		return e.video(), nil
	}
	return searchcache.Video{}, events.Wrap(events.CodeNotFound,
		fmt.Errorf("yt-dlp returned no usable entry; stderr: %s", stderr.String()),
		"no video found for %q", text)
}

// searchEntry is what the resolver reads of yt-dlp's info for one video.
type searchEntry struct {
	ID         string  `json:"id"`
	Title      string  `json:"title"`
	Duration   float64 `json:"duration"`
	Thumbnail  string  `json:"thumbnail"`
	Channel    string  `json:"channel"`
	Uploader   string  `json:"uploader"`
	IsLive     bool    `json:"is_live"`
	LiveStatus string  `json:"live_status"`
	// Availability is "public", "unlisted", "private", "needs_auth"…
	Availability string `json:"availability"`
}

// searchResult is yt-dlp's answer to "ytsearch1:": a playlist whose
// entries may be null.
type searchResult struct {
	searchEntry
	Type    string         `json:"_type"`
	Entries []*searchEntry `json:"entries"`
}

// video maps yt-dlp's fields onto the Data API's meanings.
func (e *searchEntry) video() searchcache.Video {
	v := searchcache.Video{
		ID:           e.ID,
		URL:          songquery.WatchURL(e.ID),
		Title:        e.Title,
		DurationMs:   int64(e.Duration * float64(time.Second/time.Millisecond)),
		ThumbnailURL: e.Thumbnail,
		Channel:      firstNonEmpty(e.Channel, e.Uploader),
		Live:         "none",
	}
	switch {
	case e.IsLive || e.LiveStatus == "is_live":
		v.Live = "live"
	case e.LiveStatus == "is_upcoming":
		v.Live = "upcoming"
	}
	switch e.Availability {
	case "public", "unlisted", "private":
		v.Privacy = e.Availability
	}
	return v
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
