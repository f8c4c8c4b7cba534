package sourcestream

import "encoding/binary"

// MaxPrefix is the most of a source read before deciding whether it can
// be decoded as it arrives: an MP4 whose index (moov) is larger than this
// is left to the staged blob.
const MaxPrefix = 16 << 20

// matroskaPrefix is how much of a Matroska/WebM file holds its header
// (EBML header, Segment Info with the duration, Tracks).
const matroskaPrefix = 256 << 10

// Streamable tells, from the first bytes of a source, whether ffmpeg can
// decode it from a pipe as it arrives, and read its duration from those
// bytes alone. need is how many bytes it wants to decide (more than
// len(prefix): read on and ask again, unless the source ended: then decide
// on what there is), and, once decided, how many bytes of the prefix hold
// the header a probe needs.
//
//   - MP4/M4A/MOV (an "ftyp" box first): only with the index (the "moov"
//     box) before the media ("mdat"): "faststart". A file whose moov comes
//     last cannot be decoded before it is whole.
//   - Matroska/WebM: yes; its header comes first.
//   - anything else (MP3, Ogg, WAV…): no, since its duration is not in its
//     first bytes: the staged blob is encoded as before.
func Streamable(prefix []byte) (decided, ok bool, need int, reason string) {
	switch {
	case len(prefix) < 12:
		return false, false, 12, ""
	case string(prefix[4:8]) == "ftyp":
		return mp4(prefix)
	case binary.BigEndian.Uint32(prefix) == 0x1A45DFA3:
		return true, true, matroskaPrefix, "matroska"
	}
	return true, false, 0, "the container does not say its duration in its first bytes"
}

// mp4 walks the top-level boxes of an MP4 until its moov or its mdat.
func mp4(b []byte) (decided, ok bool, need int, reason string) {
	off := 0
	for {
		if off+8 > len(b) {
			return false, false, off + 16, ""
		}
		size := int64(binary.BigEndian.Uint32(b[off:]))
		typ := string(b[off+4 : off+8])
		hdr := int64(8)
		if size == 1 {
			if off+16 > len(b) {
				return false, false, off + 16, ""
			}
			size, hdr = int64(binary.BigEndian.Uint64(b[off+8:])), 16
		}
		switch {
		case typ == "mdat":
			return true, false, 0, "the MP4's index comes after its media (no faststart)"
		case size == 0 || size < hdr:
			return true, false, 0, "the MP4's boxes are malformed"
		case int64(off)+size > MaxPrefix:
			return true, false, 0, "the MP4's index is too large"
		case typ == "moov":
			end := off + int(size)
			if end > len(b) {
				return false, false, end, ""
			}
			return true, true, end, "faststart MP4"
		}
		off += int(size)
	}
}
