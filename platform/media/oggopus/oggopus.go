// Package oggopus knows the Opus packet's table of contents (RFC 6716
// §3.1), the OpusHead and OpusTags headers (RFC 7845) and writes Ogg pages
// (RFC 3533). The encoder uses it to check that packets are 20 ms frames;
// the gateway, to serve a stored DCA as an Ogg Opus stream (MuxDCA).
//
// It reads no container: packets come from ffmpeg's Ogg output (read with
// jonas747/ogg) or from a DCA.
package oggopus

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// SampleRate is the rate every Opus duration is counted in.
const SampleRate = 48000

// FrameSamples is one 20 ms frame at SampleRate.
const FrameSamples = 960

// ErrPacket is wrapped by errors about a malformed Opus packet.
var ErrPacket = errors.New("oggopus: malformed opus packet")

// frameSamples is the duration of one frame, at 48 kHz, for each TOC
// configuration (RFC 6716 §3.1, table 2): SILK 10/20/40/60 ms, hybrid
// 10/20 ms, CELT 2.5/5/10/20 ms.
var frameSamples = [32]int{
	480, 960, 1920, 2880, 480, 960, 1920, 2880, 480, 960, 1920, 2880, // SILK NB, MB, WB
	480, 960, 480, 960, // hybrid SWB, FB
	120, 240, 480, 960, 120, 240, 480, 960, 120, 240, 480, 960, 120, 240, 480, 960, // CELT
}

// PacketSamples is the duration of an Opus packet at 48 kHz, from its TOC
// byte and, for code 3, its frame count byte.
func PacketSamples(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, fmt.Errorf("%w: empty", ErrPacket)
	}
	per := frameSamples[p[0]>>3]
	switch p[0] & 3 {
	case 0:
		return per, nil
	case 1, 2:
		return 2 * per, nil
	default:
		if len(p) < 2 {
			return 0, fmt.Errorf("%w: code 3 without a frame count", ErrPacket)
		}
		n := int(p[1] & 0x3f)
		if n == 0 || n*per > 5760 {
			return 0, fmt.Errorf("%w: %d frames of %d samples", ErrPacket, n, per)
		}
		return n * per, nil
	}
}

// Head is an OpusHead (RFC 7845 §5.1) for channel mapping family 0.
type Head struct {
	// Channels is 1 or 2.
	Channels int
	// PreSkip is how many samples (at 48 kHz) a decoder drops at the start.
	PreSkip int
	// InputRate is the original sample rate, informational.
	InputRate int
	// OutputGain is in Q7.8 dB.
	OutputGain int16
	// Family is the channel mapping family; only 0 is written.
	Family int
}

// ParseHead reads an OpusHead packet.
func ParseHead(p []byte) (Head, error) {
	if len(p) < 19 || string(p[:8]) != "OpusHead" {
		return Head{}, errors.New("oggopus: not an OpusHead")
	}
	if p[8]>>4 != 0 {
		return Head{}, fmt.Errorf("oggopus: OpusHead version %d", p[8])
	}
	return Head{
		Channels:   int(p[9]),
		PreSkip:    int(binary.LittleEndian.Uint16(p[10:])),
		InputRate:  int(binary.LittleEndian.Uint32(p[12:])),
		OutputGain: int16(binary.LittleEndian.Uint16(p[16:])),
		Family:     int(p[18]),
	}, nil
}

// Marshal is the OpusHead packet of h (mapping family 0).
func (h Head) Marshal() []byte {
	b := make([]byte, 0, 19)
	b = append(b, "OpusHead"...)
	b = append(b, 1, byte(h.Channels))
	b = binary.LittleEndian.AppendUint16(b, uint16(h.PreSkip))
	b = binary.LittleEndian.AppendUint32(b, uint32(h.InputRate))
	b = binary.LittleEndian.AppendUint16(b, uint16(h.OutputGain))
	return append(b, 0)
}

// Tags is an OpusTags packet (RFC 7845 §5.2) with vendor and comments
// ("TITLE=…").
func Tags(vendor string, comments ...string) []byte {
	b := append([]byte("OpusTags"), binary.LittleEndian.AppendUint32(nil, uint32(len(vendor)))...)
	b = append(b, vendor...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(comments)))
	for _, c := range comments {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(c)))
		b = append(b, c...)
	}
	return b
}
