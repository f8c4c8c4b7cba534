// Package versions reports the versions of Butakero and of the tools it
// runs: yt-dlp, whose age decides whether YouTube downloads still work, and
// ffmpeg. Every process logs them at start (Log) and the gateway answers
// them on GET /v1/info.
package versions

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"regexp"
	"runtime/debug"
	"strings"
	"sync"
	"time"
)

// Butakero is this build's version. Release builds set it with
//
//	go build -ldflags "-X github.com/butakero/butakero/platform/runtime/versions.Butakero=v1.2.3"
//
// (the Dockerfile does, from its BUTAKERO_VERSION argument); otherwise
// ButakeroVersion falls back on the build information.
var Butakero = ""

// MaxYTDLPAge is how old a yt-dlp release may be before the processes warn:
// YouTube changes often enough that an older yt-dlp usually fails.
const MaxYTDLPAge = 90 * 24 * time.Hour

// StaleWarning is the warning logged for a yt-dlp older than MaxYTDLPAge.
const StaleWarning = "yt-dlp is older than 90 days: YouTube downloads will likely fail; update yt-dlp"

// probeTimeout bounds one tool's --version run. yt-dlp answers in well
// under a second once its files are cached, but the first run in a fresh
// container on a busy disk has been seen to take over 10 s.
const probeTimeout = time.Minute

// Report is what the processes log and GET /v1/info answers.
type Report struct {
	Butakero string `json:"butakero"`
	YTDLP    YTDLP  `json:"yt_dlp"`
	FFmpeg   Tool   `json:"ffmpeg"`
}

// Tool is one external program's version, or why it is unknown.
type Tool struct {
	// Version is what the tool says of itself ("7.1.5-0+deb13u1"); empty
	// when it could not be run.
	Version string `json:"version"`
	// Error says why Version is empty ("executable file not found in
	// $PATH"); empty otherwise.
	Error string `json:"error,omitempty"`
}

// YTDLP is yt-dlp's version and how old its release is. yt-dlp versions
// are release dates (2026.10.26, nightlies 2026.10.26.232740).
type YTDLP struct {
	Tool
	// Released is the release date the version names, YYYY-MM-DD; empty
	// when the version is not a date.
	Released string `json:"released,omitempty"`
	// AgeDays is how many days before the probe it was released.
	AgeDays int `json:"age_days"`
	// Stale is true when the release is more than MaxYTDLPAge's days old,
	// or yt-dlp is missing: YouTube downloads will likely fail.
	Stale bool `json:"stale"`
}

// ButakeroVersion is Butakero when set at link time, else the main
// module's version from the build information (a tagged `go install`), else
// the VCS revision the build was made from, else "devel".
func ButakeroVersion() string {
	if Butakero != "" {
		return Butakero
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	rev, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return "devel-" + rev
}

// Probe runs `yt-dlp --version` and `ffmpeg -version` (from PATH, at once)
// and reports them, with yt-dlp's age at now. It never fails: a tool that
// cannot be run is reported with its error.
func Probe(ctx context.Context, now time.Time) Report {
	r := Report{Butakero: ButakeroVersion()}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		out, err := run(ctx, "yt-dlp", "--version")
		r.YTDLP = ytdlpAt(out, err, now)
	}()
	go func() {
		defer wg.Done()
		out, err := run(ctx, "ffmpeg", "-hide_banner", "-version")
		r.FFmpeg = ffmpegOf(out, err)
	}()
	wg.Wait()
	return r
}

// Log writes r as one info line, and a warning when yt-dlp is missing or
// stale, or ffmpeg is missing.
func (r Report) Log(log *slog.Logger) {
	log.Info("versions", "butakero", r.Butakero, "yt_dlp", orUnknown(r.YTDLP.Version), "yt_dlp_released", r.YTDLP.Released, "ffmpeg", orUnknown(r.FFmpeg.Version))
	switch {
	case r.YTDLP.Error != "":
		log.Warn("yt-dlp cannot be run: searches and YouTube downloads will fail; install a current yt-dlp", "error", r.YTDLP.Error)
	case r.YTDLP.Stale:
		log.Warn(StaleWarning, "yt_dlp", r.YTDLP.Version, "age_days", r.YTDLP.AgeDays)
	}
	if r.FFmpeg.Error != "" {
		log.Warn("ffmpeg cannot be run: encodes will fail; install ffmpeg", "error", r.FFmpeg.Error)
	}
}

// Prober probes once, in the background, and hands that report to every
// caller: the start-up log line and each GET /v1/info. It is safe for
// concurrent use.
type Prober struct {
	done   chan struct{}
	report Report
}

// Start begins probing in the background with the current time, logs the
// report once it is known, when log is not nil, and returns at once.
func Start(log *slog.Logger) *Prober {
	p := &Prober{done: make(chan struct{})}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
		defer cancel()
		p.report = Probe(ctx, time.Now())
		close(p.done)
		if log != nil {
			p.report.Log(log)
		}
	}()
	return p
}

// Report waits for the probe (at most until ctx ends: then it returns
// ctx's error) and returns its report.
func (p *Prober) Report(ctx context.Context) (Report, error) {
	select {
	case <-p.done:
		return p.report, nil
	case <-ctx.Done():
		return Report{}, ctx.Err()
	}
}

func run(ctx context.Context, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("%s did not answer within %s", name, probeTimeout)
	}
	return out.String(), err
}

// ytdlpDate is the release date at the start of a yt-dlp version.
var ytdlpDate = regexp.MustCompile(`^(\d{4})\.(\d{2})\.(\d{2})`)

// ytdlpAt reads `yt-dlp --version`'s output (or its error) at now.
func ytdlpAt(out string, err error, now time.Time) YTDLP {
	v := strings.TrimSpace(out)
	if err != nil || v == "" {
		msg := "no version printed"
		if err != nil {
			msg = err.Error()
		}
		return YTDLP{Tool: Tool{Error: msg}, Stale: true}
	}
	v, _, _ = strings.Cut(v, "\n")
	y := YTDLP{Tool: Tool{Version: v}}
	m := ytdlpDate.FindStringSubmatch(v)
	if m == nil {
		return y
	}
	released, perr := time.Parse("2006-01-02", m[1]+"-"+m[2]+"-"+m[3])
	if perr != nil {
		return y
	}
	y.Released = released.Format("2006-01-02")
	// Whole days: a release of 90 days ago is not stale yet on any hour
	// of that day.
	day := 24 * time.Hour
	y.AgeDays = max(0, int(now.Sub(released)/day))
	y.Stale = y.AgeDays > int(MaxYTDLPAge/day)
	return y
}

// ffmpegOf reads `ffmpeg -version`'s first line, "ffmpeg version 7.1.5-0+deb13u1 Copyright …".
func ffmpegOf(out string, err error) Tool {
	if err != nil {
		return Tool{Error: err.Error()}
	}
	first, _, _ := strings.Cut(out, "\n")
	rest, ok := strings.CutPrefix(strings.TrimSpace(first), "ffmpeg version ")
	if !ok {
		return Tool{Error: "unexpected ffmpeg -version output"}
	}
	v, _, _ := strings.Cut(rest, " ")
	return Tool{Version: v}
}

func orUnknown(v string) string {
	if v == "" {
		return "unknown"
	}
	return v
}
