package fetcher

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/runtime/config"
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
		{name: "no suitable extractor (YouTube extractor only)", msg: "No suitable extractor (Youtube) found for URL http://127.0.0.1:9/x.m4a",
			wantCode: events.CodeInvalidInput, wantMsg: "the URL is not one of this song's source"},
		{name: "video unavailable", msg: "[youtube] dQw4w9WgXcQ: Video unavailable", wantCode: events.CodeNotFound,
			wantMsg: "no audio was found at this URL: Video unavailable"},
		{name: "private", msg: "[youtube] dQw4w9WgXcQ: Private video. Sign in if you've been granted access to this video",
			wantCode: events.CodeUnavailable},
		{name: "age gate", msg: "[youtube] x: Sign in to confirm your age. This video may be inappropriate for some users.",
			wantCode: events.CodeSignInRequired},
		{name: "upcoming live", msg: "[youtube] x: This live event will begin in 3 hours.", wantCode: events.CodeUnavailable},
		{name: "empty", err: errors.New("Did not get any data blocks"), wantCode: events.CodeEmptyAudio},
		{name: "connection refused is transient", msg: "Unable to download webpage: <urlopen error [Errno 111] Connection refused> (caused by URLError(ConnectionRefusedError(111, 'Connection refused')))",
			wantCode: events.CodeNetwork, wantMsg: "the network failed during the download: Unable to download webpage: <urlopen error [Errno 111] Connection refused>"},
		{name: "internal address hidden", msg: "Unable to download webpage: 192.168.1.20:9000 timed out",
			wantCode: events.CodeNetwork, wantMsg: "the network failed during the download: Unable to download webpage: <address> timed out"},
		{name: "ipv6 address hidden", msg: "could not connect to [fd00::1]:80",
			wantCode: events.CodeDownloadFailed, wantMsg: "the download failed: could not connect to <address>"},
		// yt-dlp's own texts for YouTube's refusals and failures.
		{name: "bot check", msg: "[youtube] dQw4w9WgXcQ: Sign in to confirm you’re not a bot. This helps protect our community. Learn more",
			wantCode: events.CodeSignInRequired, wantMsg: "YouTube refused the download: it asks to sign in to confirm this is not a bot"},
		{name: "bot check, newer yt-dlp", msg: "[youtube] dQw4w9WgXcQ: Sign in to confirm you're not a bot. Use --cookies-from-browser or --cookies for the authentication. See  https://github.com/yt-dlp/yt-dlp/wiki/FAQ#how-do-i-pass-cookies-to-yt-dlp  for how to manually pass cookies",
			wantCode: events.CodeSignInRequired, wantMsg: "YouTube refused the download: it asks to sign in to confirm this is not a bot"},
		{name: "private, as unavailable", msg: "[youtube] dQw4w9WgXcQ: Video unavailable. This video is private",
			wantCode: events.CodeUnavailable, wantMsg: "the video is private"},
		{name: "removed by the uploader", msg: "[youtube] dQw4w9WgXcQ: Video unavailable. This video has been removed by the uploader",
			wantCode: events.CodeUnavailable, wantMsg: "the video cannot be fetched: Video unavailable. This video has been removed by the uploader"},
		{name: "geo blocked", msg: "[youtube] dQw4w9WgXcQ: Video unavailable. The uploader has not made this video available in your country",
			wantCode: events.CodeUnavailable},
		{name: "members only", msg: "[youtube] dQw4w9WgXcQ: Join this channel to get access to members-only content like this video, and other exclusive perks.",
			wantCode: events.CodeUnavailable},
		{name: "rate limited page", msg: "[youtube] dQw4w9WgXcQ: Unable to download webpage: HTTP Error 429: Too Many Requests (caused by <HTTPError 429: 'Too Many Requests'>); please report this issue on  https://github.com/yt-dlp/yt-dlp/issues?q= , filling out the appropriate issue template. Confirm you are on the latest version using  yt-dlp -U",
			wantCode: events.CodeRateLimited, wantMsg: "the source is limiting requests (rate limited); the download will be tried again"},
		{name: "rate limited data", msg: "unable to download video data: HTTP Error 429: Too Many Requests",
			wantCode: events.CodeRateLimited, wantMsg: "the source is limiting requests (rate limited); the download will be tried again"},
		{name: "content not available, try later", msg: "[youtube] dQw4w9WgXcQ: This content isn't available, try again later.",
			wantCode: events.CodeRateLimited, wantMsg: "the source is limiting requests (rate limited); the download will be tried again"},
		{name: "name resolution", msg: "[youtube] dQw4w9WgXcQ: Unable to download webpage: <urlopen error [Errno -3] Temporary failure in name resolution> (caused by URLError(gaierror(-3, 'Temporary failure in name resolution')))",
			wantCode: events.CodeNetwork, wantMsg: "the network failed during the download: Unable to download webpage: <urlopen error [Errno -3] Temporary failure in name resolution>"},
		{name: "read timed out", msg: "unable to download video data: <urlopen error The read operation timed out>",
			wantCode: events.CodeNetwork},
		{name: "connection reset", msg: "[youtube] dQw4w9WgXcQ: Unable to download API page: [Errno 104] Connection reset by peer (caused by ConnectionResetError(104, 'Connection reset by peer'))",
			wantCode: events.CodeNetwork},
		{name: "forbidden stream", msg: "unable to download video data: HTTP Error 403: Forbidden",
			wantCode: events.CodeDownloadFailed, wantMsg: "the download failed: unable to download video data: HTTP Error 403: Forbidden"},
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
		info     videoInfo
		wantCode events.Code
		wantMsg  string
	}{
		{name: "unknown duration", info: videoInfo{}},
		{name: "short", info: videoInfo{Duration: 200}},
		{name: "exactly the limit", info: videoInfo{Duration: 3600}},
		{name: "was live", info: videoInfo{Duration: 200, LiveStatus: "was_live"}},
		{name: "too long", info: videoInfo{Duration: 3600.5}, wantCode: events.CodeUnavailable,
			wantMsg: "the song lasts 1h0m1s, longer than the 1h0m0s limit"},
		{name: "live", info: videoInfo{IsLive: true}, wantCode: events.CodeUnavailable, wantMsg: "live streams cannot be fetched"},
		{name: "live by status", info: videoInfo{LiveStatus: "is_live"}, wantCode: events.CodeUnavailable, wantMsg: "live streams cannot be fetched"},
		{name: "upcoming", info: videoInfo{LiveStatus: "is_upcoming"}, wantCode: events.CodeUnavailable,
			wantMsg: "the live stream or premiere has not started yet"},
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
			if !errors.As(err, &f) || f.Code != tc.wantCode || f.Message != tc.wantMsg {
				t.Fatalf("admit = %v; want %s %q", err, tc.wantCode, tc.wantMsg)
			}
		})
	}
	// A refusal that the admission info cannot explain still names the limit.
	var f *events.Failure
	if err := refused(videoInfo{}, time.Hour); !errors.As(err, &f) || f.Code != events.CodeUnavailable ||
		f.Message != "the video is live or lasts longer than the 1h0m0s limit" {
		t.Fatalf("refused = %v", err)
	}
}

func TestMatchFilter(t *testing.T) {
	for _, tc := range []struct {
		max  time.Duration
		want string
	}{
		{3 * time.Hour, "!is_live & duration <=? 10800"},
		{90*time.Second + 500*time.Millisecond, "!is_live & duration <=? 90"},
		{0, "!is_live"},
	} {
		if got := matchFilter(tc.max); got != tc.want {
			t.Errorf("matchFilter(%s) = %q; want %q", tc.max, got, tc.want)
		}
	}
	// The YouTube extractor alone, always: the generic one is never on.
	want := []string{"--match-filter", "!is_live & duration <=? 3600",
		"--print-to-file", admissionTemplate, "/tmp/100%%/" + admissionFile,
		"--print-to-file", infoTemplate, "/tmp/100%%/" + infoFile,
		"--use-extractors", "youtube"}
	if args := fetchArgs("/tmp/100%", time.Hour); !slices.Equal(args, want) {
		t.Errorf("fetchArgs = %q; want %q", args, want)
	}
	// YouTube's JavaScript challenges: the runtimes and components the
	// configuration names (the image's), nothing by default.
	if args := jsArgs(config.Config{}); len(args) != 0 {
		t.Errorf("jsArgs by default = %q; want none", args)
	}
	js := jsArgs(config.Config{YTDLPJSRuntimes: []string{"quickjs"}, YTDLPRemoteComps: []string{"ejs:github"}})
	if want := []string{"--js-runtimes", "quickjs", "--remote-components", "ejs:github"}; !slices.Equal(js, want) {
		t.Errorf("jsArgs = %q; want %q", js, want)
	}
}

func TestReadInfo(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "info.json")
	if _, ok, err := readInfo(path); ok || err != nil {
		t.Fatalf("missing file: ok %v, err %v; want neither", ok, err)
	}
	// yt-dlp appends one object a line; the last one wins.
	body := `{"id": "old"}` + "\n" + `{"id": "x", "title": "T", "duration": 3.5, "ext": "m4a", "format_id": "140", "is_live": null}` + "\n"
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	got, ok, err := readInfo(path)
	want := videoInfo{ID: "x", Title: "T", Duration: 3.5, Ext: "m4a", FormatID: "140"}
	if err != nil || !ok || got != want {
		t.Fatalf("readInfo = %+v, %v, %v; want %+v", got, ok, err, want)
	}
	if err := os.WriteFile(path, []byte("NA\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := readInfo(path); err == nil {
		t.Fatal("readInfo of a non-JSON line succeeded")
	}
}

func TestExtension(t *testing.T) {
	tests := []struct {
		name string
		info videoInfo
		want string
	}{
		{name: "chosen format", info: videoInfo{Ext: "m4a", FormatID: "140"}, want: "m4a"},
		{name: "upper case", info: videoInfo{Ext: "WebM"}, want: "webm"},
		{name: "nothing known", info: videoInfo{}, want: "bin"},
		{name: "sanitized", info: videoInfo{Ext: "../M4A"}, want: "m4a"},
		{name: "nothing left", info: videoInfo{Ext: "/.."}, want: "bin"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := extension(tc.info); got != tc.want {
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
	write := func(w io.Writer, s string) {
		t.Helper()
		if _, err := w.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	write(w, "[info] dQw4w9WgXcQ: Downloading 1 format(s): 25")
	write(w, "1\n[download] Destination: -\n[download]   0.0% of    8.24MiB at  Unknown B/s ETA Unknown\n")
	write(w, "[download]  12.5% of 8MiB\r[download]  20.0% of 8MiB\n") // within 250 ms: dropped
	clock = clock.Add(progressEvery)
	write(w, "[download]  42.1% of    8.24MiB at  10MiB/s ETA 00:01\n")
	clock = clock.Add(time.Second)
	write(w, "[download] 100% of    8.24MiB in 00:00:01 at 8MiB/s\n")
	write(w, "ERROR: unable to write data: [Errno 32] Broken pipe\n")
	if want := []float64{0, 42.1, 100}; !slices.Equal(sent, want) {
		t.Fatalf("progress %v; want %v", sent, want)
	}
	_, formatID, lastErr, _ := p.state()
	if formatID != "251" || lastErr != "unable to write data: [Errno 32] Broken pipe" {
		t.Fatalf("format %q, last error %q", formatID, lastErr)
	}

	// The match filter's refusal and a playlist are noticed.
	p4 := newProcess(func(float64) {}, "--match-filter", "!is_live")
	cmd4 := exec.Command("yt-dlp", "--output", "-", "--batch-file", "-")
	w4 := p4.attach(cmd4)
	if want := []string{"yt-dlp", "--ignore-config", "--output", "-", "--batch-file", "-", "--match-filter", "!is_live"}; !slices.Equal(cmd4.Args, want) {
		t.Fatalf("args %q; want %q", cmd4.Args, want)
	}
	if f, pl := p4.refusal(); f || pl {
		t.Fatal("refusal before any line")
	}
	write(w4, "[download] Too Long does not pass filter (!is_live & duration <=? 3600), skipping ..\n")
	if f, pl := p4.refusal(); !f || pl {
		t.Fatalf("filtered %v, playlist %v after the filter's line; want true, false", f, pl)
	}
	p4.attach(exec.Command("yt-dlp", "--output", "-"))
	write(w4, "[download] Downloading playlist: Two\n[download] Downloading item 1 of 2\n")
	if f, pl := p4.refusal(); f || !pl {
		t.Fatalf("filtered %v, playlist %v after a playlist line; want false, true", f, pl)
	}

	// An error before any download line: goutubedl stops reading, so the
	// tee must stop exec copying instead of blocking yt-dlp's exit.
	p2 := newProcess(func(float64) {})
	w2 := p2.attach(exec.Command("yt-dlp", "--output", "-"))
	write(w2, "[info] x: Downloading 1 format(s): 0\nERROR: Did not get any data blocks\n")
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
