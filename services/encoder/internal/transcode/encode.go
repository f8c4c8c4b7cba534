package transcode

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/butakero/butakero/platform/media/oggopus"
	"github.com/butakero/butakero/platform/runtime/procgroup"
	"github.com/butakero/butakero/platform/runtime/tracing"
	"github.com/butakero/butakero/services/encoder/dcafile"
	"github.com/jonas747/ogg"
	"go.opentelemetry.io/otel/attribute"
)

// The modes of an encode: the source's Opus packets copied, or the audio
// decoded and encoded again with libopus.
const (
	ModePassthrough = "passthrough"
	ModeTranscode   = "transcode"
)

// LoudnessTolerance is how far (in LU) a passthrough song may be from
// Options.LoudnessTarget and still be copied.
const LoudnessTolerance = 1.0

// Options configure Encode.
type Options struct {
	// BitrateKbps is the Opus bitrate of a transcode (8 to 128).
	BitrateKbps int
	// Title goes into the DCA metadata.
	Title string
	// Progress, when set, is called after every frame with the number of
	// frames read so far, on Encode's goroutine. It must be quick.
	Progress func(frames int64)
	// Source is what Inspect found of the file. Passthrough is considered
	// only for a source it says is 48 kHz Opus.
	Source Source
	// Passthrough allows copying the source's packets (OPUS_PASSTHROUGH=auto).
	Passthrough bool
	// MaxPassthroughKbps is the source bitrate above which the audio is
	// transcoded (PASSTHROUGH_MAX_KBPS); 0 means no cap.
	MaxPassthroughKbps int
	// LoudnessTarget, when set, is the integrated loudness (LUFS) a
	// transcode is normalised to; a source further than LoudnessTolerance
	// from it is transcoded rather than copied.
	LoudnessTarget *float64

	// known is the loudness of the DCA's audio when it is known before
	// the first frame (a copy of a source measured first): the header
	// then carries it.
	known *Loudness

	// Input, when set, is where ffmpeg reads the source instead of the
	// file at path: each ffmpeg run (a passthrough that turns into a
	// transcode runs two) opens it anew and reads it from its first
	// byte, on its standard input, as it comes.
	// Only a source ffmpeg can decode from a pipe will do (an MP4 with its
	// index first, Matroska); the caller closes what Input returns once
	// ffmpeg is done with it.
	Input func() (io.ReadCloser, error)
}

// Loudness is a song's EBU R128 measure, from ffmpeg's ebur128 filter.
// A field is nil when it is not finite (silence has no true peak).
type Loudness struct {
	// LUFS is the integrated loudness.
	LUFS *float64
	// TruePeakDB is the true peak in dBTP.
	TruePeakDB *float64
}

// Result describes a finished encode.
type Result struct {
	// Frames is the number of 20 ms frames written.
	Frames int64
	// Size is the number of DCA bytes written, header included.
	Size int64
	// Mode is ModePassthrough or ModeTranscode, and Reason says why.
	Mode, Reason string
	// PreSkip is the samples a decoder drops at the start (the OpusHead's).
	PreSkip int
	// Samples is the audio's true length at 48 kHz, after the pre-skip, as
	// the source's container states it (Source.Duration); 0 when unknown.
	Samples int64
	// Loudness is the DCA's audio: the encoded audio's (after any
	// normalisation) for a transcode, the source's for a passthrough
	// with LoudnessTarget set; empty for any other passthrough, which is
	// not measured.
	Loudness Loudness
	// Measured says that Loudness was measured (it may still be empty:
	// silence has none).
	Measured bool
}

// Duration is what the frames cover.
func (r Result) Duration() time.Duration { return time.Duration(r.Frames) * FrameDuration }

// decide is the mode Options allow before any packet is read, and why.
func decide(o Options) (mode, reason string) {
	s := o.Source
	switch {
	case !o.Passthrough:
		return ModeTranscode, "passthrough is off"
	case s.Codec != "opus":
		if s.Codec == "" {
			return ModeTranscode, "the source's codec is not known"
		}
		return ModeTranscode, "the source is " + s.Codec + ", not opus"
	case s.SampleRate != oggopus.SampleRate:
		return ModeTranscode, fmt.Sprintf("the source is opus at %d Hz, not 48000", s.SampleRate)
	case s.Channels != 1 && s.Channels != 2:
		return ModeTranscode, fmt.Sprintf("the source has %d channels", s.Channels)
	case o.MaxPassthroughKbps > 0 && s.BitrateKbps > o.MaxPassthroughKbps:
		return ModeTranscode, fmt.Sprintf("the source's %d kb/s is over the %d kb/s cap", s.BitrateKbps, o.MaxPassthroughKbps)
	}
	return ModePassthrough, "the source is 48 kHz opus in 20 ms frames"
}

// errNot20ms is how a passthrough run ends on a packet that is not a 20 ms
// frame: the song is transcoded instead.
type errNot20ms struct{ reason string }

func (e *errNot20ms) Error() string { return e.reason }

// Output is where Encode sends the DCA as it is made.
type Output interface {
	// Begin starts a DCA and returns where its bytes go (the header in one
	// Write, then each frame in one Write) and the id of this DCA's run,
	// which its metadata names.
	Begin() (w io.Writer, run string, err error)
	// Discard drops the DCA begun last: a passthrough that met a packet it
	// cannot copy is transcoded from the start instead, into a new Begin.
	Discard(reason error)
}

// Encode turns the media file at path into DCA1 on out: 48 kHz Opus in 20
// ms frames, copied from the source when Options and every packet allow
// (passthrough), else encoded by ffmpeg's libopus; the loudness measured by
// ffmpeg's ebur128 filter in the transcode's own run, and for a copy only
// with LoudnessTarget set (before it: the target decides the mode), else
// not at all (Result.Loudness empty: MeasureDCA measures the stored DCA
// later). ffmpeg writes Ogg, whose packets are read here; nothing of the
// source's container is parsed in Go.
//
// The DCA streams: its header goes out as soon as ffmpeg's OpusHead is
// read, each frame as soon as ffmpeg made it. So the header holds only what
// is known before the first frame: the mode and its reason, the pre-skip,
// the true length as the source's container states it (Source.Duration;
// a decoder trims the last frame to it), the run, and the loudness only
// when it is measured first (a copy with LoudnessTarget set). What is
// known only at the end, the loudness and the frames, is in Result. A passthrough run
// that meets a packet other than 20 ms discards its DCA (Output.Discard)
// and transcodes into a new one.
//
// It returns an *Unreadable error when ffmpeg fails or produces no frame.
// When ctx ends, ffmpeg is killed and ctx's error is returned. A write error
// from the output is returned as is. In every case the ffmpeg process is
// gone when Encode returns; what the output got is then whole only when
// the error is nil.
func Encode(ctx context.Context, path string, o Options, out Output) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	mode, reason := decide(o)
	var gain float64
	var before *Loudness
	if o.LoudnessTarget != nil {
		// The loudness must be known before the mode, and the gain of a
		// transcode: one decoding pass to measure it.
		l, err := Measure(ctx, path)
		if err != nil {
			return Result{}, err
		}
		before = &l
		if l.LUFS != nil {
			off := *l.LUFS - *o.LoudnessTarget
			if mode == ModePassthrough && math.Abs(off) > LoudnessTolerance {
				mode, reason = ModeTranscode, fmt.Sprintf("the source's %.1f LUFS is more than %.0f LU from the target %.1f", *l.LUFS, LoudnessTolerance, *o.LoudnessTarget)
			}
			gain = -off
		}
	}
	if mode == ModePassthrough {
		// Without LOUDNESS_TARGET a copy is not measured here: decoding
		// it would cost far more than the copy (see the encoder's
		// loudness.measured).
		o.known = before
		res, err := run(ctx, path, o, out, ModePassthrough, reason, 0, false)
		if err == nil {
			if before != nil {
				res.Loudness, res.Measured = *before, true
			}
			return res, nil
		}
		var not20 *errNot20ms
		if !errors.As(err, &not20) {
			return Result{}, err
		}
		out.Discard(err)
		reason = not20.reason
	}
	return run(ctx, path, o, out, ModeTranscode, reason, gain, true)
}

// Measure decodes the media file at path and returns its loudness.
func Measure(ctx context.Context, path string) (Loudness, error) {
	return measure(ctx, []string{"-i", path}, nil, path)
}

// MeasureDCA returns the loudness of the DCA1 file r holds, decoding its
// packets as a player does (muxed into Ogg Opus, oggopus.MuxDCA, with the
// DCA's pre-skip and length): for a stored DCA whose header does not say.
func MeasureDCA(ctx context.Context, r io.Reader) (Loudness, error) {
	pr, pw := io.Pipe()
	mux := make(chan error, 1)
	go func() {
		err := oggopus.MuxDCA(pw, r, 0)
		pw.CloseWithError(err)
		mux <- err
	}()
	l, err := measure(ctx, []string{"-f", "ogg", "-i", "pipe:0"}, pr, "")
	// ffmpeg is gone: unblock the mux if it still writes.
	pr.CloseWithError(io.ErrClosedPipe)
	if merr := <-mux; merr != nil && !errors.Is(merr, io.ErrClosedPipe) {
		return Loudness{}, fmt.Errorf("transcode: the DCA: %w", merr)
	}
	return l, err
}

// measure decodes the input (ffmpeg's input arguments, reading stdin when
// it is not nil) in one ffmpeg and runs the ebur128 filter, true peak
// included, in a second one fed through a pipe. ffmpeg 5's filter graph is
// single-threaded, and the true peak's 4x oversampling costs about as much
// as decoding and the integrated loudness together: split in two processes
// the decoding and the measure run on two cores at once, with the very
// samples one process would measure (float PCM, in NUT to keep the channel
// layout ebur128 weights the channels by). name is the input's path, kept
// out of error messages.
func measure(parent context.Context, input []string, stdin io.Reader, name string) (_ Loudness, err error) {
	parent, span := tracing.StartProcess(parent, "ffmpeg", attribute.String("butakero.purpose", "measure"))
	defer func() { tracing.EndProcess(span, err) }()
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	pr, pw, err := os.Pipe()
	if err != nil {
		return Loudness{}, fmt.Errorf("transcode: pipe: %w", err)
	}
	decArgs := append([]string{"-nostdin", "-hide_banner", "-nostats", "-loglevel", "error"}, input...)
	decArgs = append(decArgs, "-map", "0:a:0", "-c:a", "pcm_f32le", "-f", "nut", "pipe:1")
	dec := exec.CommandContext(ctx, "ffmpeg", decArgs...)
	procgroup.KillOnCancel(dec)
	var decErr, meterErr tail
	dec.Stdin, dec.Stdout, dec.Stderr = stdin, pw, &decErr
	// framelog=verbose keeps ebur128's line every 100 ms out of the log:
	// only its summary is read.
	meter := exec.CommandContext(ctx, "ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-f", "nut", "-i", "pipe:0",
		"-af", "ebur128=peak=true:framelog=verbose", "-f", "null", "-")
	procgroup.KillOnCancel(meter)
	meter.Stdin, meter.Stderr = pr, &meterErr
	if err := meter.Start(); err != nil {
		pr.Close()
		pw.Close()
		return Loudness{}, fmt.Errorf("transcode: start ffmpeg: %w", err)
	}
	pr.Close()
	if err := dec.Start(); err != nil {
		pw.Close()
		cancel()
		_ = meter.Wait()
		return Loudness{}, fmt.Errorf("transcode: start ffmpeg: %w", err)
	}
	pw.Close()
	derr := dec.Wait()
	if derr != nil {
		cancel() // the meter would measure part of the song
	}
	merr := meter.Wait()
	switch {
	case parent.Err() != nil:
		return Loudness{}, parent.Err()
	case derr != nil:
		return Loudness{}, &Unreadable{Message: CleanMessage(decErr.String(), name)}
	case merr != nil:
		return Loudness{}, &Unreadable{Message: CleanMessage(meterErr.String(), name)}
	}
	return parseLoudness(meterErr.String()), nil
}

var (
	integratedRe = regexp.MustCompile(`(?m)^\s*I:\s*(-?[0-9.]+|-?inf)\s*LUFS`)
	truePeakRe   = regexp.MustCompile(`(?m)^\s*Peak:\s*(-?[0-9.]+|-?inf)\s*dBFS`)
)

// parseLoudness reads the summary ebur128 logs at the end of a run.
func parseLoudness(stderr string) Loudness {
	i := strings.LastIndex(stderr, "Summary:")
	if i < 0 {
		return Loudness{}
	}
	s := stderr[i:]
	num := func(re *regexp.Regexp) *float64 {
		m := re.FindStringSubmatch(s)
		if m == nil {
			return nil
		}
		v, err := strconv.ParseFloat(m[1], 64)
		// ebur128 reports silence as -70 LUFS (its absolute gate) and
		// -inf dBFS: neither is a loudness a bot can use.
		if err != nil || math.IsInf(v, 0) || math.IsNaN(v) || v <= -70 {
			return nil
		}
		return &v
	}
	return Loudness{LUFS: num(integratedRe), TruePeakDB: num(truePeakRe)}
}

// run runs one ffmpeg and streams its Ogg output's packets into a DCA on
// out. Mode ModePassthrough copies the source's packets (and fails with
// *errNot20ms on a packet of another duration; a copy is not measured,
// see Encode); else libopus encodes, after a gain in dB, and measure
// adds the ebur128 filter before the encoder.
func run(parent context.Context, path string, o Options, out Output, mode, reason string, gain float64, measure bool) (res Result, err error) {
	copyPackets := mode == ModePassthrough
	purpose := "transcode"
	if copyPackets {
		purpose = "copy"
	}
	parent, span := tracing.StartProcess(parent, "ffmpeg", attribute.String("butakero.purpose", purpose), attribute.Bool("butakero.measure", measure))
	defer func() {
		// A packet that is not a 20 ms frame ends a copy by design: the
		// song is transcoded instead, which is no failure of ffmpeg's.
		spanErr := err
		var not20 *errNot20ms
		if errors.As(err, &not20) {
			span.SetAttributes(attribute.String("butakero.copy_refused", not20.reason))
			spanErr = nil
		}
		tracing.EndProcess(span, spanErr)
	}()
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	in := path
	if o.Input != nil {
		in = "pipe:0"
	}
	args := []string{"-hide_banner", "-nostats", "-i", in, "-map", "0:a:0"}
	if o.Input == nil {
		args = append([]string{"-nostdin"}, args...)
	}
	if copyPackets {
		args = append(args, "-c:a", "copy")
		args = append(args, oggPipe...)
	} else {
		var filters []string
		if gain != 0 {
			filters = append(filters, fmt.Sprintf("volume=%.2fdB", gain))
		}
		if measure {
			// Measured as libopus gets it: at 48 kHz in stereo (a mono
			// source is upmixed 3 dB down per channel, which its true
			// peak must show), the conversion -ar and -ac would make.
			filters = append(filters, "aformat=sample_rates=48000:channel_layouts=stereo", "ebur128=peak=true")
		}
		if len(filters) > 0 {
			args = append(args, "-af", strings.Join(filters, ","))
		}
		args = append(args, "-c:a", "libopus", "-b:a", strconv.Itoa(o.BitrateKbps)+"k", "-vbr", "on",
			"-compression_level", "10", "-application", "audio", "-frame_duration", "20",
			"-ar", "48000", "-ac", "2")
		args = append(args, oggPipe...)
	}
	cmd := exec.CommandContext(ctx, "ffmpeg", args...)
	procgroup.KillOnCancel(cmd)
	var stderr tail
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return Result{}, err
	}
	var stdin io.WriteCloser
	if o.Input != nil {
		if stdin, err = cmd.StdinPipe(); err != nil {
			return Result{}, err
		}
	}
	if err := cmd.Start(); err != nil {
		return Result{}, fmt.Errorf("transcode: start ffmpeg: %w", err)
	}
	if o.Input != nil {
		fed := make(chan error, 1)
		go func() { fed <- feed(ctx, cancel, stdin, o.Input) }()
		defer func() {
			// The source's reader ends at its end, or with ctx,
			// cancelled on return.
			cancel()
			if ferr := <-fed; ferr != nil && parent.Err() == nil {
				res, err = Result{}, ferr
			}
		}()
	}
	dca := &dcaOut{Result: Result{Mode: mode, Reason: reason}, out: out, o: o}
	rerr := dca.read(bufio.NewReaderSize(stdout, 64<<10), copyPackets, o.Progress)
	if rerr != nil {
		cancel() // stop ffmpeg; Wait closes stdout
	}
	werr := cmd.Wait()
	var not20 *errNot20ms
	switch {
	case parent.Err() != nil:
		rerr = parent.Err()
	case errors.As(rerr, &not20):
	case errors.Is(rerr, errRead):
		// The output failed (the store gave up): its error, as is.
	case rerr != nil && !errors.Is(rerr, errRead) || werr != nil || dca.Frames == 0:
		rerr = &Unreadable{Message: CleanMessage(stderr.String(), path)}
	}
	if rerr != nil {
		return Result{}, rerr
	}
	if measure && !copyPackets {
		dca.Loudness, dca.Measured = parseLoudness(stderr.String()), true
	}
	return dca.Result, nil
}

// feed copies the source Input opens into ffmpeg's standard input and
// closes it at the source's end. A source that fails before its end (the
// download failed, its chunks are gone) kills ffmpeg (cancel) instead of
// ending its input, so that a truncated source never looks like a short
// song, and the failure is returned; ffmpeg leaving its input unread is no
// failure of the source's (its exit says why).
func feed(ctx context.Context, cancel context.CancelFunc, stdin io.WriteCloser, open func() (io.ReadCloser, error)) error {
	src, err := open()
	if err != nil {
		cancel()
		return fmt.Errorf("transcode: open the source: %w", err)
	}
	defer src.Close()
	w := &pipeSide{w: stdin}
	_, err = io.Copy(w, src)
	switch {
	case err == nil:
		return stdin.Close()
	case w.err != nil, ctx.Err() != nil:
		return nil
	}
	cancel()
	return fmt.Errorf("transcode: the source: %w", err)
}

// pipeSide is ffmpeg's standard input, remembering whether a write failed
// (ffmpeg stopped reading) rather than the source.
type pipeSide struct {
	w   io.Writer
	err error
}

func (p *pipeSide) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	if err != nil {
		p.err = err
	}
	return n, err
}

// oggPipe is ffmpeg's output: Ogg on its stdout, each packet sent as soon
// as it is made. By default the Ogg muxer fills a page with a second of
// audio and ffmpeg writes its output 32 KiB at a time (about 2.7 s of
// audio at 96 kbit/s): the first frame would wait for both, which a slow
// encode (a loaded machine) makes a delay before a follower's first frame.
// A page per packet costs only the pipe's bytes; the DCA is the same.
var oggPipe = []string{"-flush_packets", "1", "-page_duration", "20000", "-f", "ogg", "pipe:1"}

// errRead wraps errors of the output, which are not the input's.
var errRead = errors.New("transcode: output")

// dcaOut is the DCA one ffmpeg run makes.
type dcaOut struct {
	Result
	out Output
	o   Options
	dw  *dcafile.Writer
}

// read reads ffmpeg's Ogg Opus: the OpusHead, the OpusTags, then every
// audio packet, each checked to be a 20 ms frame, and sends the DCA: its
// header once the OpusHead is known, then each frame.
func (res *dcaOut) read(r io.Reader, copyPackets bool, progress func(int64)) error {
	dec := ogg.NewPacketDecoder(ogg.NewDecoder(r))
	for i := 0; ; i++ {
		packet, _, err := dec.Decode()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("transcode: ffmpeg's ogg: %w", err)
		}
		switch i {
		case 0:
			head, err := oggopus.ParseHead(packet)
			if err != nil {
				return err
			}
			if copyPackets && (head.Family != 0 || head.OutputGain != 0) {
				return &errNot20ms{fmt.Sprintf("the source's OpusHead has mapping family %d and output gain %d", head.Family, head.OutputGain)}
			}
			if copyPackets && head.InputRate != 0 && head.InputRate != oggopus.SampleRate {
				return &errNot20ms{fmt.Sprintf("the source was encoded from %d Hz audio, not 48000", head.InputRate)}
			}
			res.PreSkip = head.PreSkip
			continue
		case 1:
			if err := res.begin(); err != nil {
				return fmt.Errorf("%w: %w", errRead, err)
			}
			continue // OpusTags
		}
		n, err := oggopus.PacketSamples(packet)
		if err != nil {
			return err
		}
		if n != oggopus.FrameSamples {
			if copyPackets {
				return &errNot20ms{fmt.Sprintf("packet %d of the source lasts %.1f ms, not 20", res.Frames, float64(n)/48)}
			}
			return fmt.Errorf("transcode: libopus made a packet of %d samples", n)
		}
		if res.dw == nil {
			return errors.New("transcode: ffmpeg's ogg has no OpusTags")
		}
		if err := res.dw.WritePacket(packet); err != nil {
			return fmt.Errorf("%w: %w", errRead, err)
		}
		res.Size = res.dw.Size()
		res.Frames++
		if progress != nil {
			progress(res.Frames)
		}
	}
	return nil
}

// begin starts the DCA on the output with its header: what is known
// before the first frame.
func (res *dcaOut) begin() error {
	w, run, err := res.out.Begin()
	if err != nil {
		return err
	}
	o := res.o
	meta := dcafile.NewMetadata(dcafile.Options{
		BitrateKbps:   o.BitrateKbps,
		SampleRate:    oggopus.SampleRate,
		Channels:      2,
		FrameDuration: FrameDuration,
		Application:   "audio",
		VBR:           true,
	}, o.Title)
	if res.Mode == ModePassthrough {
		meta.Opus.Bitrate = o.Source.BitrateKbps * 1000
		meta.Opus.Channels = o.Source.Channels
		meta.Opus.FrameSize = oggopus.FrameSamples * o.Source.Channels
	}
	// The true length is the container's, known before the first frame:
	// a decoder drops what the last frame holds past it (the Ogg Opus
	// stream's last granule position), never a frame or more (oggopus).
	if d := o.Source.Duration; d > 0 {
		res.Samples = int64(d.Seconds()*oggopus.SampleRate + 0.5)
	}
	meta.Butakero = &dcafile.Butakero{
		Mode: res.Mode, Reason: res.Reason, PreSkip: res.PreSkip, Samples: res.Samples, Run: run,
	}
	if l := o.known; l != nil {
		meta.Butakero.LoudnessLUFS, meta.Butakero.TruePeakDB = l.LUFS, l.TruePeakDB
	}
	res.dw, err = dcafile.NewWriter(w, meta)
	if err != nil {
		return err
	}
	res.Size = res.dw.Size()
	return nil
}

// tail keeps the last tailMax bytes written to it: ffmpeg's last words
// and ebur128's summary, without its per-frame log.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

const tailMax = 64 << 10

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > tailMax {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-tailMax/2:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
