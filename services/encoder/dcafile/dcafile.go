// Package dcafile writes and reads DCA1 files, the format Discord bots play:
//
//	"DCA1" | int32 LE metadata length | JSON metadata | frames…
//
// where every frame is an int16 little-endian length followed by one Opus
// packet (48 kHz, stereo, 20 ms here). The metadata JSON is jonas747/dca's
// standard dca.Metadata, so any DCA player reads these files.
//
// Both the Writer and the Reader stream: neither ever holds more than one
// frame, so a file of any length is written or checked in constant memory.
package dcafile

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/butakero/butakero/platform/media/dcahead"
	"github.com/jonas747/dca"
)

// Magic opens every DCA1 file.
const Magic = dcahead.Magic

// MaxMetadataLen bounds the metadata JSON a Reader accepts. The standard
// metadata is a few hundred bytes; cover art can make it larger, never this
// large in a file this package wrote.
const MaxMetadataLen = dcahead.MaxMetadataLen

// ErrFormat is wrapped by every error about a malformed DCA file.
var ErrFormat = errors.New("dcafile: not a valid DCA1 file")

// Options describe the Opus stream a DCA holds, for its metadata.
type Options struct {
	// BitrateKbps is the Opus bitrate in kb/s.
	BitrateKbps int
	// SampleRate in Hz (48000 for Discord).
	SampleRate int
	// Channels (2 for Discord).
	Channels int
	// FrameDuration is one frame's duration (20 ms).
	FrameDuration time.Duration
	// Application is the Opus application ("audio").
	Application string
	// VBR says whether the bitrate is variable.
	VBR bool
}

// Metadata is a DCA's JSON metadata: jonas747/dca's standard fields, which
// every DCA player reads, and Butakero's own under "butakero".
type Metadata struct {
	dca.Metadata
	Butakero *Butakero `json:"butakero,omitempty"`
}

// Butakero is what the encoder learnt of the song, for bots and for the
// gateway's Ogg Opus stream.
type Butakero struct {
	// Mode is "passthrough" (the source's packets copied) or "transcode".
	Mode string `json:"mode"`
	// Reason says why.
	Reason string `json:"reason,omitempty"`
	// PreSkip is the samples (48 kHz) a decoder drops at the start: the
	// source's for a passthrough, the encoder's for a transcode.
	PreSkip int `json:"pre_skip"`
	// Samples is the true length at 48 kHz after the pre-skip; the last
	// frame may hold more.
	Samples int64 `json:"samples"`
	// LoudnessLUFS is the integrated loudness (EBU R128), TruePeakDB the
	// true peak (dBTP); absent when not measured or not finite (silence).
	//
	// The encoder streams its DCAs, header first, so what it writes now
	// carries neither: they are in the dca.encoded event and the catalog
	// (a redelivery that finds the DCA stored measures its packets), and
	// the header keeps room for them (NewWriter), which the gateway fills
	// from the catalog when it serves the DCA. DCAs stored before it
	// streamed have them.
	LoudnessLUFS *float64 `json:"loudness_lufs,omitempty"`
	TruePeakDB   *float64 `json:"true_peak_db,omitempty"`
	// Run names the encode that made the DCA, as its chunks on
	// BUTAKERO_FRAMES name it (package framestream).
	Run string `json:"run,omitempty"`
}

// NewMetadata returns the standard DCA metadata for an Opus stream described
// by o, naming the song title.
func NewMetadata(o Options, title string) Metadata {
	samplesPerFrame := int(int64(o.SampleRate) * int64(o.FrameDuration) / int64(time.Second))
	return Metadata{Metadata: dca.Metadata{
		Dca: &dca.DCAMetadata{
			Version: dca.FormatVersion,
			Tool: &dca.DCAToolMetadata{
				Name:    "butakero",
				Version: dca.LibraryVersion,
				Url:     dca.GitHubRepositoryURL,
				Author:  "butakero",
			},
		},
		Opus: &dca.OpusMetadata{
			Bitrate:     o.BitrateKbps * 1000,
			SampleRate:  o.SampleRate,
			Application: o.Application,
			// dca's frame_size counts samples of all channels, as
			// EncodeOptions.PCMFrameLen does.
			FrameSize: samplesPerFrame * o.Channels,
			Channels:  o.Channels,
			VBR:       o.VBR,
		},
		SongInfo: &dca.SongMetadata{Title: title},
		Origin:   &dca.OriginMetadata{Source: "file", Channels: o.Channels},
		Extra:    &dca.ExtraMetadata{},
	}}
}

// Writer writes a DCA1 file: the header on creation, then one frame per
// WriteFrame call. It does not buffer: every call writes through to the
// underlying writer. A Writer is not safe for concurrent use.
type Writer struct {
	w      io.Writer
	frames int64
	size   int64
}

// NewWriter writes the DCA1 header with meta to w and returns a Writer for
// the frames that follow.
func NewWriter(w io.Writer, meta Metadata) (*Writer, error) {
	js, err := json.Marshal(meta)
	if err != nil {
		return nil, fmt.Errorf("dcafile: encode metadata: %w", err)
	}
	if b := meta.Butakero; b != nil && b.LoudnessLUFS == nil && b.TruePeakDB == nil {
		// The loudness is not known yet: room for it, as JSON whitespace,
		// so that the gateway can add it to the header without changing
		// the file's length (package dcahead).
		js = append(js, bytes.Repeat([]byte{' '}, dcahead.LoudnessRoom)...)
	}
	hdr := make([]byte, 0, len(Magic)+4+len(js))
	hdr = append(hdr, Magic...)
	hdr = binary.LittleEndian.AppendUint32(hdr, uint32(len(js)))
	hdr = append(hdr, js...)
	n, err := w.Write(hdr)
	if err != nil {
		return nil, fmt.Errorf("dcafile: write header: %w", err)
	}
	return &Writer{w: w, size: int64(n)}, nil
}

// WriteFrame writes one frame as jonas747/dca's EncodeSession.ReadFrame
// returns it: an int16 little-endian length followed by that many bytes of
// Opus packet. A frame whose prefix does not match its length is rejected,
// so a Writer never produces a file its Reader would refuse.
func (w *Writer) WriteFrame(frame []byte) error {
	if len(frame) < 3 {
		return fmt.Errorf("%w: frame of %d bytes", ErrFormat, len(frame))
	}
	if n := int(int16(binary.LittleEndian.Uint16(frame))); n != len(frame)-2 {
		return fmt.Errorf("%w: frame length prefix %d, packet of %d bytes", ErrFormat, n, len(frame)-2)
	}
	n, err := w.w.Write(frame)
	w.size += int64(n)
	if err != nil {
		return fmt.Errorf("dcafile: write frame %d: %w", w.frames, err)
	}
	w.frames++
	return nil
}

// WritePacket writes one Opus packet as a frame, adding its length prefix.
func (w *Writer) WritePacket(packet []byte) error {
	if len(packet) == 0 || len(packet) > 1<<15-1 {
		return fmt.Errorf("%w: opus packet of %d bytes", ErrFormat, len(packet))
	}
	frame := binary.LittleEndian.AppendUint16(make([]byte, 0, 2+len(packet)), uint16(len(packet)))
	return w.WriteFrame(append(frame, packet...))
}

// Frames is the number of frames written so far.
func (w *Writer) Frames() int64 { return w.frames }

// Size is the number of bytes written so far, header included.
func (w *Writer) Size() int64 { return w.size }

// Reader reads a DCA1 file frame by frame. It is not safe for concurrent use.
type Reader struct {
	r      *bufio.Reader
	meta   Metadata
	frames int64
	size   int64
	buf    []byte
}

// NewReader reads and checks the DCA1 header from r.
func NewReader(r io.Reader) (*Reader, error) {
	br := bufio.NewReader(r)
	hdr, err := dcahead.Read(br)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	d := &Reader{r: br, size: int64(len(hdr))}
	if err := json.Unmarshal(hdr[8:], &d.meta); err != nil {
		return nil, fmt.Errorf("%w: metadata JSON: %v", ErrFormat, err)
	}
	return d, nil
}

// Metadata is the file's header metadata.
func (d *Reader) Metadata() Metadata { return d.meta }

// Next returns the next frame's Opus packet, or io.EOF after the last one.
// The packet is valid until the next call. A file cut inside a frame, or a
// frame length that is not positive, is an error wrapping ErrFormat.
func (d *Reader) Next() ([]byte, error) {
	var p [2]byte
	if _, err := io.ReadFull(d.r, p[:]); err != nil {
		if err == io.EOF {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("%w: frame %d length: %v", ErrFormat, d.frames, err)
	}
	n := int(int16(binary.LittleEndian.Uint16(p[:])))
	if n <= 0 {
		return nil, fmt.Errorf("%w: frame %d has length %d", ErrFormat, d.frames, n)
	}
	if cap(d.buf) < n {
		d.buf = make([]byte, n)
	}
	d.buf = d.buf[:n]
	if _, err := io.ReadFull(d.r, d.buf); err != nil {
		return nil, fmt.Errorf("%w: frame %d cut short: %v", ErrFormat, d.frames, err)
	}
	d.frames++
	d.size += int64(2 + n)
	return d.buf, nil
}

// FrameDuration is one frame's duration as the metadata states it, or 20 ms
// when the metadata does not say.
func (d *Reader) FrameDuration() time.Duration {
	o := d.meta.Opus
	if o == nil || o.FrameSize <= 0 || o.SampleRate <= 0 || o.Channels <= 0 {
		return 20 * time.Millisecond
	}
	return time.Duration(int64(o.FrameSize/o.Channels) * int64(time.Second) / int64(o.SampleRate))
}

// Info summarises a whole DCA file.
type Info struct {
	Metadata Metadata
	// Frames is the number of frames.
	Frames int64
	// Duration is Frames × the frame duration.
	Duration time.Duration
	// Size is the file's size in bytes.
	Size int64
}

// Parse reads a whole DCA1 file from r, checking the magic, the metadata and
// every frame's length, and returns its summary. It streams: memory use does
// not depend on the file's length.
func Parse(r io.Reader) (Info, error) {
	d, err := NewReader(r)
	if err != nil {
		return Info{}, err
	}
	for {
		if _, err := d.Next(); err == io.EOF {
			break
		} else if err != nil {
			return Info{}, err
		}
	}
	return Info{
		Metadata: d.meta,
		Frames:   d.frames,
		Duration: time.Duration(d.frames) * d.FrameDuration(),
		Size:     d.size,
	}, nil
}
