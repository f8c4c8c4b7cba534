package dcahead

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func header(js string) []byte {
	h := append([]byte(Magic), binary.LittleEndian.AppendUint32(nil, uint32(len(js)))...)
	return append(h, js...)
}

func ptr(v float64) *float64 { return &v }

func TestWithLoudness(t *testing.T) {
	const streamed = `{"dca":{"version":1},"opus":{"channels":2},"info":{"title":"Song"},"butakero":{"mode":"transcode","pre_skip":312,"samples":96000}}`
	tests := []struct {
		name    string
		meta    string
		l       Loudness
		changed bool
		want    map[string]any // the butakero object's loudness fields, when changed
	}{
		{name: "both measured", meta: streamed, l: Loudness{ptr(-14.25), ptr(-1.5)}, changed: true,
			want: map[string]any{"loudness_lufs": -14.25, "true_peak_db": -1.5}},
		{name: "only the peak (silence has no loudness)", meta: streamed, l: Loudness{TruePeakDB: ptr(-90)}, changed: true,
			want: map[string]any{"true_peak_db": -90.0}},
		{name: "nothing measured", meta: streamed},
		{name: "the header has its own", meta: `{"butakero":{"mode":"transcode","loudness_lufs":-13,"pre_skip":312}}`, l: Loudness{ptr(-14), ptr(-1)}},
		{name: "not a Butakero DCA", meta: `{"opus":{"channels":2}}`, l: Loudness{ptr(-14), ptr(-1)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := header(tc.meta)
			out, changed, err := WithLoudness(in, tc.l)
			if err != nil {
				t.Fatal(err)
			}
			if changed != tc.changed {
				t.Fatalf("changed %v, want %v", changed, tc.changed)
			}
			if !changed {
				if !bytes.Equal(out, in) {
					t.Fatalf("unchanged header is not the same bytes")
				}
				return
			}
			n, err := Len(out)
			if err != nil || n != int64(len(out)) {
				t.Fatalf("Len %d %v, header %d bytes", n, err, len(out))
			}
			var before, after map[string]map[string]any
			if err := json.Unmarshal([]byte(tc.meta), &before); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(out[8:], &after); err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.want {
				if after["butakero"][k] != v {
					t.Errorf("%s = %v, want %v", k, after["butakero"][k], v)
				}
				delete(after["butakero"], k)
			}
			// Every other field is kept.
			a, _ := json.Marshal(after)
			b, _ := json.Marshal(before)
			if !bytes.Equal(a, b) {
				t.Errorf("the rest changed:\n%s\nwant\n%s", a, b)
			}
			again, _, _ := WithLoudness(in, tc.l)
			if !bytes.Equal(again, out) {
				t.Error("the same header and loudness gave other bytes")
			}
		})
	}
}

// TestWithLoudnessInTheRoom completes a header with the room the encoder
// leaves: the header keeps its length, so the served DCA keeps the
// stored one's, whatever the loudness values.
func TestWithLoudnessInTheRoom(t *testing.T) {
	meta := `{"butakero":{"mode":"transcode","pre_skip":312,"samples":96000}}` + strings.Repeat(" ", LoudnessRoom)
	in := header(meta)
	// The longest floats json.Marshal writes (25 characters each).
	for _, l := range []Loudness{{ptr(-14), ptr(-1)}, {ptr(-1.2345678901234567e-06), ptr(-1.2345678901234567e-06)}, {TruePeakDB: ptr(-0.1)}} {
		out, changed, err := WithLoudness(in, l)
		if err != nil || !changed {
			t.Fatalf("%v %v", changed, err)
		}
		if len(out) != len(in) {
			t.Fatalf("completed header of %d bytes, the stored one %d", len(out), len(in))
		}
		var m struct {
			Butakero struct {
				LoudnessLUFS *float64 `json:"loudness_lufs"`
				TruePeakDB   *float64 `json:"true_peak_db"`
			}
		}
		if err := json.Unmarshal(out[8:], &m); err != nil {
			t.Fatal(err)
		}
		if !same(m.Butakero.LoudnessLUFS, l.LUFS) || !same(m.Butakero.TruePeakDB, l.TruePeakDB) {
			t.Fatalf("read back %v %v", m.Butakero.LoudnessLUFS, m.Butakero.TruePeakDB)
		}
	}
}

func same(a, b *float64) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

func TestRead(t *testing.T) {
	h := header(`{"butakero":{"mode":"passthrough"}}`)
	frames := []byte{3, 0, 0xfc, 1, 2}
	r := bytes.NewReader(append(append([]byte{}, h...), frames...))
	got, err := Read(r)
	if err != nil || !bytes.Equal(got, h) {
		t.Fatalf("Read: %q %v", got, err)
	}
	if r.Len() != len(frames) {
		t.Fatalf("Read left %d bytes, want the %d of the frames", r.Len(), len(frames))
	}
	for name, bad := range map[string][]byte{
		"no magic":         []byte("OggS\x04\x00\x00\x00{}{}"),
		"cut short":        h[:len(h)-1],
		"negative length":  append([]byte(Magic), 0xff, 0xff, 0xff, 0xff),
		"shorter than one": []byte("DC"),
	} {
		if _, err := Read(bytes.NewReader(bad)); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: %v, want ErrFormat", name, err)
		}
	}
}
