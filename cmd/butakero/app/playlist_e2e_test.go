package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/butakero/butakero/platform/testkit/audiofixture"
	"github.com/butakero/butakero/services/resolver/youtubetest"
	"github.com/coder/websocket"
)

// TestPlaylists runs the all-in-one with the fake Data API and
// MAX_ATTEMPTS=1:
//
//   - a YouTube playlist of five items resolves into five children with
//     the videos' ids and titles; the private one fails at resolve, the
//     others at fetch (YouTube cannot be reached from here), and the parent
//     ends failed with those counts; asked for again, it is listed from
//     the cache, with no playlistItems.list call;
//   - an M3U file of five entries on an allowed host, one of them corrupt,
//     ends partial with four songs stored;
//   - the seed's /api/audio/start answers a playlist with its parent's id
//     and an empty song_id;
//   - cancelling a parent cancels its unfinished children.
func TestPlaylists(t *testing.T) {
	yt := youtubetest.Start(t)
	ids := []string{"aaaaaaaaaa1", "bbbbbbbbbb2", "ccccccccc3c", "privateprv4", "ddddddddd5d"}
	for i, id := range ids {
		v := youtubetest.Video{ID: id, Title: fmt.Sprintf("Song %d", i+1), Channel: "Band", Duration: "PT3M"}
		if strings.HasPrefix(id, "private") {
			v.Privacy = "private"
		}
		yt.AddVideo(v)
	}
	const list = "PLfive0000000000000000000000000001"
	yt.AddPlaylist(list, ids...)

	media := t.TempDir()
	var m3u strings.Builder
	m3u.WriteString("#EXTM3U\n")
	for i := range 5 {
		name := fmt.Sprintf("track%d.m4a", i)
		if i == 2 {
			name = "corrupt.mp3"
			if err := os.WriteFile(filepath.Join(media, name), []byte(strings.Repeat("not audio ", 8192)), 0o644); err != nil {
				t.Fatal(err)
			}
		} else {
			audiofixture.Make(t, media, audiofixture.M4A(name, time.Duration(2+i)*time.Second))
		}
		fmt.Fprintf(&m3u, "#EXTINF:%d,Track %d\n%s\n", 2+i, i, name)
	}
	if err := os.WriteFile(filepath.Join(media, "five.m3u"), []byte(m3u.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(media, "seed.m3u"), []byte("#EXTM3U\n#EXTINF:2,Track 0\ntrack0.m4a\n#EXTINF:3,Track 1\ntrack1.m4a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	audiofixture.Make(t, media, audiofixture.Spec{Name: "long1.wav", Duration: 20 * time.Minute, Args: []string{"-c:a", "pcm_s16le", "-ar", "8000", "-ac", "1"}})
	audiofixture.Make(t, media, audiofixture.Spec{Name: "long2.wav", Duration: 20 * time.Minute, Args: []string{"-c:a", "pcm_s16le", "-ar", "8000", "-ac", "1"}})
	if err := os.WriteFile(filepath.Join(media, "long.m3u"), []byte("#EXTM3U\n#EXTINF:1200,One\nlong1.wav\n#EXTINF:1200,Two\nlong2.wav\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	audiofixture.Make(t, media, audiofixture.Spec{Name: "five1.wav", Duration: 5 * time.Minute, Args: []string{"-c:a", "pcm_s16le", "-ar", "8000", "-ac", "1"}})
	audiofixture.Make(t, media, audiofixture.Spec{Name: "five2.wav", Duration: 5 * time.Minute, Args: []string{"-c:a", "pcm_s16le", "-ar", "8000", "-ac", "1"}})
	if err := os.WriteFile(filepath.Join(media, "two.m3u"), []byte("#EXTM3U\nfive1.wav\nfive2.wav\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := audiofixture.Serve(t, media)

	in := start(t, t.TempDir(), map[string]string{
		"YOUTUBE_API_KEY":      youtubetest.Key,
		"YOUTUBE_API_BASE_URL": yt.URL,
		"MAX_ATTEMPTS":         "1",
	})

	t.Run("a YouTube playlist", func(t *testing.T) {
		parent := in.createOperation(t, "https://www.youtube.com/playlist?list="+list)
		st := in.waitV1Final(t, parent, 3*time.Minute)
		if st.Status != "failed" {
			t.Errorf("parent ended %q (%s), want failed", st.Status, st.Message)
		}
		if len(st.Children) != len(ids) {
			t.Fatalf("%d children, want %d: %+v", len(st.Children), len(ids), st.Children)
		}
		for i, c := range st.Children {
			if c.SongID != ids[i] || c.Title != fmt.Sprintf("Song %d", i+1) && !strings.HasPrefix(ids[i], "private") {
				t.Errorf("child %d: song %q %q, want %q", i, c.SongID, c.Title, ids[i])
			}
			if c.Status != "failed" {
				t.Errorf("child %d (%s) ended %q", i, c.SongID, c.Status)
			}
			child := in.v1Status(t, c.OperationID)
			wantStage := "fetch"
			if strings.HasPrefix(ids[i], "private") {
				wantStage = "resolve"
			}
			if !strings.Contains(strings.Join(child.kinds(), " "), "operation.failed") || !failedAt(child, wantStage) {
				t.Errorf("child %d (%s) history %v, want a failure at %s", i, c.SongID, child.kinds(), wantStage)
			}
		}
		if st.Counts["failed"] != 5 || st.Counts["success"] != 0 {
			t.Errorf("counts %v, want 5 failed", st.Counts)
		}
		if yt.Calls(youtubetest.PlaylistItems) != 1 {
			t.Errorf("%d playlistItems.list calls, want 1 (five items fit one page)", yt.Calls(youtubetest.PlaylistItems))
		}
	})

	t.Run("the same playlist again is listed from the cache", func(t *testing.T) {
		before := yt.Calls(youtubetest.PlaylistItems)
		parent := in.createOperation(t, "https://www.youtube.com/playlist?list="+list)
		st := in.waitV1Final(t, parent, 3*time.Minute)
		if len(st.Children) != len(ids) {
			t.Fatalf("%d children, want %d: %+v", len(st.Children), len(ids), st.Children)
		}
		for i, c := range st.Children {
			if c.SongID != ids[i] {
				t.Errorf("child %d: song %q, want %q", i, c.SongID, ids[i])
			}
		}
		if n := yt.Calls(youtubetest.PlaylistItems) - before; n != 0 {
			t.Errorf("%d more playlistItems.list calls for a playlist listed a moment ago, want none", n)
		}
	})

	t.Run("an M3U playlist with a corrupt entry", func(t *testing.T) {
		parent := in.createOperation(t, srv.URL("five.m3u"))
		st := in.waitV1Final(t, parent, 3*time.Minute)
		if st.Status != "partial" || st.Counts["success"] != 4 || st.Counts["failed"] != 1 {
			t.Fatalf("parent ended %q with %v (%s), want partial with 4 success and 1 failed", st.Status, st.Counts, st.Message)
		}
		waitFor(t, "the parent's playlist.ended", time.Minute, func() bool {
			ks := in.v1Status(t, parent).kinds()
			return len(ks) > 0 && ks[len(ks)-1] == "playlist.ended"
		})
		if ended := in.v1Status(t, parent); ended.Status != "partial" || !strings.Contains(string(ended.Events[len(ended.Events)-1].Data), `"status":"partial"`) {
			t.Errorf("after playlist.ended the parent is %q: %s", ended.Status, ended.Events[len(ended.Events)-1].Data)
		}
		for i, c := range st.Children {
			want := "success"
			if i == 2 {
				want = "failed"
			}
			if c.Status != want || c.Title != fmt.Sprintf("Track %d", i) {
				t.Errorf("child %d: %q %q, want %q", i, c.Title, c.Status, want)
			}
			if want == "success" {
				checkCovers(t, c.Title, in.dca(t, c.SongID), time.Duration(2+i)*time.Second)
			}
		}
	})

	t.Run("the seed's start answers a playlist's parent", func(t *testing.T) {
		got := in.startSong(t, srv.URL("seed.m3u"))
		if got.SongID != "" {
			t.Errorf("song_id %q for a playlist, want \"\"", got.SongID)
		}
		st := in.waitV1Final(t, got.OperationID, 3*time.Minute)
		if st.Status != "success" || len(st.Children) != 2 {
			t.Errorf("the operation answered ended %q with %d children, want the parent's success with 2", st.Status, len(st.Children))
		}
	})

	t.Run("the parent's WebSocket carries its children's progress", func(t *testing.T) {
		parent := in.createOperation(t, srv.URL("two.m3u"))
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(in.base, "http")+"/v1/operations/"+parent+"/events", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.CloseNow()
		childProgress, last := 0, ""
		for {
			_, body, err := conn.Read(ctx)
			if websocket.CloseStatus(err) == websocket.StatusNormalClosure {
				break
			}
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			var head struct {
				Type        string `json:"type"`
				Kind        string `json:"kind"`
				OperationID string `json:"operation_id"`
			}
			if err := json.Unmarshal(body, &head); err != nil {
				t.Fatal(err)
			}
			if head.Type == "progress" && head.OperationID != parent {
				childProgress++
			}
			if head.OperationID == parent {
				last = head.Kind
			}
		}
		if childProgress == 0 || last != "playlist.ended" {
			t.Errorf("%d progress messages of children, the parent's last event %q; want some and playlist.ended", childProgress, last)
		}
	})

	t.Run("cancelling a parent cancels its children", func(t *testing.T) {
		parent := in.createOperation(t, srv.URL("long.m3u"))
		waitFor(t, "the children", time.Minute, func() bool { return len(in.v1Status(t, parent).Children) == 2 })
		if code, body := in.cancel(t, parent); code != http.StatusAccepted {
			t.Fatalf("DELETE of the parent: %d %s", code, body)
		}
		st := in.v1Status(t, parent)
		if st.Status != "cancelled" {
			t.Errorf("parent is %q after the DELETE", st.Status)
		}
		for _, c := range st.Children {
			if got := in.waitV1Final(t, c.OperationID, time.Minute); got.Status != "cancelled" {
				t.Errorf("child %s ended %q, want cancelled", c.OperationID, got.Status)
			}
		}
		if code, _ := in.cancel(t, parent); code != http.StatusConflict {
			t.Errorf("a second DELETE of the parent: %d, want 409", code)
		}
	})
}

// failedAt reports whether op's operation.failed names stage.
func failedAt(op v1Op, stage string) bool {
	for _, e := range op.Events {
		if e.Kind == "operation.failed" {
			return strings.Contains(string(e.Data), `"stage":"`+stage+`"`)
		}
	}
	return false
}

// TestPlaylistWithoutKey: without YOUTUBE_API_KEY a YouTube playlist is
// listed with one yt-dlp --flat-playlist run (seen through a wrapper on
// PATH that records its arguments and runs the real yt-dlp). YouTube
// cannot be reached from here, so with MAX_ATTEMPTS=1 the parent then
// fails at resolve, saying the playlist could not be listed.
func TestPlaylistWithoutKey(t *testing.T) {
	real, err := exec.LookPath("yt-dlp")
	if err != nil {
		t.Fatalf("yt-dlp: %v", err)
	}
	dir := t.TempDir()
	argsLog := filepath.Join(dir, "args.log")
	script := "#!/bin/sh\nprintf '%s\\n' \"$*\" >> " + argsLog + "\nexec " + real + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(dir, "yt-dlp"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	in := start(t, t.TempDir(), map[string]string{"MAX_ATTEMPTS": "1", "PLAYLIST_MAX_ITEMS": "7"})

	const list = "PLnokey000000000000000000000000001"
	parent := in.createOperation(t, "https://www.youtube.com/playlist?list="+list)
	st := in.waitV1Final(t, parent, 3*time.Minute)
	if st.Status != "failed" || !failedAt(st, "resolve") || !strings.Contains(st.Message, "playlist could not be listed") {
		t.Errorf("parent ended %q at %q: %q; want failed at resolve", st.Status, st.Stage, st.Message)
	}
	raw, err := os.ReadFile(argsLog)
	if err != nil {
		t.Fatal(err)
	}
	var runs []string
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.Contains(line, "--flat-playlist") {
			runs = append(runs, line)
		}
	}
	if len(runs) != 1 || !strings.Contains(runs[0], "--playlist-end 7") || !strings.Contains(runs[0], "--ignore-config") {
		t.Errorf("yt-dlp --flat-playlist runs %q, want one with --playlist-end 7 and --ignore-config; every run:\n%s", runs, raw)
	}
}
