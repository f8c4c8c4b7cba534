package fetcher

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/runtime/config"
)

// The fetch is one yt-dlp run. Instead of a metadata run (-J) before the
// download, yt-dlp is told to refuse what the pipeline must not take
// (--match-filter) and to write what it knows of the video to files
// (--print-to-file) at two points of that one run:
//
//   - pre_process, before the match filter: enough to tell the user which
//     limit a refused video broke;
//   - before_dl, once the format is chosen and just before the download
//     starts: the song's metadata and the container.
//
// yt-dlp opens, appends and closes a file for each print, and prints
// before_dl before its first "[download] Destination" line, which is what
// makes goutubedl.Download return: by then the info file is complete.
const (
	admissionFile = "admission.json"
	infoFile      = "info.json"

	// %(.{a,b})j prints those fields of the info dict as one JSON object,
	// leaving out the ones yt-dlp does not know.
	admissionTemplate = "pre_process:%(.{id,duration,is_live,live_status})j"
	infoTemplate      = "before_dl:%(.{id,title,duration,thumbnail,channel,uploader,ext,format_id,filesize,is_live,live_status})j"
)

// videoInfo is what yt-dlp prints about the video.
type videoInfo struct {
	ID         string  `json:"id"`
	Title      string  `json:"title"`
	Duration   float64 `json:"duration"` // seconds; 0 when unknown
	Thumbnail  string  `json:"thumbnail"`
	Channel    string  `json:"channel"`
	Uploader   string  `json:"uploader"`
	Ext        string  `json:"ext"`       // the chosen format's container
	FileSize   int64   `json:"filesize"`  // the chosen format's size in bytes; 0 when unknown
	FormatID   string  `json:"format_id"` // the chosen format
	IsLive     bool    `json:"is_live"`
	LiveStatus string  `json:"live_status"` // "is_live", "is_upcoming", "was_live"…
}

// SourceYouTube is events.Song.Source for a YouTube video.
const SourceYouTube = "youtube"

// fetchArgs are the options the fetcher adds to goutubedl's download run:
// the match filter for max (0: live streams only), the two info files in
// dir, an absolute directory the fetch owns, and the YouTube extractor
// alone, whatever the song's source: yt-dlp's generic extractor, which
// follows whatever page a URL serves to whatever it embeds, is never on
// (direct URLs do not reach yt-dlp; see direct.go). yt-dlp 2023.03.04
// spells it --use-extractors (alias --ies), matching names
// case-insensitively as whole regexps, so "youtube" names the video
// extractor only. None of these comes from a user.
func fetchArgs(dir string, max time.Duration) []string {
	return []string{
		"--match-filter", matchFilter(max),
		"--print-to-file", admissionTemplate, outputPath(filepath.Join(dir, admissionFile)),
		"--print-to-file", infoTemplate, outputPath(filepath.Join(dir, infoFile)),
		"--use-extractors", "youtube",
	}
}

// jsArgs are the options that let yt-dlp solve YouTube's JavaScript
// challenges: the runtimes it may use (YTDLP_JS_RUNTIMES; yt-dlp enables
// only deno by default) and the components it may fetch, such as the
// solver scripts a distribution's yt-dlp lacks (YTDLP_REMOTE_COMPONENTS).
// The image sets both; without them yt-dlp runs as it would by default.
func jsArgs(cfg config.Config) []string {
	var args []string
	for _, r := range cfg.YTDLPJSRuntimes {
		args = append(args, "--js-runtimes", r)
	}
	for _, c := range cfg.YTDLPRemoteComps {
		args = append(args, "--remote-components", c)
	}
	return args
}

// matchFilter is yt-dlp's filter for what may be downloaded: no live
// stream, and no video known to last longer than max whole seconds ("<=?"
// lets a video of unknown duration through).
func matchFilter(max time.Duration) string {
	if max <= 0 {
		return "!is_live"
	}
	return fmt.Sprintf("!is_live & duration <=? %d", int64(max/time.Second))
}

// outputPath escapes p for yt-dlp, which reads --print-to-file's file name
// as an output template.
func outputPath(p string) string { return strings.ReplaceAll(p, "%", "%%") }

// readInfo reads the last object yt-dlp printed to path. ok is false when
// yt-dlp printed nothing there (the file does not exist).
func readInfo(path string) (v videoInfo, ok bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return videoInfo{}, false, nil
	}
	if err != nil {
		return videoInfo{}, false, fmt.Errorf("fetcher: read yt-dlp's info: %w", err)
	}
	b = bytes.TrimSpace(b)
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[i+1:]
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return videoInfo{}, false, fmt.Errorf("fetcher: decode yt-dlp's info: %w", err)
	}
	return v, true, nil
}

// admit reports what the pipeline must not take: live streams (and ones
// that have not started) and songs longer than max. It is the same rule as
// matchFilter, used to explain a refusal.
func admit(v videoInfo, max time.Duration) error {
	switch {
	case v.IsLive || v.LiveStatus == "is_live":
		return events.Fail(events.CodeUnavailable, "live streams cannot be fetched")
	case v.LiveStatus == "is_upcoming":
		return events.Fail(events.CodeUnavailable, "the live stream or premiere has not started yet")
	}
	d := time.Duration(v.Duration * float64(time.Second))
	if max > 0 && d > max {
		return events.Fail(events.CodeUnavailable, "the song lasts %s, longer than the %s limit", d.Round(time.Second), max)
	}
	return nil
}

// refused is the failure for a video yt-dlp's match filter refused, saying
// which limit it broke when the admission file tells.
func refused(v videoInfo, max time.Duration) error {
	if err := admit(v, max); err != nil {
		return err
	}
	return events.Fail(events.CodeUnavailable, "the video is live or lasts longer than the %s limit", max)
}
