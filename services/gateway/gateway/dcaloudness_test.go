package gateway_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/butakero/butakero/platform/media/dcahead"
	"github.com/butakero/butakero/platform/projection"
)

// TestDCALoudnessInTheHeader serves a streamed DCA, whose stored header
// has no loudness (the encoder writes it before it has heard the song),
// for a song the catalog has measured: /v1/songs/{id}/dca answers the
// stored frames, byte for byte, after a header whose metadata carries the
// catalog's loudness, with its own length, ETag and ranges; a song not
// measured yet is served as it is stored.
func TestDCALoudnessInTheHeader(t *testing.T) {
	h := start(t)
	ctx := context.Background()
	// As the encoder writes a streamed header: room for the loudness.
	meta := `{"opus":{"channels":2},"info":{"title":"Song"},"butakero":{"mode":"passthrough","pre_skip":312,"samples":9600000}}` + strings.Repeat(" ", dcahead.LoudnessRoom)
	stored := append([]byte(dcahead.Magic), binary.LittleEndian.AppendUint32(nil, uint32(len(meta)))...)
	stored = append(stored, meta...)
	// More than one object store chunk (128 KiB) of frames.
	frames := make([]byte, 300_000)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range frames {
		frames[i] = byte(rng.UintN(256))
	}
	stored = append(stored, frames...)
	lufs, peak := -17.25, -2.5
	for _, id := range []string{"measuredsng", "notmeasured"} {
		_, err := h.blobs.Put(ctx, "audio/"+id+".dca", "audio/x-dca", nil, bytes.NewReader(stored))
		if err != nil {
			t.Fatal(err)
		}
		song := projection.Song{ID: id, Title: "Song", DCAKey: "audio/" + id + ".dca", DCASize: int64(len(stored))}
		if id == "measuredsng" {
			song.LoudnessLUFS, song.TruePeakDB = &lufs, &peak
		}
		if err := h.store.PutSong(ctx, song); err != nil {
			t.Fatal(err)
		}
	}

	whole := h.do(t, http.MethodGet, "/v1/songs/measuredsng/dca", nil)
	if whole.status != 200 {
		t.Fatalf("status %d: %s", whole.status, whole.body)
	}
	hdr, err := dcahead.Read(bytes.NewReader(whole.body))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Info     struct{ Title string }
		Butakero struct {
			Mode         string   `json:"mode"`
			PreSkip      int      `json:"pre_skip"`
			Samples      int64    `json:"samples"`
			LoudnessLUFS *float64 `json:"loudness_lufs"`
			TruePeakDB   *float64 `json:"true_peak_db"`
		}
	}
	if err := json.Unmarshal(hdr[8:], &got); err != nil {
		t.Fatal(err)
	}
	b := got.Butakero
	if b.LoudnessLUFS == nil || *b.LoudnessLUFS != lufs || b.TruePeakDB == nil || *b.TruePeakDB != peak {
		t.Fatalf("metadata loudness %v / %v, want %v / %v: %s", b.LoudnessLUFS, b.TruePeakDB, lufs, peak, hdr[8:])
	}
	if b.Mode != "passthrough" || b.PreSkip != 312 || b.Samples != 9600000 || got.Info.Title != "Song" {
		t.Fatalf("the rest of the metadata changed: %s", hdr[8:])
	}
	if !bytes.Equal(whole.body[len(hdr):], frames) {
		t.Fatalf("%d bytes after the header, want the stored %d bytes of frames", len(whole.body)-len(hdr), len(frames))
	}
	size := len(whole.body)
	if size != len(stored) {
		t.Fatalf("served %d bytes, the stored DCA has %d: the loudness did not fit its room", size, len(stored))
	}
	if cl := whole.header.Get("Content-Length"); cl != strconv.Itoa(size) {
		t.Fatalf("Content-Length %s, want %d", cl, size)
	}
	raw := h.do(t, http.MethodGet, "/v1/songs/notmeasured/dca", nil)
	if raw.status != 200 || !bytes.Equal(raw.body, stored) {
		t.Fatalf("a song not measured: %d, %d bytes, want the stored %d", raw.status, len(raw.body), len(stored))
	}
	if cc := whole.header.Get("Cache-Control"); cc != "public, max-age=86400" {
		t.Errorf("Cache-Control %q of a measured song, want public, max-age=86400", cc)
	}
	if cc := raw.header.Get("Cache-Control"); cc != "public, no-cache" {
		t.Errorf("Cache-Control %q of a song not measured yet, want public, no-cache", cc)
	}
	etag := whole.header.Get("ETag")
	if etag == "" || etag == raw.header.Get("ETag") {
		t.Fatalf("ETag %q: want one of its own, not the stored bytes' %q", etag, raw.header.Get("ETag"))
	}

	// Measured later: the same song's DCA now carries it, under the
	// new ETag; a range asked If-Range the old one gets the whole DCA.
	if err := h.store.PutSong(ctx, projection.Song{ID: "notmeasured", Title: "Song", DCAKey: "audio/notmeasured.dca", DCASize: int64(len(stored)), LoudnessLUFS: &lufs, TruePeakDB: &peak}); err != nil {
		t.Fatal(err)
	}
	later := h.do(t, http.MethodGet, "/v1/songs/notmeasured/dca", map[string]string{"Range": "bytes=0-9", "If-Range": raw.header.Get("ETag")})
	if later.status != 200 || !bytes.Equal(later.body, whole.body) || later.header.Get("ETag") != etag {
		t.Fatalf("measured later, If-Range the old ETag: %d, %d bytes, ETag %s: want 200, the completed DCA, %s", later.status, len(later.body), later.header.Get("ETag"), etag)
	}

	n := len(hdr)
	sizeS := strconv.Itoa(size)
	for _, tc := range []struct {
		name   string
		method string
		header map[string]string
		status int
		body   []byte
		length int
	}{
		{name: "range in the header", header: map[string]string{"Range": "bytes=0-3"}, status: 206, body: []byte("DCA1")},
		{name: "range across the header's end", header: map[string]string{"Range": "bytes=" + strconv.Itoa(n-5) + "-" + strconv.Itoa(n+9)}, status: 206, body: whole.body[n-5 : n+10]},
		{name: "range in the frames", header: map[string]string{"Range": "bytes=200000-200099"}, status: 206, body: whole.body[200000:200100]},
		{name: "suffix range", header: map[string]string{"Range": "bytes=-7"}, status: 206, body: frames[len(frames)-7:]},
		{name: "If-None-Match of the stored bytes", header: map[string]string{"If-None-Match": raw.header.Get("ETag")}, status: 200, body: whole.body},
		{name: "If-None-Match current", header: map[string]string{"If-None-Match": etag}, status: 304, body: []byte{}},
		{name: "HEAD", method: http.MethodHead, status: 200, body: []byte{}, length: size},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method := http.MethodGet
			if tc.method != "" {
				method = tc.method
			}
			r := h.do(t, method, "/v1/songs/measuredsng/dca", tc.header)
			if r.status != tc.status || !bytes.Equal(r.body, tc.body) {
				t.Fatalf("%d, %d bytes, want %d, %d bytes", r.status, len(r.body), tc.status, len(tc.body))
			}
			if tc.status == 206 {
				from := strconv.Itoa(size - len(tc.body))
				if tc.header["Range"][6] != '-' {
					from = tc.header["Range"][6:bytes.IndexByte([]byte(tc.header["Range"]), '-')]
				}
				f, _ := strconv.Atoi(from)
				want := "bytes " + from + "-" + strconv.Itoa(f+len(tc.body)-1) + "/" + sizeS
				if cr := r.header.Get("Content-Range"); cr != want {
					t.Errorf("Content-Range %q, want %q", cr, want)
				}
			}
			if tc.method == http.MethodHead {
				if cl := r.header.Get("Content-Length"); cl != strconv.Itoa(tc.length) {
					t.Errorf("Content-Length %s, want %d", cl, tc.length)
				}
			}
		})
	}

	// A header that has its own loudness (LOUDNESS_TARGET measured the
	// source first) is served as stored, whatever the catalog says.
	ownMeta := `{"butakero":{"mode":"passthrough","loudness_lufs":-14,"true_peak_db":-1,"pre_skip":312}}`
	own := append([]byte(dcahead.Magic), binary.LittleEndian.AppendUint32(nil, uint32(len(ownMeta)))...)
	own = append(append(own, ownMeta...), frames...)
	if _, err := h.blobs.Put(ctx, "audio/ownloudnes.dca", "audio/x-dca", nil, bytes.NewReader(own)); err != nil {
		t.Fatal(err)
	}
	if err := h.store.PutSong(ctx, projection.Song{ID: "ownloudnes", DCAKey: "audio/ownloudnes.dca", DCASize: int64(len(own)), LoudnessLUFS: &lufs, TruePeakDB: &peak}); err != nil {
		t.Fatal(err)
	}
	if r := h.do(t, http.MethodGet, "/v1/songs/ownloudnes/dca", nil); r.status != 200 || !bytes.Equal(r.body, own) {
		t.Fatalf("a header with its own loudness: %d, %d bytes, want the stored %d", r.status, len(r.body), len(own))
	}

	// A DCA stored before the encoder left room: its header grows, the
	// frames follow it unchanged.
	oldMeta := strings.TrimRight(meta, " ")
	old := append([]byte(dcahead.Magic), binary.LittleEndian.AppendUint32(nil, uint32(len(oldMeta)))...)
	old = append(append(old, oldMeta...), frames...)
	if _, err := h.blobs.Put(ctx, "audio/oldheader1.dca", "audio/x-dca", nil, bytes.NewReader(old)); err != nil {
		t.Fatal(err)
	}
	if err := h.store.PutSong(ctx, projection.Song{ID: "oldheader1", DCAKey: "audio/oldheader1.dca", DCASize: int64(len(old)), LoudnessLUFS: &lufs, TruePeakDB: &peak}); err != nil {
		t.Fatal(err)
	}
	grown := h.do(t, http.MethodGet, "/v1/songs/oldheader1/dca", nil)
	gh, err := dcahead.Read(bytes.NewReader(grown.body))
	if err != nil || grown.status != 200 {
		t.Fatalf("%d %v", grown.status, err)
	}
	if len(gh) <= len(old)-len(frames) || !bytes.Equal(grown.body[len(gh):], frames) || !bytes.Contains(gh, []byte(`"loudness_lufs":-17.25`)) {
		t.Fatalf("a header without room: %d bytes served (header %d), the stored %d", len(grown.body), len(gh), len(old))
	}
	part := h.do(t, http.MethodGet, "/v1/songs/oldheader1/dca", map[string]string{"Range": "bytes=" + strconv.Itoa(len(gh)-2) + "-" + strconv.Itoa(len(gh)+2)})
	if part.status != 206 || !bytes.Equal(part.body, grown.body[len(gh)-2:len(gh)+3]) {
		t.Fatalf("range across a grown header: %d %q", part.status, part.body)
	}
}
