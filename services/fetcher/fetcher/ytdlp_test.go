package fetcher

import (
	"context"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/wader/goutubedl"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		msg      string
		wantCode events.Code
		wantMsg  string
	}{
		{name: "404", err: goutubedl.YoutubedlError("x"),
			msg:      "[generic] None: Unable to download webpage: HTTP Error 404: Not Found (caused by <HTTPError 404: 'Not Found'>); please report this issue on  https://github.com/yt-dlp/yt-dlp/issues?q= , filling out the appropriate issue template.",
			wantCode: events.CodeNotFound, wantMsg: "no audio was found at this URL: Unable to download webpage: HTTP Error 404: Not Found"},
		{name: "410", msg: "[generic] x: Unable to download webpage: HTTP Error 410: Gone", wantCode: events.CodeNotFound},
		{name: "unsupported url", msg: "Unsupported URL: http://10.0.0.7:8080/x", wantCode: events.CodeNotFound,
			wantMsg: "no audio was found at this URL: Unsupported URL: <url>"},
		{name: "video unavailable", msg: "[youtube] dQw4w9WgXcQ: Video unavailable", wantCode: events.CodeNotFound,
			wantMsg: "no audio was found at this URL: Video unavailable"},
		{name: "private", msg: "[youtube] dQw4w9WgXcQ: Private video. Sign in if you've been granted access to this video",
			wantCode: events.CodeUnavailable},
		{name: "age gate", msg: "[youtube] x: Sign in to confirm your age. This video may be inappropriate for some users.",
			wantCode: events.CodeUnavailable},
		{name: "upcoming live", msg: "[youtube] x: This live event will begin in 3 hours.", wantCode: events.CodeUnavailable},
		{name: "empty", err: errors.New("Did not get any data blocks"), wantCode: events.CodeEmptyAudio},
		{name: "connection refused is transient", msg: "Unable to download webpage: <urlopen error [Errno 111] Connection refused> (caused by URLError(ConnectionRefusedError(111, 'Connection refused')))",
			wantCode: events.CodeDownloadFailed, wantMsg: "the download failed: Unable to download webpage: <urlopen error [Errno 111] Connection refused>"},
		{name: "internal address hidden", msg: "Unable to download webpage: 192.168.1.20:9000 timed out",
			wantCode: events.CodeDownloadFailed, wantMsg: "the download failed: Unable to download webpage: <address> timed out"},
		{name: "ipv6 address hidden", msg: "could not connect to [fd00::1]:80",
			wantCode: events.CodeDownloadFailed, wantMsg: "the download failed: could not connect to <address>"},
		{name: "no reason", err: errors.New(""), wantCode: events.CodeDownloadFailed, wantMsg: "the download failed: yt-dlp gave no reason"},
		{name: "playlist", err: goutubedl.ErrNotASingleEntry, wantCode: events.CodeUnavailable},
		{name: "yt-dlp missing", err: &exec.Error{Name: "yt-dlp", Err: exec.ErrNotFound}, wantCode: events.CodeInternal},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := classify(context.Background(), tc.err, tc.msg)
			var f *events.Failure
			if !errors.As(err, &f) || f.Code != tc.wantCode {
				t.Fatalf("classify = %v; want code %s", err, tc.wantCode)
			}
			if tc.wantMsg != "" && f.Message != tc.wantMsg {
				t.Fatalf("message\n got %q\nwant %q", f.Message, tc.wantMsg)
			}
			if strings.Contains(f.Message, "please report") || strings.Contains(f.Message, "github.com") {
				t.Fatalf("message %q keeps yt-dlp's noise", f.Message)
			}
		})
	}
	t.Run("cancelled context wins", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := classify(ctx, errors.New("signal: killed"), "Video unavailable")
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("classify = %v; want context.Canceled", err)
		}
		var f *events.Failure
		if errors.As(err, &f) {
			t.Fatalf("classify = %v; a cancelled fetch is not the source's failure", err)
		}
	})
}

func TestAdmit(t *testing.T) {
	tests := []struct {
		name     string
		info     goutubedl.Info
		wantCode events.Code
	}{
		{name: "unknown duration", info: goutubedl.Info{}},
		{name: "short", info: goutubedl.Info{Duration: 200}},
		{name: "exactly the limit", info: goutubedl.Info{Duration: 3600}},
		{name: "too long", info: goutubedl.Info{Duration: 3600.5}, wantCode: events.CodeUnavailable},
		{name: "live", info: goutubedl.Info{IsLive: true}, wantCode: events.CodeUnavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := admit(tc.info, time.Hour)
			if tc.wantCode == "" {
				if err != nil {
					t.Fatalf("admit = %v; want nil", err)
				}
				return
			}
			var f *events.Failure
			if !errors.As(err, &f) || f.Code != tc.wantCode {
				t.Fatalf("admit = %v; want %s", err, tc.wantCode)
			}
		})
	}
}

func TestExtension(t *testing.T) {
	info := goutubedl.Info{
		Format:  goutubedl.Format{Ext: "webm"},
		Formats: []goutubedl.Format{{FormatID: "140", Ext: "m4a"}, {FormatID: "251", Ext: "webm"}},
	}
	tests := []struct {
		name     string
		info     goutubedl.Info
		formatID string
		want     string
	}{
		{name: "chosen format", info: info, formatID: "140", want: "m4a"},
		{name: "unknown format falls back to info", info: info, formatID: "999", want: "webm"},
		{name: "no format", info: info, want: "webm"},
		{name: "nothing known", info: goutubedl.Info{}, want: "bin"},
		{name: "sanitized", info: goutubedl.Info{Format: goutubedl.Format{Ext: "../M4A"}}, want: "m4a"},
		{name: "nothing left", info: goutubedl.Info{Format: goutubedl.Format{Ext: "/.."}}, want: "bin"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := extension(tc.info, tc.formatID); got != tc.want {
				t.Fatalf("extension = %q; want %q", got, tc.want)
			}
		})
	}
}

// TestProcessStderr feeds yt-dlp's stderr in odd pieces and checks what is
// parsed: the format, the last error, and progress throttled to one per
// progressEvery.
func TestProcessStderr(t *testing.T) {
	var sent []float64
	p := newProcess(func(pct float64) { sent = append(sent, pct) })
	clock := time.Unix(0, 0)
	p.now = func() time.Time { return clock }
	cmd := exec.Command("yt-dlp", "--newline", "--output", "-")
	w := p.attach(cmd)
	if want := []string{"yt-dlp", "--ignore-config", "--newline", "--output", "-"}; !slices.Equal(cmd.Args, want) {
		t.Fatalf("args %q; want %q", cmd.Args, want)
	}
	write := func(s string) {
		if _, err := w.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	write("[info] dQw4w9WgXcQ: Downloading 1 format(s): 25")
	write("1\n[download] Destination: -\n[download]   0.0% of    8.24MiB at  Unknown B/s ETA Unknown\n")
	write("[download]  12.5% of 8MiB\r[download]  20.0% of 8MiB\n") // within 250 ms: dropped
	clock = clock.Add(progressEvery)
	write("[download]  42.1% of    8.24MiB at  10MiB/s ETA 00:01\n")
	clock = clock.Add(time.Second)
	write("[download] 100% of    8.24MiB in 00:00:01 at 8MiB/s\n")
	write("ERROR: unable to write data: [Errno 32] Broken pipe\n")
	if want := []float64{0, 42.1, 100}; !slices.Equal(sent, want) {
		t.Fatalf("progress %v; want %v", sent, want)
	}
	_, formatID, lastErr, _ := p.state()
	if formatID != "251" || lastErr != "unable to write data: [Errno 32] Broken pipe" {
		t.Fatalf("format %q, last error %q", formatID, lastErr)
	}

	// An error before any download line: goutubedl stops reading, so the
	// tee must stop exec copying instead of blocking yt-dlp's exit.
	p2 := newProcess(func(float64) {})
	w2 := p2.attach(exec.Command("yt-dlp", "--output", "-"))
	if _, err := w2.Write([]byte("[info] x: Downloading 1 format(s): 0\nERROR: Did not get any data blocks\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := w2.Write([]byte("more\n")); !errors.Is(err, errStopTee) {
		t.Fatalf("write after the error = %v; want errStopTee", err)
	}
	// The metadata run's stderr is read whole by goutubedl: never stopped.
	p3 := newProcess(func(float64) {})
	w3 := p3.attach(exec.Command("yt-dlp", "--dump-single-json"))
	for range 2 {
		if _, err := w3.Write([]byte("ERROR: x\n")); err != nil {
			t.Fatalf("metadata run write: %v", err)
		}
	}
}

// TestAudioReader checks the end of a download: a clean exit with bytes is
// EOF; an empty one or a failed exit is an error the store sees before it
// keeps anything.
func TestAudioReader(t *testing.T) {
	exited := func(name string) *exec.Cmd {
		cmd := exec.Command(name)
		_ = cmd.Run()
		return cmd
	}
	tests := []struct {
		name     string
		body     string
		prog     string // "true" or "false": how yt-dlp exited
		lastErr  string
		wantCode events.Code // empty: success
	}{
		{name: "complete", body: "audio", prog: "true"},
		{name: "empty", body: "", prog: "true", wantCode: events.CodeEmptyAudio},
		{name: "failed mid-way", body: "aud", prog: "false", lastErr: "HTTP Error 404: Not Found", wantCode: events.CodeNotFound},
		{name: "failed without a reason", body: "aud", prog: "false", wantCode: events.CodeDownloadFailed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newProcess(func(float64) {})
			p.cmd, p.lastErr = exited(tc.prog), tc.lastErr
			r := &audioReader{ctx: context.Background(), r: iotest.OneByteReader(strings.NewReader(tc.body)), proc: p}
			got, err := io.ReadAll(r)
			if tc.wantCode == "" {
				if err != nil || string(got) != tc.body {
					t.Fatalf("read %q, %v; want %q", got, err, tc.body)
				}
				return
			}
			var f *events.Failure
			if !errors.As(err, &f) || f.Code != tc.wantCode {
				t.Fatalf("read error %v; want %s", err, tc.wantCode)
			}
		})
	}
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		r := &audioReader{ctx: ctx, r: strings.NewReader("audio"), proc: newProcess(func(float64) {})}
		if _, err := io.ReadAll(r); !errors.Is(err, context.Canceled) {
			t.Fatalf("read error %v; want context.Canceled", err)
		}
	})
}
