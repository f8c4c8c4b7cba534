package versions

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestYTDLPAge(t *testing.T) {
	now := time.Date(2026, 12, 1, 22, 0, 0, 0, time.UTC)
	cases := []struct {
		name         string
		out          string
		err          error
		wantVersion  string
		wantReleased string
		wantAge      int
		wantStale    bool
	}{
		{"a month old", "2026.10.26\n", nil, "2026.10.26", "2026-10-26", 36, false},
		{"exactly 90 days", "2026.09.02\n", nil, "2026.09.02", "2026-09-02", 90, false},
		{"91 days", "2026.09.01\n", nil, "2026.09.01", "2026-09-01", 91, true},
		{"Debian bookworm's", "2023.03.04\n", nil, "2023.03.04", "2023-03-04", 1368, true},
		{"a nightly", "2026.11.30.232740\n", nil, "2026.11.30.232740", "2026-11-30", 1, false},
		{"from the future", "2026.12.24", nil, "2026.12.24", "2026-12-24", 0, false},
		{"not a date", "9.9.9", nil, "9.9.9", "", 0, false},
		{"missing", "", exec.ErrNotFound, "", "", 0, true},
		{"silent", "", nil, "", "", 0, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			y := ytdlpAt(tc.out, tc.err, now)
			if y.Version != tc.wantVersion || y.Released != tc.wantReleased || y.AgeDays != tc.wantAge || y.Stale != tc.wantStale {
				t.Errorf("got %+v, want version %q released %q age %d stale %t", y, tc.wantVersion, tc.wantReleased, tc.wantAge, tc.wantStale)
			}
			if (y.Error != "") != (tc.wantVersion == "") {
				t.Errorf("error %q with version %q", y.Error, y.Version)
			}
		})
	}
}

func TestFFmpegVersion(t *testing.T) {
	cases := []struct {
		name, out string
		err       error
		want      string
	}{
		{"Debian trixie", "ffmpeg version 7.1.5-0+deb13u1 Copyright (c) 2000-2026 the FFmpeg developers\nbuilt with gcc 14\n", nil, "7.1.5-0+deb13u1"},
		{"a release", "ffmpeg version 8.0 Copyright (c) 2000-2025 the FFmpeg developers\n", nil, "8.0"},
		{"missing", "", exec.ErrNotFound, ""},
		{"something else", "avconv 12\n", nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := ffmpegOf(tc.out, tc.err)
			if got.Version != tc.want || (got.Error == "") != (tc.want != "") {
				t.Errorf("got %+v, want %q", got, tc.want)
			}
		})
	}
}

// TestProbe runs the tools of this machine and compares with what they say
// when run directly.
func TestProbe(t *testing.T) {
	r := Probe(context.Background(), time.Now())
	want, err := exec.Command("yt-dlp", "--version").Output()
	if err != nil {
		t.Fatalf("yt-dlp --version: %v (make test installs yt-dlp)", err)
	}
	if r.YTDLP.Version != strings.TrimSpace(string(want)) || r.YTDLP.Released == "" {
		t.Errorf("yt-dlp %+v, want version %q with its date", r.YTDLP, want)
	}
	out, err := exec.Command("ffmpeg", "-version").Output()
	if err != nil {
		t.Fatalf("ffmpeg -version: %v", err)
	}
	if r.FFmpeg.Version == "" || !strings.Contains(string(out), "ffmpeg version "+r.FFmpeg.Version+" ") {
		t.Errorf("ffmpeg %+v, not in %q", r.FFmpeg, strings.SplitN(string(out), "\n", 2)[0])
	}
	if r.Butakero == "" {
		t.Error("no Butakero version")
	}
}

func TestLogWarns(t *testing.T) {
	cases := []struct {
		name     string
		report   Report
		wantWarn string // "" means no warning
	}{
		{"current", Report{Butakero: "v1", YTDLP: YTDLP{Tool: Tool{Version: "2026.10.26"}, Released: "2026-10-26", AgeDays: 36}, FFmpeg: Tool{Version: "7.1"}}, ""},
		{"stale yt-dlp", Report{Butakero: "v1", YTDLP: YTDLP{Tool: Tool{Version: "2023.03.04"}, Released: "2023-03-04", AgeDays: 1368, Stale: true}, FFmpeg: Tool{Version: "5.1"}}, "YouTube downloads will likely fail; update yt-dlp"},
		{"no yt-dlp", Report{Butakero: "v1", YTDLP: YTDLP{Tool: Tool{Error: exec.ErrNotFound.Error()}, Stale: true}, FFmpeg: Tool{Version: "5.1"}}, "yt-dlp cannot be run"},
		{"no ffmpeg", Report{Butakero: "v1", YTDLP: YTDLP{Tool: Tool{Version: "2026.10.26"}, Released: "2026-10-26"}, FFmpeg: Tool{Error: errors.New("not found").Error()}}, "ffmpeg cannot be run"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			tc.report.Log(slog.New(slog.NewTextHandler(&buf, nil)))
			logs := buf.String()
			if !strings.Contains(logs, "msg=versions butakero=v1") {
				t.Errorf("no versions line in %q", logs)
			}
			warned := strings.Contains(logs, "level=WARN")
			if tc.wantWarn == "" && warned {
				t.Errorf("unexpected warning: %s", logs)
			}
			if tc.wantWarn != "" && (!warned || !strings.Contains(logs, tc.wantWarn)) {
				t.Errorf("want a warning with %q, got %s", tc.wantWarn, logs)
			}
		})
	}
}

func TestProberWaits(t *testing.T) {
	p := Start(nil)
	r, err := p.Report(context.Background())
	if err != nil || r.Butakero == "" {
		t.Fatalf("report %+v, %v", r, err)
	}
	again, _ := p.Report(context.Background())
	if again != r {
		t.Errorf("second report %+v differs from %+v", again, r)
	}
}
