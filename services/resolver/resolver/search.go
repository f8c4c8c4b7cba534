package resolver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/ytdlp"
	"github.com/wader/goutubedl"
)

// Searcher finds the YouTube video that best matches free text.
//
// Search returns a Song with at least ID (a valid video id), URL and
// Source "youtube", or an error: an *events.Failure with CodeNotFound when
// nothing matches (permanent), any other error when the search may succeed
// later (transient). It must stop when ctx ends and be safe for concurrent
// use.
type Searcher interface {
	Search(ctx context.Context, text string) (events.Song, error)
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
func (s *YTDLPSearcher) Search(ctx context.Context, text string) (events.Song, error) {
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
			return events.Song{}, fmt.Errorf("search: %w", ctx.Err())
		}
		var ytErr goutubedl.YoutubedlError
		if errors.As(err, &ytErr) {
			return events.Song{}, events.Wrap(events.CodeDownloadFailed, err, "the search for %q failed; it will be tried again", text)
		}
		return events.Song{}, events.Wrap(events.CodeInternal, err, "the search could not be run")
	}
	info := res.Info
	candidates := info.Entries
	if info.Type != "playlist" && info.Type != "multi_video" {
		candidates = []goutubedl.Info{info}
	}
	for _, e := range candidates {
		if !videoID.MatchString(e.ID) {
			continue
		}
		return events.Song{
			ID:           e.ID,
			URL:          YouTubeWatchURL(e.ID),
			Source:       "youtube",
			Title:        e.Title,
			DurationMs:   int64(e.Duration * float64(time.Second/time.Millisecond)),
			ThumbnailURL: e.Thumbnail,
			Channel:      firstNonEmpty(e.Channel, e.Uploader),
		}, nil
	}
	return events.Song{}, events.Wrap(events.CodeNotFound,
		fmt.Errorf("yt-dlp returned no usable entry; stderr: %s", stderr.String()),
		"no video found for %q", text)
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
