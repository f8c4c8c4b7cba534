package fetcher

import (
	"bytes"
	"errors"
	"io"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/butakero/butakero/platform/media/ytdlp"
	"github.com/butakero/butakero/platform/runtime/procgroup"
)

// progressEvery is the shortest interval between two progress messages.
const progressEvery = 250 * time.Millisecond

// errStopTee is returned to stop exec copying stderr; see tee.Write.
var errStopTee = errors.New("fetcher: yt-dlp stderr no longer read")

// process follows the one yt-dlp run goutubedl starts for a fetch.
// goutubedl hands the command to attach before starting it: attach makes
// yt-dlp ignore configuration files, adds the fetch's own options (args),
// puts it in its own process group (so cancelling kills any child too) and
// tees its standard error through the process, which parses the download
// progress, the chosen format, the last error, and whether yt-dlp refused
// the video (match filter) or met a playlist.
type process struct {
	progress func(pct float64)
	now      func() time.Time
	// args are appended to yt-dlp's command line (see fetchArgs).
	args []string

	mu          sync.Mutex
	cmd         *exec.Cmd
	download    bool // cmd writes the media to its standard output
	partial     []byte
	sawDownload bool
	stopped     bool
	formatID    string
	lastErr     string
	filtered    bool // yt-dlp's match filter refused the video
	playlist    bool // the URL is a playlist
	lastSent    time.Time
	sentAny     bool
	tail        ytdlp.Tail
}

func newProcess(progress func(pct float64), args ...string) *process {
	return &process{progress: progress, now: time.Now, args: args, tail: ytdlp.Tail{Max: 4 << 10}}
}

// attach is goutubedl's Options.StderrFn. It is called once per yt-dlp
// run, before the command starts, and never concurrently.
func (p *process) attach(cmd *exec.Cmd) io.Writer {
	ytdlp.Harden(cmd)
	procgroup.KillOnCancel(cmd)
	cmd.Args = append(cmd.Args, p.args...)

	p.mu.Lock()
	defer p.mu.Unlock()
	// goutubedl's download run writes the media to stdout ("--output -").
	p.download = containsArg(cmd.Args, "--output")
	p.cmd = cmd
	p.partial, p.sawDownload, p.stopped, p.lastErr = nil, false, false, ""
	p.filtered, p.playlist = false, false
	return tee{p}
}

func containsArg(args []string, a string) bool {
	for _, v := range args {
		if v == a {
			return true
		}
	}
	return false
}

// tee receives yt-dlp's standard error.
type tee struct{ p *process }

// Write parses whole lines as they come. It never fails, except in one
// case: goutubedl stops reading the download run's stderr when it meets an
// error before any "[download]" line, and a later write would block yt-dlp's
// exit (and the handler) forever; failing it instead makes exec stop
// copying.
func (t tee) Write(b []byte) (int, error) {
	p := t.p
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return 0, errStopTee
	}
	_, _ = p.tail.Write(b)
	p.partial = append(p.partial, b...)
	var pcts []float64
	for {
		i := bytes.IndexAny(p.partial, "\r\n")
		if i < 0 {
			break
		}
		line := string(p.partial[:i])
		p.partial = p.partial[i+1:]
		if pct, ok := p.line(line); ok {
			pcts = append(pcts, pct)
		}
	}
	if len(p.partial) > 8<<10 { // no line is that long; do not grow
		p.partial = p.partial[:0]
	}
	if p.download && p.lastErr != "" && !p.sawDownload {
		p.stopped = true
	}
	p.mu.Unlock()
	for _, pct := range pcts {
		p.progress(pct)
	}
	return len(b), nil
}

var (
	progressLine = regexp.MustCompile(`^\[download\]\s+([0-9]+(?:\.[0-9]+)?)%`)
	formatLine   = regexp.MustCompile(`^\[info\] .*: Downloading \d+ format\(s\): (\S+)`)
	// "[download] Downloading playlist: <title>", also for multi_video.
	playlistLine = regexp.MustCompile(`^\[download\] Downloading [a-z_]+: `)
)

// filteredText is in yt-dlp's line for a video its --match-filter refuses:
// "[download] <title> does not pass filter (<filter>), skipping ..".
const filteredText = " does not pass filter ("

// line handles one stderr line under p.mu and reports a progress
// percentage to publish, throttled to one per progressEvery.
func (p *process) line(line string) (float64, bool) {
	switch {
	case strings.HasPrefix(line, "ERROR: "):
		p.lastErr = strings.TrimPrefix(line, "ERROR: ")
	case strings.HasPrefix(line, "[download]"):
		p.sawDownload = true
		if playlistLine.MatchString(line) {
			p.playlist = true
		}
		if strings.Contains(line, filteredText) {
			p.filtered = true
		}
		m := progressLine.FindStringSubmatch(line)
		if m == nil {
			return 0, false
		}
		pct, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			return 0, false
		}
		pct = min(pct, 100)
		now := p.now()
		if p.sentAny && now.Sub(p.lastSent) < progressEvery {
			return 0, false
		}
		p.sentAny, p.lastSent = true, now
		return pct, true
	default:
		if m := formatLine.FindStringSubmatch(line); m != nil {
			// "251" or, for merged formats, "248+251": the first names the
			// container.
			p.formatID, _, _ = strings.Cut(m[1], "+")
		}
	}
	return 0, false
}

// state returns what the current run has shown so far.
func (p *process) state() (cmd *exec.Cmd, formatID, lastErr, tail string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd, p.formatID, p.lastErr, p.tail.String()
}

// refusal reports whether yt-dlp's match filter refused the video, and
// whether the URL turned out to be a playlist.
func (p *process) refusal() (filtered, playlist bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.filtered, p.playlist
}
