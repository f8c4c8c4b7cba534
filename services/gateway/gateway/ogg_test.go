package gateway_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/butakero/butakero/platform/projection"
	"github.com/butakero/butakero/platform/testkit/audiofixture"
)

// dcaFromOgg makes a DCA of an Ogg Opus file's packets, as the encoder
// does, with the metadata it writes.
func dcaFromOgg(t *testing.T, ogg []byte, meta map[string]any) []byte {
	t.Helper()
	var packets [][]byte
	var cur []byte
	for b := ogg; len(b) > 0; {
		if len(b) < 27 || string(b[:4]) != "OggS" {
			t.Fatal("not an Ogg page")
		}
		n := int(b[26])
		data := b[27+n:]
		off := 0
		for _, l := range b[27 : 27+n] {
			cur = append(cur, data[off:off+int(l)]...)
			off += int(l)
			if l < 255 {
				packets = append(packets, cur)
				cur = nil
			}
		}
		b = data[off:]
	}
	js, err := json.Marshal(meta)
	if err != nil {
		t.Fatal(err)
	}
	dca := append([]byte("DCA1"), binary.LittleEndian.AppendUint32(nil, uint32(len(js)))...)
	dca = append(dca, js...)
	for _, p := range packets[2:] { // after OpusHead and OpusTags
		dca = binary.LittleEndian.AppendUint16(dca, uint16(len(p)))
		dca = append(dca, p...)
	}
	return dca
}

// decodedDuration is what ffmpeg decodes of an Ogg file.
func decodedDuration(t *testing.T, path string) time.Duration {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-hide_banner", "-nostats", "-i", path, "-f", "s16le", "-ac", "1", "-ar", "48000", "-").Output()
	if err != nil {
		t.Fatalf("ffmpeg decode: %v", err)
	}
	return time.Duration(len(out)/2) * time.Second / 48000
}

func TestOgg(t *testing.T) {
	h := start(t)
	ctx := context.Background()
	dir := t.TempDir()
	src := audiofixture.Make(t, dir, audiofixture.Spec{Name: "src.ogg", Duration: 3*time.Second + 310*time.Millisecond,
		Args: []string{"-ac", "2", "-c:a", "libopus", "-b:a", "96k", "-frame_duration", "20"}})
	ogg, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	const samples = 3310 * 48
	dca := dcaFromOgg(t, ogg, map[string]any{
		"opus":     map[string]any{"channels": 2, "sample_rate": 48000},
		"info":     map[string]any{"title": "Canción"},
		"butakero": map[string]any{"mode": "passthrough", "pre_skip": 312, "samples": samples},
	})
	info, err := h.blobs.Put(ctx, "audio/oggsong0001.dca", "audio/x-dca", nil, bytes.NewReader(dca))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.store.PutSong(ctx, projection.Song{ID: "oggsong0001", Title: "Canción", DCAKey: "audio/oggsong0001.dca", DCASize: int64(len(dca))}); err != nil {
		t.Fatal(err)
	}
	etag := `"ogg-` + info.Digest + `"`

	whole := h.do(t, http.MethodGet, "/v1/songs/oggsong0001/ogg", nil)
	if whole.status != 200 || whole.header.Get("Content-Type") != "audio/ogg; codecs=opus" || whole.header.Get("ETag") != etag ||
		whole.header.Get("Cache-Control") != "public, max-age=86400" || whole.header.Get("Content-Length") != strconv.Itoa(len(whole.body)) {
		t.Fatalf("GET /ogg: %d %v", whole.status, whole.header)
	}
	path := filepath.Join(dir, "served.opus")
	if err := os.WriteFile(path, whole.body, 0o644); err != nil {
		t.Fatal(err)
	}
	// opusinfo checks the stream's framing, headers and granule positions.
	out, err := exec.Command("opusinfo", path).CombinedOutput()
	if err != nil || bytes.Contains(bytes.ToLower(out), []byte("warning")) || !bytes.Contains(out, []byte("TITLE=Canción")) {
		t.Fatalf("opusinfo: %v\n%s", err, out)
	}
	if d := decodedDuration(t, path); (d - samples*time.Second/48000).Abs() > 20*time.Millisecond {
		t.Fatalf("decodes to %s, the song lasts %s", d, time.Duration(samples)*time.Second/48000)
	}

	size := len(whole.body)
	body := whole.body
	for _, tc := range []struct {
		name         string
		method       string
		header       map[string]string
		status       int
		want         []byte
		contentRange string
	}{
		{"range", "", map[string]string{"Range": "bytes=100-4099"}, 206, body[100:4100], "bytes 100-4099/" + strconv.Itoa(size)},
		{"suffix", "", map[string]string{"Range": "bytes=-10"}, 206, body[size-10:], "bytes " + strconv.Itoa(size-10) + "-" + strconv.Itoa(size-1) + "/" + strconv.Itoa(size)},
		{"past the end", "", map[string]string{"Range": "bytes=" + strconv.Itoa(size) + "-"}, 416, nil, "bytes */" + strconv.Itoa(size)},
		{"If-None-Match", "", map[string]string{"If-None-Match": etag}, 304, []byte{}, ""},
		{"stale If-Range", "", map[string]string{"Range": "bytes=0-1", "If-Range": `"old"`}, 200, body, ""},
		{"HEAD", http.MethodHead, nil, 200, []byte{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.method
			if m == "" {
				m = http.MethodGet
			}
			r := h.do(t, m, "/v1/songs/oggsong0001/ogg", tc.header)
			if r.status != tc.status || r.header.Get("Content-Range") != tc.contentRange {
				t.Fatalf("%d %q, want %d %q", r.status, r.header.Get("Content-Range"), tc.status, tc.contentRange)
			}
			if tc.want != nil && !bytes.Equal(r.body, tc.want) {
				t.Fatalf("body: %d bytes, want %d", len(r.body), len(tc.want))
			}
			if m == http.MethodHead && r.header.Get("Content-Length") != strconv.Itoa(size) {
				t.Fatalf("HEAD Content-Length %q, want %d", r.header.Get("Content-Length"), size)
			}
		})
	}
	for _, p := range []string{"/v1/songs/unknownsong/ogg", "/v1/songs/a.b/ogg"} {
		if r := h.do(t, http.MethodGet, p, nil); r.status != 404 && r.status != 400 || !strings.Contains(string(r.body), `"error"`) {
			t.Errorf("%s: %d %s", p, r.status, r.body)
		}
	}
}
