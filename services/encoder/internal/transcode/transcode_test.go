package transcode

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/butakero/butakero/platform/media/oggopus"
	"github.com/butakero/butakero/platform/testkit/audiofixture"
	"github.com/butakero/butakero/platform/testkit/childproc"
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
			res, err := Encode(ctx, path, Options{BitrateKbps: 64, Title: tc.name, Progress: func(int64) { calls++ }}, writerOutput{&buf})
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
			_, eerr := Encode(ctx, path, Options{BitrateKbps: 64}, writerOutput{io.Discard})
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
	}}, writerOutput{io.Discard})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if res.Frames >= 3000 {
		t.Fatalf("encoded all %d frames despite the cancel", res.Frames)
	}
	if kids := childproc.Named("ffmpeg"); len(kids) > 0 {
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
	_, err := Encode(context.Background(), path, Options{BitrateKbps: 96}, writerOutput{w})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want %v", err, boom)
	}
	if kids := childproc.Named("ffmpeg"); len(kids) > 0 {
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
	res, err := Encode(context.Background(), path, Options{BitrateKbps: 96}, writerOutput{&out})
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

// packetsOf reads every packet of a DCA.
func packetsOf(t *testing.T, dca []byte) [][]byte {
	t.Helper()
	r, err := dcafile.NewReader(bytes.NewReader(dca))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for {
		p, err := r.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, append([]byte(nil), p...))
	}
}

// copiedPackets is what ffmpeg copies out of the source, packet by packet:
// size and MD5 of each, from its framemd5 muxer.
func copiedPackets(t *testing.T, path string) []string {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-i", path, "-map", "0:a:0", "-c:a", "copy", "-f", "framemd5", "-").Output()
	if err != nil {
		t.Fatalf("ffmpeg framemd5: %v", err)
	}
	var sums []string
	for _, l := range strings.Split(string(out), "\n") {
		if l == "" || l[0] == '#' {
			continue
		}
		f := strings.Split(l, ",")
		sums = append(sums, strings.TrimSpace(f[4])+" "+strings.TrimSpace(f[5]))
	}
	return sums
}

func TestPassthroughOrTranscode(t *testing.T) {
	dir := t.TempDir()
	opus20 := audiofixture.Spec{Name: "opus20.webm", Duration: 4 * time.Second, Args: []string{"-ac", "2", "-c:a", "libopus", "-b:a", "128k", "-frame_duration", "20"}}
	cases := []struct {
		name   string
		spec   audiofixture.Spec
		off    bool
		maxKb  int
		mode   string
		reason string
	}{
		{"webm opus in 20 ms frames", opus20, false, 192, ModePassthrough, "20 ms"},
		{"passthrough off", opus20, true, 192, ModeTranscode, "off"},
		{"over the bitrate cap", opus20, false, 64, ModeTranscode, "cap"},
		{"webm opus in 60 ms frames", audiofixture.Spec{Name: "opus60.webm", Duration: 4 * time.Second, Args: []string{"-ac", "2", "-c:a", "libopus", "-frame_duration", "60"}}, false, 192, ModeTranscode, "60.0 ms"},
		{"ogg opus at 24 kHz", audiofixture.Spec{Name: "opus24.ogg", Duration: 4 * time.Second, Args: []string{"-c:a", "libopus", "-ar", "24000"}}, false, 192, ModeTranscode, "24000 Hz"},
		{"aac", audiofixture.M4A("aac.m4a", 4*time.Second), false, 192, ModeTranscode, "aac"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.spec.Name)
			if _, err := os.Stat(path); err != nil {
				path = audiofixture.Make(t, dir, tc.spec)
			}
			ctx := context.Background()
			res, dca := inspectAndEncode(t, ctx, path, Options{BitrateKbps: 96, Title: tc.name, Passthrough: !tc.off, MaxPassthroughKbps: tc.maxKb})
			if res.Mode != tc.mode || !strings.Contains(res.Reason, tc.reason) {
				t.Fatalf("mode %q (%s), want %q with %q", res.Mode, res.Reason, tc.mode, tc.reason)
			}
			info, err := dcafile.Parse(bytes.NewReader(dca))
			if err != nil {
				t.Fatal(err)
			}
			b := info.Metadata.Butakero
			if b == nil || b.Mode != tc.mode || b.Reason != res.Reason || b.Run != "test" {
				t.Fatalf("DCA metadata %+v", b)
			}
			// A transcode measures in its own run; a copy is not
			// measured (the encoder measures the stored DCA later).
			if measured := res.Loudness.LUFS != nil && res.Loudness.TruePeakDB != nil; measured != (tc.mode == ModeTranscode) ||
				(tc.mode == ModePassthrough && res.Loudness != (Loudness{})) {
				t.Fatalf("%s: loudness %s", tc.mode, show(res.Loudness))
			}
			if info.Size != res.Size || info.Frames != res.Frames {
				t.Fatalf("DCA of %d bytes, %d frames; Result says %d, %d", info.Size, info.Frames, res.Size, res.Frames)
			}
			if got := time.Duration(b.Samples) * time.Second / 48000; (got - tc.spec.Duration).Abs() > 20*time.Millisecond {
				t.Errorf("true length %s (%s), the fixture lasts %s", got, tc.mode, tc.spec.Duration)
			}
			if tc.mode != ModePassthrough {
				return
			}
			want := copiedPackets(t, path)
			got := packetsOf(t, dca)
			if len(got) != len(want) {
				t.Fatalf("DCA has %d packets, ffmpeg copies %d", len(got), len(want))
			}
			for i, p := range got {
				if s := fmt.Sprintf("%d %x", len(p), md5.Sum(p)); s != want[i] {
					t.Fatalf("packet %d: %s, ffmpeg copies %s", i, s, want[i])
				}
			}
		})
	}
}

// TestLoudnessTarget: fixtures 10 dB apart come out within 1 LU of the
// target, measured on the DCA's packets decoded again (one already at the
// target is copied: TestCopyAtTheTarget).
func TestLoudnessTarget(t *testing.T) {
	dir := t.TempDir()
	target := -14.0
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"quiet", []string{"-af", "volume=-12dB", "-c:a", "aac"}},
		{"loud", []string{"-af", "volume=-2dB", "-c:a", "aac"}},
		{"opus 20 ms", []string{"-af", "volume=-12dB", "-ac", "2", "-c:a", "libopus", "-frame_duration", "20"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ext := ".m4a"
			if strings.HasPrefix(tc.name, "opus") {
				ext = ".webm"
			}
			path := audiofixture.Make(t, dir, audiofixture.Spec{Name: strings.ReplaceAll(tc.name, " ", "_") + ext, Duration: 5 * time.Second, Args: tc.args})
			ctx := context.Background()
			before, err := Measure(ctx, path)
			if err != nil || before.LUFS == nil {
				t.Fatalf("Measure: %v %v", before, err)
			}
			res, dca := inspectAndEncode(t, ctx, path, Options{BitrateKbps: 96, Passthrough: true, MaxPassthroughKbps: 192, LoudnessTarget: &target})
			if res.Mode != ModeTranscode {
				t.Fatalf("a source at %.1f LUFS was %s (%s)", *before.LUFS, res.Mode, res.Reason)
			}
			ogg := filepath.Join(dir, tc.name+".ogg")
			f, err := os.Create(ogg)
			if err != nil {
				t.Fatal(err)
			}
			if err := oggopus.MuxDCA(f, bytes.NewReader(dca), 1); err != nil {
				t.Fatal(err)
			}
			f.Close()
			after, err := Measure(ctx, ogg)
			if err != nil || after.LUFS == nil {
				t.Fatalf("Measure the DCA: %v %v", after, err)
			}
			t.Logf("source %.1f LUFS, DCA %.1f LUFS (stored %.1f)", *before.LUFS, *after.LUFS, *res.Loudness.LUFS)
			if math.Abs(*after.LUFS-target) > 1 || math.Abs(*res.Loudness.LUFS-target) > 1 {
				t.Fatalf("DCA at %.1f LUFS (stored %.1f), target %.1f", *after.LUFS, *res.Loudness.LUFS, target)
			}
		})
	}
}

func TestPacketSamplesFromFFmpeg(t *testing.T) {
	// The TOC of every frame size libopus makes, read back.
	dir := t.TempDir()
	for _, ms := range []string{"2.5", "5", "10", "20", "40", "60"} {
		path := audiofixture.Make(t, dir, audiofixture.Spec{Name: "f" + ms + ".ogg", Duration: time.Second, Args: []string{"-c:a", "libopus", "-frame_duration", ms}})
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		r := &dcaOut{out: writerOutput{io.Discard}}
		err = r.read(f, true, nil)
		f.Close()
		want, _ := strconv.ParseFloat(ms, 64)
		var not20 *errNot20ms
		if ms == "20" && err != nil || ms != "20" && (!errors.As(err, &not20) || !strings.Contains(not20.reason, fmt.Sprintf("%.1f ms", want))) {
			t.Errorf("%s ms frames: %v", ms, err)
		}
	}
}

// writerOutput is an Output on one writer; a discarded DCA is dropped
// from a *bytes.Buffer.
type writerOutput struct{ w io.Writer }

func (o writerOutput) Begin() (io.Writer, string, error) { return o.w, "test", nil }

func (o writerOutput) Discard(error) {
	if b, ok := o.w.(*bytes.Buffer); ok {
		b.Reset()
	}
}

// TestMeasureIsOneFFmpegs: the loudness measured in two processes (one
// decodes, one measures) is what one ffmpeg running ebur128 on the file
// reports, for a mono AAC and for stereo Opus; and a copied DCA's packets,
// measured as a player decodes them (MeasureDCA, what the encoder does for
// a passthrough once it is stored), have the source's loudness.
func TestMeasureIsOneFFmpegs(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	for _, spec := range []audiofixture.Spec{
		{Name: "stereo.webm", Duration: 6 * time.Second, Args: []string{"-ac", "2", "-af", "volume=-6dB", "-c:a", "libopus", "-b:a", "128k", "-frame_duration", "20"}},
		{Name: "mono.m4a", Duration: 6 * time.Second, Args: []string{"-ac", "1", "-c:a", "aac"}},
	} {
		t.Run(spec.Name, func(t *testing.T) {
			path := audiofixture.Make(t, dir, spec)
			out, err := exec.Command("ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-i", path,
				"-map", "0:a:0", "-af", "ebur128=peak=true", "-f", "null", "-").CombinedOutput()
			if err != nil {
				t.Fatalf("ffmpeg: %v\n%s", err, out)
			}
			want := parseLoudness(string(out))
			if want.LUFS == nil || want.TruePeakDB == nil {
				t.Fatalf("ffmpeg's ebur128 measured nothing:\n%s", out)
			}
			same := func(what string, got Loudness) {
				t.Helper()
				if got.LUFS == nil || got.TruePeakDB == nil || *got.LUFS != *want.LUFS || *got.TruePeakDB != *want.TruePeakDB {
					t.Fatalf("%s measured %s, one ffmpeg says %s", what, show(got), show(want))
				}
			}
			got, err := Measure(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			same("Measure", got)
			res, dca := inspectAndEncode(t, ctx, path, Options{BitrateKbps: 96, Passthrough: true, MaxPassthroughKbps: 192})
			if res.Mode != ModePassthrough {
				return // measured as libopus gets it (stereo), not as the file is
			}
			if res.Loudness != (Loudness{}) {
				t.Fatalf("the copy was measured: %s", show(res.Loudness))
			}
			again, err := MeasureDCA(ctx, bytes.NewReader(dca))
			if err != nil {
				t.Fatal(err)
			}
			if again.LUFS == nil || again.TruePeakDB == nil || math.Abs(*again.LUFS-*want.LUFS) > 0.1 || math.Abs(*again.TruePeakDB-*want.TruePeakDB) > 0.1 {
				t.Fatalf("the copied DCA measures %s, its source %s", show(again), show(want))
			}
		})
	}
}

// inspectAndEncode inspects the file at path and encodes it with o, whose
// Source is the inspection's, into memory: the Result and the DCA.
func inspectAndEncode(t *testing.T, ctx context.Context, path string, o Options) (Result, []byte) {
	t.Helper()
	src, err := Inspect(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	o.Source = src
	var buf bytes.Buffer
	res, err := Encode(ctx, path, o, writerOutput{&buf})
	if err != nil {
		t.Fatal(err)
	}
	return res, buf.Bytes()
}

func show(l Loudness) string {
	f := func(v *float64) string {
		if v == nil {
			return "none"
		}
		return strconv.FormatFloat(*v, 'f', 1, 64)
	}
	return f(l.LUFS) + " LUFS, " + f(l.TruePeakDB) + " dBTP"
}

// TestMeasureDCAUnreadable: bytes that are no DCA are an error, not a
// loudness.
func TestMeasureDCAUnreadable(t *testing.T) {
	if _, err := MeasureDCA(context.Background(), strings.NewReader("DCA1 but not really")); err == nil {
		t.Fatal("MeasureDCA of garbage: no error")
	}
}

// TestCopyAtTheTarget: with LoudnessTarget set, a source within 1 LU of it
// is copied, and its loudness, measured before the first frame, is in the
// DCA's header as well as in Result.
func TestCopyAtTheTarget(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	path := audiofixture.Make(t, dir, audiofixture.Spec{Name: "at.webm", Duration: 4 * time.Second, Args: []string{"-ac", "2", "-c:a", "libopus", "-b:a", "128k", "-frame_duration", "20"}})
	l, err := Measure(ctx, path)
	if err != nil || l.LUFS == nil {
		t.Fatalf("Measure: %s %v", show(l), err)
	}
	target := *l.LUFS + 0.5
	res, dca := inspectAndEncode(t, ctx, path, Options{BitrateKbps: 96, Passthrough: true, MaxPassthroughKbps: 192, LoudnessTarget: &target})
	if res.Mode != ModePassthrough {
		t.Fatalf("a source 0.5 LU from the target was %s (%s)", res.Mode, res.Reason)
	}
	info, err := dcafile.Parse(bytes.NewReader(dca))
	if err != nil {
		t.Fatal(err)
	}
	b := info.Metadata.Butakero
	if b == nil || b.LoudnessLUFS == nil || b.TruePeakDB == nil || res.Loudness.LUFS == nil || res.Loudness.TruePeakDB == nil ||
		*b.LoudnessLUFS != *l.LUFS || *b.TruePeakDB != *l.TruePeakDB || *res.Loudness.LUFS != *l.LUFS {
		t.Fatalf("header %+v, Result %s; measured %s", b, show(res.Loudness), show(l))
	}
}
