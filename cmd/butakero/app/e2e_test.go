package app_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/butakero/butakero/cmd/butakero/app/apptest"
	"github.com/butakero/butakero/platform/testkit/audiofixture"
	"github.com/butakero/butakero/services/encoder/dcafile"
)

// instance is one all-in-one process (in this test process) on port 0.
type instance struct {
	base string
	stop func() error
}

// start runs the all-in-one on dataDir until the test ends or stop is
// called, and waits until /readyz answers 200.
func start(t *testing.T, dataDir string, env map[string]string) *instance {
	t.Helper()
	inst := launch(t, dataDir, env)
	inst.waitReady(t)
	return inst
}

// launch runs the all-in-one on dataDir until the test ends or stop is
// called, and returns once its services run, ready or not.
func launch(t *testing.T, dataDir string, env map[string]string) *instance {
	t.Helper()
	return launchLogged(t, dataDir, env, nil)
}

// launchLogged is launch with the log also written to logs, when not nil.
func launchLogged(t *testing.T, dataDir string, env map[string]string, logs io.Writer) *instance {
	t.Helper()
	vars := map[string]string{"DATA_DIR": dataDir}
	for k, v := range env {
		vars[k] = v
	}
	in := apptest.Launch(t, vars, logs)
	return &instance{base: in.Base, stop: in.Stop}
}

// waitReady polls /readyz until it answers 200.
func (in *instance) waitReady(t *testing.T) {
	t.Helper()
	(&apptest.Instance{Base: in.base}).WaitReady(t)
}

type startResp struct {
	OperationID string `json:"operation_id"`
	SongID      string `json:"song_id"`
}

type opStatus struct {
	ID             string `json:"id"`
	SongID         string `json:"song_id"`
	Status         string `json:"status"`
	Message        string `json:"message"`
	Data           string `json:"data"`
	ProcessingDate string `json:"processing_date"`
	Success        bool   `json:"success"`
	Attempts       int    `json:"attempts"`
	Failures       int    `json:"failures"`
	Stage          string `json:"stage"`
}

func (in *instance) startSong(t *testing.T, song string) startResp {
	t.Helper()
	resp, err := http.Post(in.base+"/api/audio/start?song="+url.QueryEscape(song), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("start %q: %d %s", song, resp.StatusCode, body)
	}
	var sr startResp
	if err := json.Unmarshal(body, &sr); err != nil || sr.OperationID == "" {
		t.Fatalf("start %q: body %s: %v", song, body, err)
	}
	return sr
}

func (in *instance) status(t *testing.T, opID string) (int, opStatus) {
	t.Helper()
	resp, err := http.Get(in.base + "/api/audio/status?operation_id=" + url.QueryEscape(opID))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Status opStatus `json:"status"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body.Status
}

// waitFinal polls the status endpoint, as a user would, until the
// operation is no longer in progress.
func (in *instance) waitFinal(t *testing.T, opID string, within time.Duration) opStatus {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		code, st := in.status(t, opID)
		if code != http.StatusOK {
			t.Fatalf("status of %s: HTTP %d", opID, code)
		}
		if st.Status != "iniciando" {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("operation %s still %q at stage %q after %s", opID, st.Status, st.Stage, within)
		}
		<-time.After(50 * time.Millisecond)
	}
}

// dca downloads the song's DCA and parses it.
func (in *instance) dca(t *testing.T, songID string) dcafile.Info {
	t.Helper()
	return getDCA(t, in.base, songID)
}

// getJSON GETs url and decodes its JSON body into v, failing t unless the
// answer is 200 with a body that decodes.
func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v in %s", url, err, body)
	}
}

// getDCA downloads a song's DCA from the gateway at base and parses it.
func getDCA(t *testing.T, base, songID string) dcafile.Info {
	t.Helper()
	resp, err := http.Get(base + "/v1/songs/" + url.PathEscape(songID) + "/dca")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET dca of %s: %d %s", songID, resp.StatusCode, b)
	}
	info, err := dcafile.Parse(resp.Body)
	if err != nil {
		t.Fatalf("DCA of %s does not parse: %v", songID, err)
	}
	return info
}

// TestEndToEnd runs the same cases in each profile (profiles): the
// embedded default, and the AWS one, where it also checks what was stored
// through the plain AWS APIs.
func TestEndToEnd(t *testing.T) {
	inEachProfile(t, endToEnd)
}

func endToEnd(t *testing.T, p profile) {
	media := t.TempDir()
	const d = 4 * time.Second
	specs := []struct {
		name string
		spec audiofixture.Spec
	}{
		{"m4a AAC", audiofixture.M4A("song.m4a", d)},
		{"mp3", audiofixture.MP3("song.mp3", d)},
		{"webm Opus", audiofixture.WebMOpus("song.webm", d)},
		{"ogg Vorbis", audiofixture.OggVorbis("song.ogg", d)},
		{"wav", audiofixture.WAV("song.wav", d)},
		{"mono 22 kHz", audiofixture.Mono22k("mono22k.mp3", d)},
		{"mp4 with a video track", audiofixture.MP4Video("clip.mp4", d)},
	}
	for _, s := range specs {
		audiofixture.Make(t, media, s.spec)
	}
	audiofixture.WriteNotAudio(t, media, "corrupt.mp3")
	audiofixture.Write(t, media, "empty.m4a", nil)
	srv := audiofixture.Serve(t, media)

	dataDir := t.TempDir()
	env := p.env(t)
	in := start(t, dataDir, env)

	type done struct {
		op   startResp
		st   opStatus
		info dcafile.Info
	}
	succeeded := map[string]done{}
	t.Run("succeeds", func(t *testing.T) {
		for _, s := range specs {
			t.Run(s.name, func(t *testing.T) {
				op := in.startSong(t, srv.URL(s.spec.Name))
				if op.SongID == "" {
					t.Errorf("song_id of a direct URL should be known at once, got %q", op.SongID)
				}
				if code, st := in.status(t, op.OperationID); code != http.StatusOK {
					t.Fatalf("status right after start: HTTP %d (%+v)", code, st)
				}
				st := in.waitFinal(t, op.OperationID, 90*time.Second)
				if st.Status != "success" || !st.Success || st.Stage != "stored" {
					t.Fatalf("operation ended %q at %q: %q", st.Status, st.Stage, st.Message)
				}
				if st.SongID != op.SongID || st.Data == "" || st.ProcessingDate == "" {
					t.Errorf("status lacks song_id, data or date: %+v", st)
				}
				info := in.dca(t, st.SongID)
				// The fixture holds exactly this much audio; a container's
				// own duration field may include encoder padding.
				want := s.spec.Duration
				got := info.Duration
				if diff := (got - want).Abs(); float64(diff) > 0.01*float64(want) {
					t.Errorf("DCA covers %s, source is %s: off by %s (> 1%%)", got, want, diff)
				}
				succeeded[s.name] = done{op, st, info}
			})
		}
	})

	t.Run("fails with a reason", func(t *testing.T) {
		cases := []struct{ name, file, want string }{
			{"corrupt file", "corrupt.mp3", ""},
			{"empty file", "empty.m4a", ""},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				op := in.startSong(t, srv.URL(tc.file))
				st := in.waitFinal(t, op.OperationID, 90*time.Second)
				if st.Status != "failed" || st.Success {
					t.Fatalf("operation ended %q, want failed", st.Status)
				}
				if st.Message == "" {
					t.Errorf("failed without a message: %+v", st)
				}
				if strings.Contains(st.Message, "/tmp") || strings.Contains(st.Message, "127.0.0.1") {
					t.Errorf("message leaks internals: %q", st.Message)
				}
				t.Logf("%s: %q", tc.name, st.Message)
			})
		}
	})

	t.Run("malformed requests", func(t *testing.T) {
		cases := []struct {
			name, method, path string
			want               int
		}{
			{"start without song", http.MethodPost, "/api/audio/start", http.StatusBadRequest},
			{"status without id", http.MethodGet, "/api/audio/status", http.StatusBadRequest},
			{"status of an id with a dot", http.MethodGet, "/api/audio/status?operation_id=a.b", http.StatusBadRequest},
			{"status of an unknown operation", http.MethodGet, "/api/audio/status?operation_id=doesnotexist", http.StatusNotFound},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				req, _ := http.NewRequest(tc.method, in.base+tc.path, nil)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				var body struct {
					Error struct{ Code, Message string } `json:"error"`
				}
				if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Error.Message == "" {
					t.Errorf("error body not {\"error\":{...}}: %v", err)
				}
				if resp.StatusCode != tc.want {
					t.Errorf("HTTP %d, want %d", resp.StatusCode, tc.want)
				}
			})
		}
	})

	t.Run("a restart keeps states and files", func(t *testing.T) {
		if len(succeeded) == 0 {
			t.Fatal("no song succeeded before the restart")
		}
		if err := in.stop(); err != nil {
			t.Fatal(err)
		}
		again := start(t, dataDir, env)
		for name, before := range succeeded {
			code, st := again.status(t, before.op.OperationID)
			if code != http.StatusOK || st.Status != "success" || st.Data != before.st.Data {
				t.Errorf("%s after restart: HTTP %d %+v, before %+v", name, code, st, before.st)
			}
			if info := again.dca(t, before.st.SongID); info.Frames != before.info.Frames {
				t.Errorf("%s: DCA has %d frames after restart, %d before", name, info.Frames, before.info.Frames)
			}
		}
	})

	if p.verify != nil {
		t.Run("stored where the profile says", func(t *testing.T) {
			var songs []storedSong
			for _, d := range succeeded {
				songs = append(songs, storedSong{OperationID: d.op.OperationID, SongID: d.st.SongID, Size: d.info.Size, Frames: d.info.Frames})
			}
			p.verify(t, env, songs)
		})
	}
}
