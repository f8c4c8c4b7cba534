// Package transcode runs ffprobe and ffmpeg (through jonas747/dca) on a
// local media file and streams the result as DCA1. It knows nothing of NATS
// or blob stores: the encoder service hands it a file and a writer.
//
// The input is a file, not a pipe, on purpose: an MP4/M4A whose index sits at
// the end (no "faststart") cannot be read by ffmpeg from a pipe.
package transcode

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/butakero/butakero/services/encoder/dcafile"
	"github.com/jonas747/dca"
)

// FrameDuration is the duration of one DCA frame.
const FrameDuration = 20 * time.Millisecond

// ErrUnreadable is wrapped by errors saying the input is not audio ffmpeg
// can read. Such an input fails the same way every time: it is not worth a
// retry. Unreadable.Message carries ffmpeg's own words, cleaned.
var ErrUnreadable = errors.New("transcode: not audio ffmpeg can read")

// Unreadable is the error for an input ffprobe or ffmpeg cannot read.
type Unreadable struct {
	// Message is what ffmpeg said, without banners, addresses or the
	// temporary file's path; it may be empty.
	Message string
}

func (e *Unreadable) Error() string {
	if e.Message == "" {
		return ErrUnreadable.Error()
	}
	return ErrUnreadable.Error() + ": " + e.Message
}

// Is makes errors.Is(err, ErrUnreadable) true.
func (e *Unreadable) Is(target error) bool { return target == ErrUnreadable }

// Probe returns the duration of the audio a decoder gets from the media
// file at path, as ffprobe reports it: the container's duration less the
// codec delay ffprobe shows as a start time (MP3 and Opus count their
// encoder delay and padding in the duration; ffmpeg drops them). A start
// time of a second or more is a stream offset, not a delay, and is kept.
//
// An input ffprobe cannot read, or whose duration it cannot tell, is an
// *Unreadable error; a missing ffprobe or a cancelled ctx is any other error.
func Probe(ctx context.Context, path string) (time.Duration, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-show_entries", "format=format_name,duration,start_time", "-of", "json", path)
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		return 0, fmt.Errorf("transcode: ffprobe: %w", ctx.Err())
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return 0, &Unreadable{Message: CleanMessage(stderr.String(), path)}
	}
	if err != nil {
		return 0, fmt.Errorf("transcode: run ffprobe: %w", err)
	}
	var out struct {
		Format struct {
			FormatName string `json:"format_name"`
			Duration   string `json:"duration"`
			StartTime  string `json:"start_time"`
		} `json:"format"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		return 0, &Unreadable{Message: "ffprobe printed no format"}
	}
	if !mediaContainer(out.Format.FormatName) {
		return 0, &Unreadable{Message: fmt.Sprintf("a %s file is not an audio or video container", out.Format.FormatName)}
	}
	secs, err := strconv.ParseFloat(out.Format.Duration, 64)
	if err != nil || math.IsNaN(secs) || math.IsInf(secs, 0) || secs <= 0 {
		return 0, &Unreadable{Message: "ffprobe found no duration"}
	}
	if start, err := strconv.ParseFloat(out.Format.StartTime, 64); err == nil && math.Abs(start) < 1 && math.Abs(start) < secs {
		secs -= math.Abs(start)
	}
	return time.Duration(secs * float64(time.Second)), nil
}

// containers are the demuxers (ffprobe's format names) whose files the
// encoder takes: audio and video containers. Playlists and lists of files
// (hls, concat), images, text and devices are refused: they name other
// files, which ffmpeg would open on the encoder's host.
var containers = map[string]bool{
	"mov": true, "mp4": true, "m4a": true, "3gp": true, "3g2": true, "mj2": true,
	"matroska": true, "webm": true, "ogg": true, "mp3": true, "wav": true, "w64": true,
	"flac": true, "aac": true, "aiff": true, "caf": true, "asf": true, "avi": true,
	"flv": true, "mpegts": true, "mpeg": true, "wv": true, "ape": true, "amr": true,
	"ac3": true, "eac3": true, "dts": true, "mp2": true, "au": true, "tta": true,
}

// mediaContainer reports whether ffprobe's format name (a comma-separated
// list of the demuxer's names, "mov,mp4,m4a,3gp,3g2,mj2") is a container
// the encoder takes.
func mediaContainer(formatName string) bool {
	for _, name := range strings.Split(formatName, ",") {
		if containers[name] {
			return true
		}
	}
	return false
}

// Options configure Encode.
type Options struct {
	// BitrateKbps is the Opus bitrate (8 to 128).
	BitrateKbps int
	// Title goes into the DCA metadata.
	Title string
	// Progress, when set, is called after every frame with the number of
	// frames written so far, on Encode's goroutine. It must be quick.
	Progress func(frames int64)
}

// Result describes a finished encode.
type Result struct {
	// Frames is the number of 20 ms frames written.
	Frames int64
	// Size is the number of DCA bytes written, header included.
	Size int64
}

// Duration is what the frames cover.
func (r Result) Duration() time.Duration { return time.Duration(r.Frames) * FrameDuration }

// Encode encodes the media file at path with ffmpeg to 48 kHz stereo Opus in
// 20 ms frames and writes it to w as DCA1: header, then every frame as it
// comes. It holds at most dca's small frame buffer in memory.
//
// It returns an *Unreadable error when ffmpeg fails or produces no frame
// (jonas747/dca reports an unreadable input as zero frames and no error, so
// both are checked). When ctx ends, ffmpeg is killed and ctx's error is
// returned. A write error from w stops ffmpeg and is returned as is. In
// every case the ffmpeg process is gone when Encode returns.
func Encode(ctx context.Context, path string, o Options, w io.Writer) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	opts := &dca.EncodeOptions{
		Volume:           256,
		Channels:         2,
		FrameRate:        48000,
		FrameDuration:    int(FrameDuration / time.Millisecond),
		Bitrate:          o.BitrateKbps,
		Application:      dca.AudioApplicationAudio,
		CompressionLevel: 10,
		VBR:              true,
		BufferedFrames:   100,
		// dca writes its own header only when ffprobe reports a bitrate,
		// so it would silently omit it for some inputs: write our own.
		RawOutput: true,
	}
	dw, err := dcafile.NewWriter(w, dcafile.NewMetadata(dcafile.Options{
		BitrateKbps:   opts.Bitrate,
		SampleRate:    opts.FrameRate,
		Channels:      opts.Channels,
		FrameDuration: FrameDuration,
		Application:   string(opts.Application),
		VBR:           opts.VBR,
	}, o.Title))
	if err != nil {
		return Result{}, err
	}
	sess, err := dca.EncodeFile(path, opts)
	if err != nil {
		return Result{}, fmt.Errorf("transcode: start ffmpeg: %w", err)
	}
	// Cleanup kills ffmpeg and drains the frame buffer: it must run on every
	// path or the process and its goroutines outlive the call.
	defer sess.Cleanup()
	done := make(chan struct{})
	defer close(done)
	go killOnCancel(ctx, sess, done)

	for {
		frame, err := sess.ReadFrame()
		if err == io.EOF {
			break
		}
		if err == nil {
			err = dw.WriteFrame(frame)
		}
		if err != nil {
			return Result{Frames: dw.Frames(), Size: dw.Size()}, err
		}
		if o.Progress != nil {
			o.Progress(dw.Frames())
		}
	}
	res := Result{Frames: dw.Frames(), Size: dw.Size()}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if err := sess.Error(); err != nil {
		return res, &Unreadable{Message: CleanMessage(sess.FFMPEGMessages(), path)}
	}
	if res.Frames == 0 {
		return res, &Unreadable{Message: CleanMessage(sess.FFMPEGMessages(), path)}
	}
	return res, nil
}

// killOnCancel kills the session's ffmpeg once ctx ends. dca's Stop fails
// while the process is not started yet, so it is retried until it succeeds
// or the encode is over (done).
func killOnCancel(ctx context.Context, sess *dca.EncodeSession, done <-chan struct{}) {
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if sess.Stop() == nil {
			return
		}
		select {
		case <-done:
			return
		case <-t.C:
		}
	}
}

var (
	// componentPrefix matches "[mp3 @ 0x55d0c0a1b2c0] ".
	componentPrefix = regexp.MustCompile(`^\[[^\]]*@ 0x[0-9a-f]+\]\s*`)
	// address matches a pointer ffmpeg prints.
	address = regexp.MustCompile(`0x[0-9a-f]{6,}`)
)

// noise are line prefixes of ffmpeg's banner, stream listing and stats.
var noise = []string{"ffmpeg version", "ffprobe version", "Input #", "Output #", "Stream mapping", "Press [q]", "video:", "size=", "frame=", "To ignore this"}

// CleanMessage turns ffmpeg's stderr into a short message a user can read:
// the last few distinct diagnostic lines, without the banner, the stream
// listing, pointers or the path of the input (which is a temporary file).
func CleanMessage(stderr, path string) string {
	var lines []string
	for _, l := range strings.Split(stderr, "\n") {
		l = strings.TrimRight(l, "\r")
		if strings.TrimSpace(l) == "" || l[0] == ' ' || l[0] == '\t' {
			continue
		}
		skip := false
		for _, p := range noise {
			if strings.HasPrefix(l, p) {
				skip = true
				break
			}
		}
		if skip {
			continue
		}
		l = componentPrefix.ReplaceAllString(l, "")
		if path != "" {
			l = strings.ReplaceAll(l, path, "input")
			l = strings.ReplaceAll(l, filepath.Base(path), "input")
		}
		l = address.ReplaceAllString(l, "")
		l = strings.TrimRight(strings.TrimSpace(l), ".")
		if l != "" && (len(lines) == 0 || lines[len(lines)-1] != l) {
			lines = append(lines, l)
		}
	}
	if len(lines) > 3 {
		lines = lines[len(lines)-3:]
	}
	msg := strings.Join(lines, "; ")
	if len(msg) > 300 {
		msg = strings.ToValidUTF8(msg[:297], "") + "..."
	}
	return msg
}
