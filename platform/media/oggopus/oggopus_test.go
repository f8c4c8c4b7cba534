package oggopus

import (
	"bytes"
	"encoding/binary"
	"testing"
)

func TestPacketSamples(t *testing.T) {
	cases := []struct {
		name   string
		packet []byte
		want   int
		bad    bool
	}{
		{"CELT FB 20 ms, one frame", []byte{31 << 3}, 960, false},
		{"CELT FB 10 ms, two frames (code 1)", []byte{30<<3 | 1}, 960, false},
		{"CELT FB 2.5 ms, code 3 with 8 frames", []byte{28<<3 | 3, 8}, 960, false},
		{"SILK WB 60 ms", []byte{11 << 3}, 2880, false},
		{"SILK NB 40 ms, two frames", []byte{2<<3 | 2}, 3840, false},
		{"hybrid FB 20 ms", []byte{15 << 3}, 960, false},
		{"CELT 20 ms, code 3 with 3 frames", []byte{31<<3 | 3, 3}, 2880, false},
		{"code 3 over 120 ms", []byte{31<<3 | 3, 7}, 0, true},
		{"code 3 without a count", []byte{31<<3 | 3}, 0, true},
		{"empty", nil, 0, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := PacketSamples(tc.packet)
			if (err != nil) != tc.bad || got != tc.want {
				t.Fatalf("PacketSamples = %d, %v; want %d (error %v)", got, err, tc.want, tc.bad)
			}
		})
	}
}

func TestHeadRoundTrip(t *testing.T) {
	h := Head{Channels: 2, PreSkip: 312, InputRate: 48000}
	got, err := ParseHead(h.Marshal())
	if err != nil || got != h {
		t.Fatalf("ParseHead(Marshal(%+v)) = %+v, %v", h, got, err)
	}
}

// TestMuxDCAPages checks the pages' framing: every page's CRC, sequence
// numbers, flags and the last granule trimmed to the DCA's samples.
func TestMuxDCAPages(t *testing.T) {
	var dca bytes.Buffer
	meta := []byte(`{"opus":{"channels":2},"info":{"title":"T"},"butakero":{"pre_skip":312,"samples":95500}}`)
	dca.WriteString("DCA1")
	dca.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(meta))))
	dca.Write(meta)
	for i := range 100 {
		p := bytes.Repeat([]byte{byte(i)}, 300) // > 255: two lacing values
		p[0] = 31 << 3
		dca.Write(binary.LittleEndian.AppendUint16(nil, uint16(len(p))))
		dca.Write(p)
	}
	var out bytes.Buffer
	if err := MuxDCA(&out, &dca, 7); err != nil {
		t.Fatal(err)
	}
	b := out.Bytes()
	var seq uint32
	var granule int64
	var flags byte
	packets := 0
	for len(b) > 0 {
		if string(b[:4]) != "OggS" {
			t.Fatalf("page %d: no capture pattern", seq)
		}
		n := int(b[26])
		size := 27 + n
		for _, l := range b[27 : 27+n] {
			size += int(l)
			if l < 255 {
				packets++
			}
		}
		page := append([]byte(nil), b[:size]...)
		want := binary.LittleEndian.Uint32(page[22:])
		clear(page[22:26])
		if crc(0, page) != want {
			t.Fatalf("page %d: bad CRC", seq)
		}
		if binary.LittleEndian.Uint32(page[18:]) != seq || binary.LittleEndian.Uint32(page[14:]) != 7 {
			t.Fatalf("page %d: sequence or serial wrong", seq)
		}
		flags = page[5]
		if seq == 0 && flags != flagBOS {
			t.Fatalf("first page flags %x", flags)
		}
		granule = int64(binary.LittleEndian.Uint64(page[6:]))
		seq++
		b = b[size:]
	}
	if flags != flagEOS || granule != 312+95500 || packets != 102 {
		t.Fatalf("last page flags %x granule %d, %d packets", flags, granule, packets)
	}
}
