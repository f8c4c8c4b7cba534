package dcafile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"
)

var stdOptions = Options{BitrateKbps: 96, SampleRate: 48000, Channels: 2, FrameDuration: 20 * time.Millisecond, Application: "audio", VBR: true}

func TestRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, NewMetadata(stdOptions, "Song Título"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 150 {
		if err := w.WritePacket(bytes.Repeat([]byte{byte(i)}, 1+i%200)); err != nil {
			t.Fatal(err)
		}
	}
	if int64(buf.Len()) != w.Size() {
		t.Fatalf("Size() = %d, wrote %d", w.Size(), buf.Len())
	}
	info, err := Parse(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if info.Frames != 150 || info.Duration != 3*time.Second || info.Size != int64(buf.Len()) {
		t.Fatalf("info = %+v", info)
	}
	if info.Metadata.SongInfo.Title != "Song Título" || info.Metadata.Opus.FrameSize != 1920 || info.Metadata.Opus.Bitrate != 96000 || info.Metadata.Dca.Version != 1 {
		t.Fatalf("metadata = %+v %+v", info.Metadata.SongInfo, info.Metadata.Opus)
	}
}

func TestWriteFrameRejectsBadPrefix(t *testing.T) {
	w, err := NewWriter(&bytes.Buffer{}, NewMetadata(stdOptions, ""))
	if err != nil {
		t.Fatal(err)
	}
	for name, frame := range map[string][]byte{
		"short":           {1, 0},
		"prefix too long": {5, 0, 1, 2},
		"negative prefix": {0xff, 0xff, 1},
	} {
		if err := w.WriteFrame(frame); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: err = %v, want ErrFormat", name, err)
		}
	}
	if w.Frames() != 0 {
		t.Fatalf("Frames() = %d after rejected frames", w.Frames())
	}
}

func TestParseRejects(t *testing.T) {
	header := func(meta string) []byte {
		b := []byte(Magic)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(meta)))
		return append(b, meta...)
	}
	good := header(`{"opus":{"sample_rate":48000,"frame_size":1920,"channels":2}}`)
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "header"},
		{"wrong magic", append([]byte("DCA0"), good[4:]...), "magic"},
		{"ogg file", []byte("OggS\x00\x02\x00\x00\x00\x00"), "magic"},
		{"zero metadata length", header(""), "metadata length"},
		{"negative metadata length", append([]byte("DCA1"), 0xff, 0xff, 0xff, 0xff), "metadata length"},
		{"metadata cut short", good[:len(good)-3], "metadata"},
		{"metadata not JSON", header("not json"), "JSON"},
		{"frame length cut", append(append([]byte{}, good...), 3), "length"},
		{"frame cut short", append(append([]byte{}, good...), 4, 0, 1, 2), "cut short"},
		{"zero frame length", append(append([]byte{}, good...), 0, 0), "length 0"},
		{"negative frame length", append(append([]byte{}, good...), 0xfe, 0xff, 1), "length -2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(bytes.NewReader(tc.data))
			if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrFormat mentioning %q", err, tc.want)
			}
		})
	}
}

func TestParseHeaderOnly(t *testing.T) {
	var buf bytes.Buffer
	if _, err := NewWriter(&buf, NewMetadata(stdOptions, "x")); err != nil {
		t.Fatal(err)
	}
	info, err := Parse(&buf)
	if err != nil || info.Frames != 0 || info.Duration != 0 {
		t.Fatalf("info = %+v, err = %v", info, err)
	}
}
