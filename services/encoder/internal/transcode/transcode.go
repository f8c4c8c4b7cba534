// Package transcode runs ffprobe and ffmpeg on a local media file and
// streams the result as DCA1. It knows nothing of NATS or blob stores: the
// encoder service hands it a file and a writer.
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

	"github.com/butakero/butakero/platform/ytdlp"
	"github.com/butakero/butakero/services/encoder/dcafile"
	"github.com/jonas747/ogg"
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

// The Opus stream every DCA holds: Discord's.
const (
	sampleRate  = 48000
	channels    = 2
	application = "audio"
	// compressionLevel is libopus's slowest and best.
	compressionLevel = 10
)

// encodeArgs are ffmpeg's arguments to encode the file at path to Ogg Opus
// on standard output: the options jonas747/dca passed, less the ones a
// local file does not need (its -reconnect* network options, -ss 0) and
// -vol, which ffmpeg 7 removed (256 was unity gain: no change).
func encodeArgs(path string, bitrateKbps int) []string {
	return []string{
		"-hide_banner", "-nostdin", "-nostats",
		"-i", path,
		"-map", "0:a",
		"-acodec", "libopus",
		"-f", "ogg",
		"-vbr", "on",
		"-compression_level", strconv.Itoa(compressionLevel),
		"-ar", strconv.Itoa(sampleRate),
		"-ac", strconv.Itoa(channels),
		"-b:a", strconv.Itoa(bitrateKbps * 1000),
		"-application", application,
		"-frame_duration", strconv.Itoa(int(FrameDuration / time.Millisecond)),
		"-packet_loss", "0",
		"-threads", "0",
		"pipe:1",
	}
}

// Encode encodes the media file at path with ffmpeg to 48 kHz stereo Opus in
// 20 ms frames and writes it to w as DCA1: header, then every frame as it
// comes. ffmpeg writes Ogg Opus to a pipe and each Opus packet becomes one
// frame; nothing but the Ogg page being read is held in memory.
//
// It returns an *Unreadable error when ffmpeg fails or produces no frame.
// When ctx ends, ffmpeg is killed and ctx's error is returned. A write error
// from w stops ffmpeg and is returned as is. In every case the ffmpeg
// process is gone when Encode returns.
func Encode(ctx context.Context, path string, o Options, w io.Writer) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	dw, err := dcafile.NewWriter(w, dcafile.NewMetadata(dcafile.Options{
		BitrateKbps:   o.BitrateKbps,
		SampleRate:    sampleRate,
		Channels:      channels,
		FrameDuration: FrameDuration,
		Application:   application,
		VBR:           true,
	}, o.Title))
	if err != nil {
		return Result{}, err
	}
	run, stop := context.WithCancel(ctx)
	defer stop()
	cmd := exec.CommandContext(run, "ffmpeg", encodeArgs(path, o.BitrateKbps)...)
	// A corrupt file can make ffmpeg repeat a warning for every packet:
	// only the end of what it says is kept (ytdlp.Tail is a bounded tail
	// of any output).
	stderr := &ytdlp.Tail{Max: 64 << 10}
	cmd.Stderr = stderr
	cmd.WaitDelay = 5 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return Result{}, fmt.Errorf("transcode: ffmpeg's output: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return Result{}, fmt.Errorf("transcode: start ffmpeg: %w", err)
	}
	writeErr := copyPackets(stdout, dw, o.Progress)
	if writeErr != nil {
		stop() // kills ffmpeg, which may be blocked writing to the pipe
	}
	// What is left of the output (after a malformed page, or once killed)
	// is drained, so that ffmpeg is never blocked on a full pipe.
	_, _ = io.Copy(io.Discard, stdout)
	waitErr := cmd.Wait()

	res := Result{Frames: dw.Frames(), Size: dw.Size()}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if writeErr != nil {
		return res, writeErr
	}
	if waitErr != nil || res.Frames == 0 {
		return res, &Unreadable{Message: CleanMessage(stderr.String(), path)}
	}
	return res, nil
}

// copyPackets reads Ogg Opus from r and writes every audio packet to dw
// (the first two packets are the OpusHead and OpusTags headers), calling
// progress after each. It returns dw's error only: output that stops being
// Ogg ends the copy, and ffmpeg's exit status then tells why.
func copyPackets(r io.Reader, dw *dcafile.Writer, progress func(int64)) error {
	packets := ogg.NewPacketDecoder(ogg.NewDecoder(r))
	for headers := 2; ; {
		packet, _, err := packets.Decode()
		if err != nil {
			return nil
		}
		if headers > 0 {
			headers--
			continue
		}
		if err := dw.WritePacket(packet); err != nil {
			return err
		}
		if progress != nil {
			progress(dw.Frames())
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
