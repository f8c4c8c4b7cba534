// Package dcahead reads a DCA1 file's header ("DCA1", int32 LE length,
// JSON metadata) and completes its metadata with a song's loudness.
//
// The encoder streams a DCA header first, before it has heard the whole
// song, so the stored header of a streamed DCA carries no loudness: the
// loudness is measured at the end (or after the DCA is stored) and goes to
// the catalog. The gateway serves /v1/songs/{id}/dca with the header
// completed from the catalog (WithLoudness), so that the DCA's metadata
// carries the measured loudness while the stored object stays, byte for
// byte, what the song's followers read as it was made.
package dcahead

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Magic opens every DCA1 file.
const Magic = "DCA1"

// LoudnessRoom is the whitespace the encoder leaves after a streamed
// header's metadata JSON (inside its length), where WithLoudness writes
// the loudness: the two fields as json.Marshal writes them take at most 83
// bytes. A header with the room completed is as long as the stored one,
// so the served DCA has the stored DCA's length.
const LoudnessRoom = 96

// MaxMetadataLen bounds the metadata JSON Read accepts (as the encoder's
// dcafile does).
const MaxMetadataLen = 16 << 20

// ErrFormat is wrapped by every error about a malformed header.
var ErrFormat = errors.New("dcahead: not a valid DCA1 header")

// Len reads the first 8 bytes of a DCA1 file and returns the length of
// its whole header: those 8 bytes and the metadata JSON.
func Len(prefix []byte) (int64, error) {
	if len(prefix) < 8 || string(prefix[:4]) != Magic {
		return 0, fmt.Errorf("%w: no DCA1 magic", ErrFormat)
	}
	n := int32(binary.LittleEndian.Uint32(prefix[4:8]))
	if n <= 0 || n > MaxMetadataLen {
		return 0, fmt.Errorf("%w: metadata length %d", ErrFormat, n)
	}
	return 8 + int64(n), nil
}

// Read reads a DCA1 header from r and returns it whole (magic, length and
// metadata JSON), leaving r at the first frame.
func Read(r io.Reader) ([]byte, error) {
	prefix := make([]byte, 8)
	if _, err := io.ReadFull(r, prefix); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	n, err := Len(prefix)
	if err != nil {
		return nil, err
	}
	hdr := make([]byte, n)
	copy(hdr, prefix)
	if _, err := io.ReadFull(r, hdr[8:]); err != nil {
		return nil, fmt.Errorf("%w: metadata: %v", ErrFormat, err)
	}
	return hdr, nil
}

// Metadata returns the metadata JSON of a whole header (as Read returns
// it).
func Metadata(hdr []byte) ([]byte, error) {
	n, err := Len(hdr)
	if err != nil {
		return nil, err
	}
	if int64(len(hdr)) != n {
		return nil, fmt.Errorf("%w: header of %d bytes, its length says %d", ErrFormat, len(hdr), n)
	}
	return hdr[8:], nil
}

// Loudness is a song's measured loudness, as the catalog holds it: nil
// when not measured or not finite (silence).
type Loudness struct {
	LUFS       *float64
	TruePeakDB *float64
}

// WithLoudness returns hdr, a whole DCA1 header, with l in its metadata's
// "butakero" object ("loudness_lufs", "true_peak_db"), and whether it
// changed anything. It changes nothing, and returns hdr itself, when l is
// empty, when the metadata already states a loudness (a DCA encoded before
// the encoder streamed, or one normalised to LOUDNESS_TARGET) or when it
// has no "butakero" object (not a DCA Butakero made). Every other field
// is kept as it was; the JSON is written again with its keys in order,
// so that the same header and loudness always give the same bytes. When
// it fits in the stored metadata's length (LoudnessRoom), it is padded to
// that length with JSON whitespace: the header keeps its length.
func WithLoudness(hdr []byte, l Loudness) ([]byte, bool, error) {
	if l.LUFS == nil && l.TruePeakDB == nil {
		return hdr, false, nil
	}
	js, err := Metadata(hdr)
	if err != nil {
		return nil, false, err
	}
	var meta map[string]json.RawMessage
	if err := json.Unmarshal(js, &meta); err != nil {
		return nil, false, fmt.Errorf("%w: metadata: %v", ErrFormat, err)
	}
	raw, ok := meta["butakero"]
	if !ok || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return hdr, false, nil
	}
	var own map[string]json.RawMessage
	if err := json.Unmarshal(raw, &own); err != nil {
		return nil, false, fmt.Errorf("%w: butakero metadata: %v", ErrFormat, err)
	}
	if _, ok := own["loudness_lufs"]; ok {
		return hdr, false, nil
	}
	if _, ok := own["true_peak_db"]; ok {
		return hdr, false, nil
	}
	set := func(k string, v *float64) error {
		if v == nil {
			return nil
		}
		b, err := json.Marshal(*v)
		if err != nil {
			return fmt.Errorf("dcahead: %s: %w", k, err)
		}
		own[k] = b
		return nil
	}
	if err := set("loudness_lufs", l.LUFS); err != nil {
		return nil, false, err
	}
	if err := set("true_peak_db", l.TruePeakDB); err != nil {
		return nil, false, err
	}
	if meta["butakero"], err = json.Marshal(own); err != nil {
		return nil, false, fmt.Errorf("dcahead: butakero metadata: %w", err)
	}
	out, err := json.Marshal(meta)
	if err != nil {
		return nil, false, fmt.Errorf("dcahead: metadata: %w", err)
	}
	if pad := len(js) - len(out); pad > 0 {
		out = append(out, bytes.Repeat([]byte{' '}, pad)...)
	}
	next := make([]byte, 0, 8+len(out))
	next = append(next, Magic...)
	next = binary.LittleEndian.AppendUint32(next, uint32(len(out)))
	next = append(next, out...)
	return next, true, nil
}
