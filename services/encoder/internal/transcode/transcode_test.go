package transcode

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/butakero/butakero/platform/testkit/audiofixture"
	"github.com/butakero/butakero/services/encoder/dcafile"
)

func TestProbeAndEncode(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name       string
		spec       audiofixture.Spec
		unreadable bool
	}{
		{"m4a faststart", audiofixture.M4A("a.m4a", 3*time.Second), false},
		{"m4a index at end", audiofixture.Spec{Name: "b.m4a", Duration: 2 * time.Second, Args: []string{"-c:a", "aac"}}, false},
		{"mp3", audiofixture.MP3("a.mp3", 2*time.Second), false},
		{"webm opus", audiofixture.WebMOpus("a.webm", 2*time.Second), false},
		{"ogg vorbis", audiofixture.OggVorbis("a.ogg", 2*time.Second), false},
		{"wav", audiofixture.WAV("a.wav", 2*time.Second), false},
		{"mono 22 kHz mp3", audiofixture.Mono22k("m.mp3", 2*time.Second), false},
		{"mp4 with video", audiofixture.MP4Video("v.mp4", 2*time.Second), false},
		{"video only", audiofixture.Spec{Name: "novoice.mp4", Duration: time.Second, Video: true, Args: []string{"-map", "1:v", "-c:v", "libx264", "-preset", "ultrafast"}}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := audiofixture.Make(t, dir, tc.spec)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			dur, err := Probe(ctx, path)
			if err != nil {
				t.Fatalf("Probe: %v", err)
			}
			if diff := (dur - tc.spec.Duration).Abs(); diff > 30*time.Millisecond {
				t.Fatalf("Probe = %s, fixture lasts %s", dur, tc.spec.Duration)
			}
			var buf bytes.Buffer
			var calls int64
			res, err := Encode(ctx, path, Options{BitrateKbps: 64, Title: tc.name, Progress: func(int64) { calls++ }}, &buf)
			if tc.unreadable {
				var u *Unreadable
				if !errors.As(err, &u) || !errors.Is(err, ErrUnreadable) {
					t.Fatalf("Encode err = %v, want *Unreadable", err)
				}
				if strings.Contains(u.Message, path) || strings.Contains(u.Message, filepath.Base(path)) {
					t.Fatalf("message shows the input path: %q", u.Message)
				}
				t.Logf("message: %q", u.Message)
				return
			}
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if calls != res.Frames || res.Size != int64(buf.Len()) {
				t.Fatalf("progress calls %d, frames %d, size %d, wrote %d", calls, res.Frames, res.Size, buf.Len())
			}
			info, err := dcafile.Parse(&buf)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if info.Frames != res.Frames || info.Metadata.SongInfo.Title != tc.name {
				t.Fatalf("parsed %d frames titled %q, encoded %d", info.Frames, info.Metadata.SongInfo.Title, res.Frames)
			}
			t.Logf("source %s, %d frames", dur, info.Frames)
			// The frames must cover the source: within 1% and one frame
			// either way for these clean fixtures.
			if diff := (info.Duration - dur).Abs(); diff > dur/100+FrameDuration {
				t.Fatalf("frames cover %s, source lasts %s", info.Duration, dur)
			}
		})
	}
}

func TestUnreadableInput(t *testing.T) {
	dir := t.TempDir()
	random := make([]byte, 64<<10)
	rand.New(rand.NewSource(1)).Read(random)
	cases := []struct {
		name string
		body []byte
	}{
		{"random bytes", random},
		{"empty", nil},
		{"text", []byte("<html>not found</html>")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := audiofixture.Write(t, dir, strings.ReplaceAll(tc.name, " ", "_")+".m4a", tc.body)
			ctx := context.Background()
			_, perr := Probe(ctx, path)
			_, eerr := Encode(ctx, path, Options{BitrateKbps: 64}, io.Discard)
			for which, err := range map[string]error{"Probe": perr, "Encode": eerr} {
				var u *Unreadable
				if !errors.As(err, &u) {
					t.Fatalf("%s err = %v, want *Unreadable", which, err)
				}
				if strings.Contains(u.Message, dir) || strings.Contains(u.Message, filepath.Base(path)) || strings.Contains(u.Message, "0x") {
					t.Fatalf("%s message leaks details: %q", which, u.Message)
				}
			}
		})
	}
}

// TestPlaylistRefused: a file that names other files (an HLS playlist
// whose segment is a media file on the encoder's host) is not audio, even
// though ffmpeg would read it: nothing of the other file is encoded.
func TestPlaylistRefused(t *testing.T) {
	dir := t.TempDir()
	local := filepath.Join(dir, "local.ts")
	audiofixture.Make(t, dir, audiofixture.Spec{Name: "local.ts", Duration: 2 * time.Second, Args: []string{"-c:a", "aac", "-f", "mpegts"}})
	playlist := "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nfile://" + local + "\n#EXT-X-ENDLIST\n"
	path := audiofixture.Write(t, dir, "list.m4a", []byte(playlist))
	_, err := Probe(context.Background(), path)
	var u *Unreadable
	if !errors.As(err, &u) || !strings.Contains(u.Message, "hls") {
		t.Fatalf("Probe of an HLS playlist naming a local file: %v, want *Unreadable naming hls", err)
	}
	if strings.Contains(u.Message, dir) {
		t.Errorf("message leaks a path: %q", u.Message)
	}
}

// TestCancelStopsFFmpeg cancels an encode after its first frame and checks
// that Encode returns at once and no ffmpeg child process is left.
func TestCancelStopsFFmpeg(t *testing.T) {
	path := audiofixture.Make(t, t.TempDir(), audiofixture.WAV("long.wav", 60*time.Second))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	var frames int64
	res, err := Encode(ctx, path, Options{BitrateKbps: 96, Progress: func(n int64) {
		frames = n
		if n == 5 {
			cancel()
		}
	}}, io.Discard)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if res.Frames >= 3000 {
		t.Fatalf("encoded all %d frames despite the cancel", res.Frames)
	}
	if kids := childProcesses(t, "ffmpeg"); len(kids) > 0 {
		t.Fatalf("ffmpeg children left after cancel: %v", kids)
	}
	t.Logf("stopped after %d frames in %s", frames, time.Since(start))
}

// TestWriteErrorStopsFFmpeg: a failing writer (a blob store that gave up)
// ends the encode with its error and kills ffmpeg.
func TestWriteErrorStopsFFmpeg(t *testing.T) {
	path := audiofixture.Make(t, t.TempDir(), audiofixture.WAV("long.wav", 30*time.Second))
	boom := errors.New("store gone")
	w := &failAfter{n: 10 << 10, err: boom}
	_, err := Encode(context.Background(), path, Options{BitrateKbps: 96}, w)
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want %v", err, boom)
	}
	if kids := childProcesses(t, "ffmpeg"); len(kids) > 0 {
		t.Fatalf("ffmpeg children left: %v", kids)
	}
}

// TestEncodeMemory encodes a minute of stereo WAV (11 MB) and checks that
// the live heap never grows by more than a fraction of it: the input is read
// by ffmpeg from the file and frames go straight to the writer. The GC runs
// eagerly meanwhile so that HeapAlloc tracks live memory, not garbage.
func TestEncodeMemory(t *testing.T) {
	spec := audiofixture.WAV("minute.wav", 60*time.Second)
	spec.Args = append(spec.Args, "-ac", "2")
	path := audiofixture.Make(t, t.TempDir(), spec)
	defer debug.SetGCPercent(debug.SetGCPercent(5))
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc

	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > peak.Load() {
				peak.Store(ms.HeapAlloc)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	var out countingWriter
	res, err := Encode(context.Background(), path, Options{BitrateKbps: 96}, &out)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	growth := int64(peak.Load()) - int64(base)
	t.Logf("input %d bytes, DCA %d bytes, %d frames, peak heap growth %d bytes", st.Size(), out.n, res.Frames, growth)
	if growth > st.Size()/4 {
		t.Fatalf("heap grew by %d bytes encoding a %d-byte file: the encode buffers its input", growth, st.Size())
	}
}

func TestCleanMessage(t *testing.T) {
	path := "/tmp/butakero-encode-123.m4a"
	cases := []struct{ name, in, want string }{
		{"banner and error", "ffmpeg version 5.1\n  built with gcc\n  configuration: --x\n[mov,mp4,m4a @ 0x55d0c0a1b2c0] moov atom not found\n" + path + ": Invalid data found when processing input\n",
			"moov atom not found; input: Invalid data found when processing input"},
		{"stream listing skipped", "Input #0, mp3, from 'x':\n  Duration: 00:00:01\n    Stream #0:0: Audio\nOutput #0, ogg, to 'pipe:1':\nStream mapping:\nPress [q] to stop\n", ""},
		{"repeats collapsed, last three kept", "a\nb\nb\nc\nd\n", "b; c; d"},
		{"base name replaced", "butakero-encode-123.m4a: No such file\n", "input: No such file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := CleanMessage(tc.in, path); got != tc.want {
				t.Fatalf("CleanMessage = %q, want %q", got, tc.want)
			}
		})
	}
}

type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

type failAfter struct {
	n   int
	err error
}

func (f *failAfter) Write(p []byte) (int, error) {
	if f.n -= len(p); f.n < 0 {
		return 0, f.err
	}
	return len(p), nil
}

// childProcesses lists this process's live children running name.
func childProcesses(t *testing.T, name string) []string {
	t.Helper()
	self := strconv.Itoa(os.Getpid())
	dirs, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range dirs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // gone meanwhile
		}
		s := string(b)
		open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || close < open {
			continue
		}
		fields := strings.Fields(s[close+1:])
		// fields[0] is the state, fields[1] the parent pid.
		if len(fields) > 1 && fields[1] == self && s[open+1:close] == name {
			out = append(out, p+" state "+fields[0])
		}
	}
	return out
}
