// Package transcode runs ffprobe (Inspect) and ffmpeg (Encode) on a local
// media file and writes the result as DCA1: the source's Opus packets
// copied when they are 48 kHz 20 ms frames, else encoded by libopus, with
// the loudness measured. It knows nothing of NATS or blob stores: the
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
	"math"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/butakero/butakero/platform/runtime/procgroup"
	"github.com/butakero/butakero/platform/runtime/tracing"
	"go.opentelemetry.io/otel/attribute"
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

// Source is what ffprobe tells of a media file's first audio stream.
type Source struct {
	// Duration is the audio a decoder gets (see Probe).
	Duration time.Duration
	// Codec is ffprobe's codec name ("opus", "aac"…).
	Codec string
	// SampleRate in Hz and Channels of the stream.
	SampleRate int
	Channels   int
	// BitrateKbps is the stream's bitrate, else the container's (an upper
	// bound of the audio's); 0 when neither is known.
	BitrateKbps int
}

// Probe returns the duration of the audio a decoder gets from the media
// file at path (Inspect's Duration).
func Probe(ctx context.Context, path string) (time.Duration, error) {
	s, err := Inspect(ctx, path)
	return s.Duration, err
}

// Inspect runs ffprobe once on the media file at path. The duration is the
// container's less the codec delay ffprobe shows as a start time (MP3 and
// Opus count their encoder delay and padding in the duration; ffmpeg drops
// them). A start time of a second or more is a stream offset, not a delay,
// and is kept.
//
// An input ffprobe cannot read, or whose duration it cannot tell, is an
// *Unreadable error; a missing ffprobe or a cancelled ctx is any other error.
func Inspect(ctx context.Context, path string) (_ Source, err error) {
	ctx, span := tracing.StartProcess(ctx, "ffprobe", attribute.String("butakero.purpose", "inspect"))
	defer func() { tracing.EndProcess(span, err) }()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "ffprobe", "-v", "error",
		"-show_entries", "format=format_name,duration,start_time,bit_rate:stream=codec_name,sample_rate,channels,bit_rate",
		"-select_streams", "a:0", "-of", "json", path)
	procgroup.KillOnCancel(cmd)
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err = cmd.Run()
	if ctx.Err() != nil {
		return Source{}, fmt.Errorf("transcode: ffprobe: %w", ctx.Err())
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return Source{}, &Unreadable{Message: CleanMessage(stderr.String(), path)}
	}
	if err != nil {
		return Source{}, fmt.Errorf("transcode: run ffprobe: %w", err)
	}
	var out struct {
		Streams []struct {
			CodecName  string `json:"codec_name"`
			SampleRate string `json:"sample_rate"`
			Channels   int    `json:"channels"`
			BitRate    string `json:"bit_rate"`
		} `json:"streams"`
		Format struct {
			FormatName string `json:"format_name"`
			Duration   string `json:"duration"`
			StartTime  string `json:"start_time"`
			BitRate    string `json:"bit_rate"`
		} `json:"format"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		return Source{}, &Unreadable{Message: "ffprobe printed no format"}
	}
	if !mediaContainer(out.Format.FormatName) {
		return Source{}, &Unreadable{Message: fmt.Sprintf("a %s file is not an audio or video container", out.Format.FormatName)}
	}
	secs, err := strconv.ParseFloat(out.Format.Duration, 64)
	if err != nil || math.IsNaN(secs) || math.IsInf(secs, 0) || secs <= 0 {
		return Source{}, &Unreadable{Message: "ffprobe found no duration"}
	}
	if start, err := strconv.ParseFloat(out.Format.StartTime, 64); err == nil && math.Abs(start) < 1 && math.Abs(start) < secs {
		secs -= math.Abs(start)
	}
	src := Source{Duration: time.Duration(secs * float64(time.Second))}
	if len(out.Streams) > 0 {
		st := out.Streams[0]
		src.Codec = st.CodecName
		src.SampleRate, _ = strconv.Atoi(st.SampleRate)
		src.Channels = st.Channels
		br, _ := strconv.Atoi(st.BitRate)
		if br == 0 {
			br, _ = strconv.Atoi(out.Format.BitRate)
		}
		src.BitrateKbps = (br + 999) / 1000
	}
	return src, nil
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
