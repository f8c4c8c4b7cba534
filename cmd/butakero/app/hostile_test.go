package app_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/butakero/butakero/platform/testkit/audiofixture"
)

// TestHostileInput sends what an attacker would through the seed's start
// endpoint: every input is refused (a 400 at the door, or the operation
// ends failed without reaching the fetch), the media server on loopback is
// never asked for anything, and no injected command runs.
func TestHostileInput(t *testing.T) {
	media := t.TempDir()
	audiofixture.Make(t, media, audiofixture.MP3("song.mp3", time.Second))
	files := audiofixture.Serve(t, media)
	port := strings.TrimPrefix(files.URL(""), "http://127.0.0.1:")
	port = strings.TrimSuffix(port, "/")
	marker := filepath.Join(t.TempDir(), "pwned")
	in := start(t, t.TempDir(), map[string]string{"MAX_ATTEMPTS": "1"})

	at := func(host string) string { return "http://" + host + ":" + port + "/song.mp3" }
	cases := []struct {
		name  string
		query string
		// refusal is "400" (refused by the gateway) or the failure code the
		// operation must end with.
		refusal string
	}{
		// SSRF: the allow-list holds 127.0.0.1; no other spelling of it, and
		// no other internal address, gets through.
		{"localhost", at("localhost"), "invalid_input"},
		{"IPv6 loopback", at("[::1]"), "invalid_input"},
		{"IPv4-mapped IPv6", at("[::ffff:127.0.0.1]"), "invalid_input"},
		{"decimal IP", at("2130706433"), "invalid_input"},
		{"hex IP", at("0x7f000001"), "invalid_input"},
		{"dotted hex IP", at("0x7f.0.0.1"), "invalid_input"},
		{"octal IP", at("0177.0.0.1"), "invalid_input"},
		{"short IP", at("127.1"), "invalid_input"},
		{"wildcard DNS lookalike", at("127.0.0.1.nip.io"), "invalid_input"},
		{"trailing dot", at("127.0.0.1."), "invalid_input"},
		{"userinfo before an allowed host", "http://user:pass@127.0.0.1:" + port + "/song.mp3", "invalid_input"},
		{"allowed host as userinfo", "http://127.0.0.1:" + port + "@evil.example/song.mp3", "invalid_input"},
		{"cloud metadata", "http://169.254.169.254/latest/meta-data/", "invalid_input"},
		{"file scheme", "file:///etc/passwd", "invalid_input"},
		{"ftp scheme", "ftp://127.0.0.1:" + port + "/song.mp3", "invalid_input"},
		{"gopher scheme", "gopher://127.0.0.1:" + port + "/_x", "invalid_input"},
		{"YouTube lookalike host", "https://www.youtube.com.evil.example/watch?v=dQw4w9WgXcQ", "invalid_input"},
		{"youtu.be lookalike host", "https://youtu.be.evil.example/dQw4w9WgXcQ", "invalid_input"},
		{"YouTube as userinfo", "https://www.youtube.com@127.0.0.1:" + port + "/song.mp3", "invalid_input"},
		// Option injection and shell metacharacters are text to search for,
		// never options or commands; with no network the search finds nothing.
		{"yt-dlp option", "--exec 'touch " + marker + "'", "not_found"},
		{"yt-dlp config option", "--config-locations /etc/passwd", "not_found"},
		{"shell substitution", "$(touch " + marker + ")", "not_found"},
		{"shell backticks", "`touch " + marker + "`", "not_found"},
		{"shell separator", "song; touch " + marker, "not_found"},
		// Malformed at the door.
		{"oversize", strings.Repeat("a", 513), "400"},
		{"invalid UTF-8", "song \xff\xfe", "400"},
		{"newline", "song\ntouch " + marker, "400"},
		{"NUL byte", "song\x00", "400"},
		{"only spaces", "   ", "400"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Post(in.base+"/api/audio/start?song="+url.QueryEscape(tc.query), "", nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if tc.refusal == "400" {
				var e struct {
					Error struct{ Code, Message string } `json:"error"`
				}
				if resp.StatusCode != http.StatusBadRequest || json.Unmarshal(body, &e) != nil || e.Error.Message == "" {
					t.Fatalf("HTTP %d %s; want 400 with a JSON error", resp.StatusCode, body)
				}
				return
			}
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("HTTP %d %s", resp.StatusCode, body)
			}
			var sr startResp
			if err := json.Unmarshal(body, &sr); err != nil {
				t.Fatal(err)
			}
			code, st := in.statusWithCode(t, sr.OperationID, 60*time.Second)
			if st.Status != "failed" || code != tc.refusal {
				t.Fatalf("ended %q with code %q (%q); want failed with %q", st.Status, code, st.Message, tc.refusal)
			}
			if st.Stage != "failed" || st.Attempts != 1 {
				t.Errorf("refusal took %d attempts (stage %q); want one, final", st.Attempts, st.Stage)
			}
		})
	}
	if n := files.TotalHits(); n != 0 {
		t.Errorf("the media server was asked %d times; want never", n)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Errorf("an injected command ran: %s exists (%v)", marker, err)
	}
}

// statusWithCode waits for the operation to end and returns its
// error_code with its status.
func (in *instance) statusWithCode(t *testing.T, opID string, within time.Duration) (string, opStatus) {
	t.Helper()
	st := in.waitFinal(t, opID, within)
	resp, err := http.Get(in.base + "/api/audio/status?operation_id=" + url.QueryEscape(opID))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Status struct {
			ErrorCode string `json:"error_code"`
		} `json:"status"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(fmt.Errorf("status body: %w", err))
	}
	return body.Status.ErrorCode, st
}
