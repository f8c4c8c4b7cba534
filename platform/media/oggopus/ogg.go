package oggopus

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/butakero/butakero/platform/media/dcahead"
)

// crcTable is Ogg's CRC-32: polynomial 0x04c11db7, not reflected, initial
// value 0, no final XOR (RFC 3533 §6).
var crcTable = func() (t [256]uint32) {
	for i := range t {
		r := uint32(i) << 24
		for range 8 {
			if r&0x80000000 != 0 {
				r = r<<1 ^ 0x04c11db7
			} else {
				r <<= 1
			}
		}
		t[i] = r
	}
	return t
}()

func crc(c uint32, p []byte) uint32 {
	for _, b := range p {
		c = c<<8 ^ crcTable[byte(c>>24)^b]
	}
	return c
}

const (
	flagBOS = 0x02
	flagEOS = 0x04
	// pageData bounds one audio page's data: about a second of audio at
	// 32 kb/s, 0.3 s at 96 kb/s, as libopus-tools' pages hold.
	pageData = 4096
)

// Writer writes one Ogg Opus logical stream: the OpusHead and OpusTags
// pages when made, then audio packets, several to a page, each page's
// granule position the pre-skip plus the samples its packets end at.
// Close writes the last page, flagged end of stream, with the granule of
// the true length so a decoder trims the end. A packet is never split
// across pages. A Writer is not safe for concurrent use.
type Writer struct {
	w       io.Writer
	serial  uint32
	seq     uint32
	preSkip int64
	granule int64 // pre-skip + samples of the packets written
	flushed int64 // granule of the last page written
	segs    []byte
	data    []byte
	packets int
}

// NewWriter writes the header pages of a stream with serial number serial.
func NewWriter(w io.Writer, serial uint32, head Head, tags []byte) (*Writer, error) {
	ow := &Writer{w: w, serial: serial, preSkip: int64(head.PreSkip), granule: int64(head.PreSkip)}
	if err := ow.page(flagBOS, 0, segments(nil, len(head.Marshal())), head.Marshal()); err != nil {
		return nil, err
	}
	if len(tags) > 255*255 {
		return nil, errors.New("oggopus: OpusTags too long")
	}
	if err := ow.page(0, 0, segments(nil, len(tags)), tags); err != nil {
		return nil, err
	}
	return ow, nil
}

// segments appends the lacing values of a packet of n bytes.
func segments(s []byte, n int) []byte {
	for ; n >= 255; n -= 255 {
		s = append(s, 255)
	}
	return append(s, byte(n))
}

// WritePacket adds one Opus packet of samples samples (at 48 kHz).
func (ow *Writer) WritePacket(p []byte, samples int) error {
	need := len(p)/255 + 1
	if len(ow.segs)+need > 255 || len(ow.data)+len(p) > pageData && ow.packets > 0 {
		if err := ow.flush(0, ow.granule); err != nil {
			return err
		}
	}
	ow.segs = segments(ow.segs, len(p))
	ow.data = append(ow.data, p...)
	ow.packets++
	ow.granule += int64(samples)
	return nil
}

// Close writes the last page, marked end of stream, whose granule position
// says the stream lasts total samples (after the pre-skip): a decoder drops
// what the last page's packets hold past it. A total beyond the packets is
// clamped to them, and one that would drop a whole 20 ms frame or more
// (a container's stated length, which may be short of the audio by more
// than a frame) to just under a frame: what is dropped is the last
// packet's padding, never audio.
func (ow *Writer) Close(total int64) error {
	end := ow.preSkip + total
	end = min(end, ow.granule)
	end = max(end, ow.flushed, ow.granule-(FrameSamples-1))
	return ow.flush(flagEOS, end)
}

func (ow *Writer) flush(flags byte, granule int64) error {
	err := ow.page(flags, granule, ow.segs, ow.data)
	ow.flushed = granule
	ow.segs, ow.data, ow.packets = ow.segs[:0], ow.data[:0], 0
	return err
}

func (ow *Writer) page(flags byte, granule int64, segs, data []byte) error {
	h := make([]byte, 27, 27+len(segs)+len(data))
	copy(h, "OggS")
	h[5] = flags
	binary.LittleEndian.PutUint64(h[6:], uint64(granule))
	binary.LittleEndian.PutUint32(h[14:], ow.serial)
	binary.LittleEndian.PutUint32(h[18:], ow.seq)
	h[26] = byte(len(segs))
	h = append(append(h, segs...), data...)
	binary.LittleEndian.PutUint32(h[22:], crc(0, h))
	ow.seq++
	if _, err := ow.w.Write(h); err != nil {
		return fmt.Errorf("oggopus: write page: %w", err)
	}
	return nil
}

// DCAMeta is the part of a DCA's JSON metadata MuxDCA reads: the title,
// the channels and what the encoder recorded of the Opus stream.
type DCAMeta struct {
	Opus *struct {
		Channels int `json:"channels"`
	} `json:"opus"`
	Info *struct {
		Title string `json:"title"`
	} `json:"info"`
	Butakero *struct {
		PreSkip int   `json:"pre_skip"`
		Samples int64 `json:"samples"`
	} `json:"butakero"`
}

// DefaultPreSkip is the pre-skip of a DCA whose metadata does not say:
// libopus's 6.5 ms look-ahead, what ffmpeg writes for its encodes.
const DefaultPreSkip = 312

// MuxDCA reads a DCA1 file from src and writes its packets to dst as an
// Ogg Opus stream: OpusHead with the DCA's pre-skip and channels, OpusTags
// with the title, then the packets, the end trimmed to the DCA's sample
// count. The output depends only on the DCA's bytes and serial, so two
// calls write the same bytes (the gateway counts the length, then sends a
// range). It streams, in constant memory, and writes out what it muxed
// whenever src has nothing more at hand, so a DCA still being made is
// muxed as it comes.
func MuxDCA(dst io.Writer, src io.Reader, serial uint32) error {
	br := bufio.NewReaderSize(src, 64<<10)
	hdr, err := dcahead.Read(br)
	if err != nil {
		return fmt.Errorf("oggopus: %w", err)
	}
	var meta DCAMeta
	if err := json.Unmarshal(hdr[8:], &meta); err != nil {
		return fmt.Errorf("oggopus: DCA metadata: %w", err)
	}
	head := Head{Channels: 2, PreSkip: DefaultPreSkip, InputRate: SampleRate}
	if meta.Opus != nil && (meta.Opus.Channels == 1 || meta.Opus.Channels == 2) {
		head.Channels = meta.Opus.Channels
	}
	var total int64 = -1
	if b := meta.Butakero; b != nil {
		head.PreSkip = b.PreSkip
		if b.Samples > 0 {
			total = b.Samples
		}
	}
	comments := []string{}
	if meta.Info != nil && meta.Info.Title != "" {
		comments = append(comments, "TITLE="+meta.Info.Title)
	}
	bw := bufio.NewWriterSize(dst, 64<<10)
	ow, err := NewWriter(bw, serial, head, Tags("butakero", comments...))
	if err != nil {
		return err
	}
	var samples int64
	buf := make([]byte, 0, 4096)
	for i := 0; ; i++ {
		if br.Buffered() == 0 {
			// The source may be a DCA in the making: what is muxed goes
			// out before waiting for more.
			if err := bw.Flush(); err != nil {
				return err
			}
		}
		var l [2]byte
		if _, err := io.ReadFull(br, l[:]); err == io.EOF {
			break
		} else if err != nil {
			return fmt.Errorf("oggopus: DCA frame %d: %w", i, err)
		}
		m := int(int16(binary.LittleEndian.Uint16(l[:])))
		if m <= 0 {
			return fmt.Errorf("oggopus: DCA frame %d has length %d", i, m)
		}
		if cap(buf) < m {
			buf = make([]byte, m)
		}
		buf = buf[:m]
		if _, err := io.ReadFull(br, buf); err != nil {
			return fmt.Errorf("oggopus: DCA frame %d: %w", i, err)
		}
		d, err := PacketSamples(buf)
		if err != nil {
			return fmt.Errorf("oggopus: DCA frame %d: %w", i, err)
		}
		samples += int64(d)
		if err := ow.WritePacket(buf, d); err != nil {
			return err
		}
	}
	if total < 0 {
		// Not stated: what the packets hold after the pre-skip, the most
		// the stream can last.
		total = max(samples-int64(head.PreSkip), 0)
	}
	if err := ow.Close(total); err != nil {
		return err
	}
	return bw.Flush()
}
