package app_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/butakero/butakero/platform/testkit/audiofixture"
)

// envNodeModules names the node_modules folder holding prism-media
// (scripts/test.sh installs it under .tools and sets it).
const envNodeModules = "BUTAKERO_NODE_MODULES"

// catalogSong is the part of GET /v1/songs/{id} these tests read.
type catalogSong struct {
	Stored       bool     `json:"stored"`
	DCAFrames    int64    `json:"dca_frames"`
	OggURL       string   `json:"ogg_url"`
	Mode         string   `json:"mode"`
	ModeReason   string   `json:"mode_reason"`
	LoudnessLUFS *float64 `json:"loudness_lufs"`
	TruePeakDB   *float64 `json:"true_peak_db"`
}

// storedSong polls GET /v1/songs/{id} until the recorder has put the
// stored song in the catalog with its loudness (a passthrough's is
// measured after the operation's end: loudness.measured).
func (in *instance) storedSong(t *testing.T, id string) catalogSong {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(in.base + "/v1/songs/" + url.PathEscape(id))
		if err != nil {
			t.Fatal(err)
		}
		var s catalogSong
		_ = json.NewDecoder(resp.Body).Decode(&s)
		resp.Body.Close()
		if s.Stored && s.DCAFrames > 0 && s.LoudnessLUFS != nil {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("song %s not in the catalog: %+v", id, s)
		}
		<-time.After(50 * time.Millisecond)
	}
}

// TestOggOpus sends each kind of source through the whole pipeline and
// checks the mode the encoder chose, then the song's /ogg stream with
// opusinfo (no warnings), ffmpeg (its decoded length) and prism-media's
// OggDemuxer under node (every packet, to the last).
func TestOggOpus(t *testing.T) {
	if os.Getenv(envNodeModules) == "" {
		t.Fatalf("%s is not set: run the tests with scripts/test.sh, which installs prism-media", envNodeModules)
	}
	media := t.TempDir()
	const d = 3*time.Second + 500*time.Millisecond
	cases := []struct {
		name string
		spec audiofixture.Spec
		mode string
	}{
		{"webm opus 20 ms", audiofixture.Spec{Name: "o20.webm", Duration: d, Args: []string{"-ac", "2", "-c:a", "libopus", "-b:a", "128k", "-frame_duration", "20"}}, "passthrough"},
		{"webm opus 60 ms", audiofixture.Spec{Name: "o60.webm", Duration: d, Args: []string{"-ac", "2", "-c:a", "libopus", "-frame_duration", "60"}}, "transcode"},
		{"ogg opus 24 kHz", audiofixture.Spec{Name: "o24.ogg", Duration: d, Args: []string{"-c:a", "libopus", "-ar", "24000"}}, "transcode"},
		{"aac", audiofixture.M4A("aac.m4a", d), "transcode"},
	}
	for _, c := range cases {
		audiofixture.Make(t, media, c.spec)
	}
	srv := audiofixture.Serve(t, media)
	in := start(t, t.TempDir(), nil)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			op := in.startSong(t, srv.URL(c.spec.Name))
			st := in.waitFinal(t, op.OperationID, 90*time.Second)
			if st.Status != "success" {
				t.Fatalf("operation ended %q: %s", st.Status, st.Message)
			}
			song := in.storedSong(t, st.SongID)
			if song.Mode != c.mode || song.ModeReason == "" || song.LoudnessLUFS == nil || song.TruePeakDB == nil || song.OggURL == "" {
				t.Fatalf("catalog song %+v, want mode %s with a reason and loudness", song, c.mode)
			}
			// The DCA's metadata carries the same, whether the encoder knew
			// the loudness when it wrote the header or not (the gateway
			// completes a streamed header from the catalog).
			b := in.dca(t, st.SongID).Metadata.Butakero
			if b == nil || b.Mode != c.mode || b.LoudnessLUFS == nil || *b.LoudnessLUFS != *song.LoudnessLUFS || b.TruePeakDB == nil || *b.TruePeakDB != *song.TruePeakDB {
				t.Fatalf("DCA metadata %+v, want mode %s and the catalog's loudness %v LUFS %v dBTP", b, c.mode, *song.LoudnessLUFS, *song.TruePeakDB)
			}
			resp, err := http.Get(in.base + song.OggURL)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "audio/ogg; codecs=opus" {
				t.Fatalf("GET %s: %d %q %v", song.OggURL, resp.StatusCode, resp.Header.Get("Content-Type"), err)
			}
			checkOgg(t, body, d, song.DCAFrames)
		})
	}
}

// checkOgg reads an Ogg Opus stream of a song lasting d with frames
// packets with opusinfo (no warnings), ffmpeg (its decoded length) and
// prism-media's OggDemuxer under node (every packet, to the last).
func checkOgg(t *testing.T, body []byte, d time.Duration, frames int64) {
	t.Helper()
	nodeModules := os.Getenv(envNodeModules)
	if nodeModules == "" {
		t.Fatalf("%s is not set: run the tests with scripts/test.sh, which installs prism-media", envNodeModules)
	}
	script, err := filepath.Abs("testdata/oggdemux.js")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "song.opus")
	if err := os.WriteFile(path, body, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("opusinfo", path).CombinedOutput()
	if err != nil || bytes.Contains(bytes.ToLower(out), []byte("warning")) {
		t.Fatalf("opusinfo: %v\n%s", err, out)
	}
	pcm, err := exec.Command("ffmpeg", "-hide_banner", "-nostats", "-loglevel", "error", "-i", path, "-f", "s16le", "-ac", "1", "-ar", "48000", "-").Output()
	if err != nil {
		t.Fatalf("ffmpeg decode: %v", err)
	}
	if got := time.Duration(len(pcm)/2) * time.Second / 48000; (got - d).Abs() > 20*time.Millisecond {
		t.Errorf("the Ogg decodes to %s, the song lasts %s", got, d)
	}
	node := exec.Command("node", script, path)
	node.Env = append(os.Environ(), "NODE_PATH="+nodeModules)
	var stderr bytes.Buffer
	node.Stderr = &stderr
	out, err = node.Output()
	if err != nil {
		t.Fatalf("prism-media's OggDemuxer: %v: %s", err, stderr.Bytes())
	}
	if n, _ := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); n != frames {
		t.Fatalf("OggDemuxer read %s packets, the DCA has %d", out, frames)
	}
}
