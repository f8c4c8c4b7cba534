package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/butakero/butakero/client"
	"github.com/butakero/butakero/cmd/butakero/app/apptest"
	"github.com/butakero/butakero/platform/testkit/audiofixture"
	"github.com/butakero/butakero/services/encoder/dcafile"
	"github.com/coder/websocket"
)

// execEnv, set in a child's environment, makes this test binary run the
// butakero command itself: the CLI test runs it as a separate process
// with its own stdout, stderr and exit code, as a user would.
const execEnv = "BUTAKERO_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(execEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const cliKey = "cli-test-key"

// startServer runs the all-in-one in this process on 127.0.0.1:0 with a temp
// DATA_DIR and API_KEYS=cliKey until the test ends, and returns its base URL
// once /readyz answers 200.
func startServer(t *testing.T) string {
	t.Helper()
	return apptest.Start(t, map[string]string{"API_KEYS": cliKey}).Base
}

type cliResult struct {
	stdout, stderr string
	code           int
}

// butakero runs this binary as the butakero command with args in dir and
// the given environment (nothing else of the test's: the CLI must need no
// server configuration).
func butakero(t *testing.T, dir string, env []string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Dir = dir
	cmd.Env = append([]string{execEnv + "=1", "PATH=" + os.Getenv("PATH"), "HOME=" + dir}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run butakero %v: %v", args, err)
	}
	t.Logf("butakero %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, stdout.String(), stderr.String())
	return cliResult{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

func TestCLI(t *testing.T) {
	media := t.TempDir()
	const songLen = 8 * time.Second
	audiofixture.Make(t, media, audiofixture.MP3("tune.mp3", songLen))
	audiofixture.Make(t, media, audiofixture.M4A("grow.m4a", songLen))
	audiofixture.WriteNotAudio(t, media, "corrupt.mp3")
	fixtures := audiofixture.Serve(t, media)
	base := startServer(t)
	// Server settings the CLI must ignore: serve would refuse them.
	badServerEnv := []string{"HTTP_ADDR=not an address", "MAX_ATTEMPTS=many"}
	viaEnv := append([]string{"BUTAKERO_URL=" + base, "BUTAKERO_API_KEY=" + cliKey}, badServerEnv...)

	dir := t.TempDir()
	var opID string
	t.Run("get writes the DCA and shows progress", func(t *testing.T) {
		r := butakero(t, dir, viaEnv, "get", fixtures.URL("tune.mp3"), "-o", "tune.dca")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		if strings.TrimSpace(r.stdout) != "tune.dca" {
			t.Errorf("stdout %q, want the path written", r.stdout)
		}
		// Not a terminal: one line per change, in stage order.
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		if !strings.HasPrefix(lines[0], "operation ") {
			t.Fatalf("first line %q, want the operation id", lines[0])
		}
		opID = strings.TrimPrefix(lines[0], "operation ")
		order := []string{"resolve: done", "fetch: ", "fetch: done", "encode: ", "encode: done", "wrote tune.dca"}
		at := 0
		for _, l := range lines[1:] {
			if strings.Contains(l, "\r") {
				t.Errorf("line %q redraws, but stderr is not a terminal", l)
			}
			if at < len(order) && strings.HasPrefix(l, order[at]) {
				at++
			}
		}
		if at != len(order) {
			t.Errorf("progress lines %q lack %q (in order %q)", lines, order[at], order)
		}
		f, err := os.Open(filepath.Join(dir, "tune.dca"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if st, err := f.Stat(); err != nil || st.Mode().Perm() != 0o644 {
			t.Errorf("tune.dca mode %v (%v), want -rw-r--r--", st.Mode(), err)
		}
		info, err := dcafile.Parse(f)
		if err != nil {
			t.Fatalf("tune.dca does not parse: %v", err)
		}
		if diff := (info.Duration - songLen).Abs(); diff > songLen/100 {
			t.Errorf("tune.dca covers %s, the song is %s", info.Duration, songLen)
		}
		if left, _ := filepath.Glob(filepath.Join(dir, ".*.part")); len(left) != 0 {
			t.Errorf("temporary files left: %v", left)
		}
	})

	t.Run("get --format ogg writes Ogg Opus", func(t *testing.T) {
		r := butakero(t, dir, viaEnv, "get", "--format", "ogg", fixtures.URL("tune.mp3"))
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		path := strings.TrimSpace(r.stdout)
		if !strings.HasSuffix(path, ".ogg") {
			t.Fatalf("stdout %q, want <song id>.ogg", path)
		}
		b, err := os.ReadFile(filepath.Join(dir, path))
		if err != nil {
			t.Fatal(err)
		}
		if len(b) < 100 || string(b[:4]) != "OggS" || !bytes.Contains(b[:200], []byte("OpusHead")) {
			t.Fatalf("%s is not Ogg Opus (%d bytes)", path, len(b))
		}
	})

	t.Run("get -follow writes the DCA as it is made", func(t *testing.T) {
		r := butakero(t, dir, viaEnv, "get", "-follow", fixtures.URL("grow.m4a"), "-o", "grow.dca")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		if strings.TrimSpace(r.stdout) != "grow.dca" || !strings.Contains(r.stderr, "writing grow.dca as it is made") {
			t.Fatalf("stdout %q, stderr %q", r.stdout, r.stderr)
		}
		got, err := os.ReadFile(filepath.Join(dir, "grow.dca"))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		c := &client.Client{BaseURL: base, APIKey: cliKey}
		op, err := c.Wait(context.Background(), strings.TrimPrefix(lines[0], "operation "))
		if err != nil || op.Err() != nil {
			t.Fatalf("operation: %v %v", err, op.Err())
		}
		// The stored bytes as they are: the operation's route once stored
		// (the song's route adds the loudness to the header).
		var stored bytes.Buffer
		if _, err := c.PlayDCA(context.Background(), op.ID, &stored); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, stored.Bytes()) {
			t.Fatalf("grow.dca has %d bytes, the stored DCA %d: not the same", len(got), stored.Len())
		}
	})

	tests := []struct {
		name     string
		env      []string
		args     []string
		code     int
		stdout   []string // substrings
		stderr   []string
		noFileAt string
	}{
		{name: "status of the song", env: viaEnv, args: []string{"status", opID},
			stdout: []string{"status     success", "stage      stored", "dca        " + base + "/v1/songs/"}},
		{name: "status as JSON, server by flag", env: badServerEnv, args: []string{"status", "-json", "-server", base, "-api-key", cliKey, opID},
			stdout: []string{`"status": "success"`, `"id": "` + opID + `"`}},
		{name: "a failure says why", env: viaEnv, args: []string{"get", "-o", "bad.dca", fixtures.URL("corrupt.mp3")}, code: 1,
			stderr: []string{"encode: failed", "(invalid_audio)"}, noFileAt: "bad.dca"},
		{name: "a failure says why, following", env: viaEnv, args: []string{"get", "-follow", "-o", "bad2.dca", fixtures.URL("corrupt.mp3")}, code: 1,
			stderr: []string{"operation_failed", "not audio"}, noFileAt: "bad2.dca"},
		{name: "unknown operation", env: viaEnv, args: []string{"status", "doesnotexist"}, code: 1,
			stderr: []string{"HTTP 404 not_found"}},
		{name: "wrong API key", env: append([]string{"BUTAKERO_URL=" + base, "BUTAKERO_API_KEY=nope"}, badServerEnv...), args: []string{"get", "anything"}, code: 1,
			stderr: []string{"HTTP 401 unauthorized"}},
		{name: "no song", env: viaEnv, args: []string{"get"}, code: 1, stderr: []string{"usage: butakero get"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if opID == "" {
				t.Fatal("no operation from the first case")
			}
			r := butakero(t, dir, tc.env, tc.args...)
			if r.code != tc.code {
				t.Errorf("exit %d, want %d", r.code, tc.code)
			}
			for _, s := range tc.stdout {
				if !strings.Contains(r.stdout, s) {
					t.Errorf("stdout lacks %q", s)
				}
			}
			for _, s := range tc.stderr {
				if !strings.Contains(r.stderr, s) {
					t.Errorf("stderr lacks %q", s)
				}
			}
			if tc.noFileAt != "" {
				if _, err := os.Stat(filepath.Join(dir, tc.noFileAt)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s exists after a failure (%v)", tc.noFileAt, err)
				}
			}
		})
	}
}

func TestProgressBar(t *testing.T) {
	ev := func(kind string) client.Event { return client.Event{Kind: kind} }
	prog := func(stage string, p float64) client.Event {
		return client.Event{Kind: client.KindProgress, Stage: stage, Percent: p}
	}
	failed := client.Event{Kind: client.KindOperationFailed, Data: []byte(`{"stage":"encode","code":"invalid_audio","message":"not audio"}`)}
	run := []client.Event{
		ev(client.KindSongRequested), ev(client.KindVideoResolved),
		prog("fetch", 0), prog("fetch", 0.4), prog("fetch", 42.5), prog("fetch", 42.9), prog("fetch", 100),
		ev(client.KindAudioDownloaded), prog("encode", 50), ev(client.KindDCAEncoded),
		prog("encode", 60), // late: the stage ended
		ev(client.KindUploadDone),
	}
	tests := []struct {
		name   string
		tty    bool
		events []client.Event
		want   string
	}{
		{name: "lines when not a terminal", events: run,
			want: "resolve: running\nresolve: done\nfetch: running\nfetch: 0%\nfetch: 42%\nfetch: 100%\nfetch: done\nencode: running\nencode: 50%\nencode: done\n"},
		{name: "a failure marks its stage", events: []client.Event{ev(client.KindSongRequested), ev(client.KindVideoResolved), ev(client.KindAudioDownloaded), prog("encode", 10), failed},
			want: "resolve: running\nresolve: done\nfetch: running\nfetch: done\nencode: running\nencode: 10%\nencode: failed\n"},
		{name: "one line redrawn on a terminal", tty: true, events: []client.Event{ev(client.KindVideoResolved), prog("fetch", 50), ev(client.KindUploadDone)},
			want: "\rresolve ✓  fetch ·  encode ·" +
				"\rresolve ✓  fetch …  encode ·" +
				"\rresolve ✓  fetch [##########----------]  50%  encode ·" +
				"\rresolve ✓  fetch ✓  encode ·                          " +
				"\rresolve ✓  fetch ✓  encode ✓" + "\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			b := newProgressBar(&out, tc.tty)
			for _, e := range tc.events {
				b.update(e)
			}
			b.finish()
			if out.String() != tc.want {
				t.Errorf("output\n%q\nwant\n%q", out.String(), tc.want)
			}
		})
	}
}

// hostileServer answers as a Butakero gateway would for one operation that
// succeeds, except that it names the song songID. It fails the test if
// anything asks for a DCA: the CLI must refuse the id before fetching.
func hostileServer(t *testing.T, songID string) string {
	t.Helper()
	const opID = "op-hostile"
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/operations", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(map[string]string{"operation_id": opID, "song_id": songID,
			"status_url": "/v1/operations/" + opID, "events_url": "/v1/operations/" + opID + "/events"})
	})
	mux.HandleFunc("GET /v1/operations/"+opID+"/events", func(w http.ResponseWriter, r *http.Request) {
		conn, err := websocket.Accept(w, r, nil)
		if err != nil {
			t.Errorf("accept: %v", err)
			return
		}
		defer conn.CloseNow()
		done, _ := json.Marshal(map[string]any{"type": "butakero.upload.done.v1", "kind": "upload.done", "id": "ev-1",
			"operation_id": opID, "song_id": songID, "seq": 5, "data": map[string]any{"key": "audio/" + songID + ".dca"}})
		if err := conn.Write(r.Context(), websocket.MessageText, done); err != nil {
			t.Errorf("write: %v", err)
			return
		}
		// The client closes once it has the final event.
		_, _, _ = conn.Read(r.Context())
	})
	mux.HandleFunc("GET /v1/operations/"+opID, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"id": opID, "song_id": songID, "status": "success", "stage": "stored",
			"dca_url": "/v1/songs/" + songID + "/dca", "events": []any{}})
	})
	mux.HandleFunc("/v1/songs/", func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the CLI asked for %s after the server named the song %q", r.URL.Path, songID)
		_, _ = w.Write([]byte("DCA1 not really"))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestGetRefusesHostileSongIDs runs `butakero get` without -o against a
// server that names the song with an id meant to move the default output
// path (<song id>.dca) out of the working directory. The CLI refuses the
// id: exit 1, the reason on stderr, no file written anywhere.
func TestGetRefusesHostileSongIDs(t *testing.T) {
	root := t.TempDir()
	work := filepath.Join(root, "a", "b")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		songID string
	}{
		{"parent directories", "../../escaped"},
		{"absolute path", filepath.Join(root, "absolute")},
		{"a subdirectory", "sub/dir"},
		{"dot dot", ".."},
		{"empty", ""},
		{"too long", strings.Repeat("x", 129)},
		{"option-like and a newline", "-rf\nx"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			base := hostileServer(t, tc.songID)
			r := butakero(t, work, []string{"BUTAKERO_URL=" + base}, "get", "some song")
			if r.code != 1 {
				t.Errorf("exit %d, want 1", r.code)
			}
			if !strings.Contains(r.stderr, "not a valid song id") {
				t.Errorf("stderr %q does not say the song id was refused", r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing (no path written)", r.stdout)
			}
			err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					t.Errorf("file written: %s", p)
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}
