package app_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/butakero/butakero/platform/testkit/audiofixture"
)

// TestDirectHops runs direct songs through the all-in-one whose
// ALLOWED_MEDIA_HOSTS is one loopback server, by address and port. What
// that server serves itself is stored; a song it redirects to another port
// or to [::1], or a page of it embedding audio elsewhere, ends failed at the
// first attempt with the reason, and the other servers never get a request.
func TestDirectHops(t *testing.T) {
	media := t.TempDir()
	audiofixture.Make(t, media, audiofixture.M4A("song.m4a", 2*time.Second))
	allowed := audiofixture.Serve(t, media)
	other := audiofixture.Serve(t, media)
	other6 := audiofixture.ServeAt(t, media, "[::1]:0")
	redirect := func(to string) http.Handler { return http.RedirectHandler(to, http.StatusFound) }
	allowed.Handle("/moved.m4a", redirect(allowed.URL("song.m4a")))
	allowed.Handle("/elsewhere.m4a", redirect(other.URL("song.m4a")))
	allowed.Handle("/two-hops.m4a", redirect(allowed.URL("elsewhere.m4a")))
	allowed.Handle("/ipv6.m4a", redirect(other6.URL("song.m4a")))
	allowed.Handle("/player.html", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!DOCTYPE html><html><body><audio controls src="%s"></audio></body></html>`, other.URL("song.m4a"))
	}))
	in := start(t, t.TempDir(), map[string]string{"ALLOWED_MEDIA_HOSTS": strings.TrimPrefix(allowed.Server.URL, "http://")})

	cases := []struct {
		name  string
		query string
		// wantTitle, for a success, is the song's title in the catalog.
		wantTitle string
		// wantCode and wantMessage, for a failure.
		wantCode, wantMessage string
	}{
		{name: "file on the allowed host", query: allowed.URL("song.m4a"), wantTitle: "song"},
		{name: "redirect on the allowed host", query: allowed.URL("moved.m4a"), wantTitle: "moved"},
		{name: "redirect to another port", query: allowed.URL("elsewhere.m4a"),
			wantCode: "invalid_input", wantMessage: "the source redirected to a host or port that ALLOWED_MEDIA_HOSTS does not allow; it was not fetched"},
		{name: "two redirects, the second to another port", query: allowed.URL("two-hops.m4a"),
			wantCode: "invalid_input", wantMessage: "the source redirected to a host or port that ALLOWED_MEDIA_HOSTS does not allow; it was not fetched"},
		{name: "redirect to [::1]", query: allowed.URL("ipv6.m4a"),
			wantCode: "invalid_input", wantMessage: "the source redirected to a host or port that ALLOWED_MEDIA_HOSTS does not allow; it was not fetched"},
		{name: "page embedding audio on another port", query: allowed.URL("player.html"),
			wantCode: "invalid_input", wantMessage: "the URL serves a web page (text/html), not a media file"},
		{name: "another port of the allowed address", query: other.URL("song.m4a"),
			wantCode: "invalid_input", wantMessage: "is not allowed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			op := in.startSong(t, tc.query)
			code, st := in.statusWithCode(t, op.OperationID, 90*time.Second)
			if tc.wantCode == "" {
				if st.Status != "success" {
					t.Fatalf("ended %q (%s: %q); want success", st.Status, code, st.Message)
				}
				if title := in.songTitle(t, st.SongID); title != tc.wantTitle {
					t.Errorf("catalog title %q; want %q", title, tc.wantTitle)
				}
				return
			}
			if st.Status != "failed" || code != tc.wantCode || !strings.Contains(st.Message, tc.wantMessage) {
				t.Fatalf("ended %q with %s %q; want failed with %s %q", st.Status, code, st.Message, tc.wantCode, tc.wantMessage)
			}
			if st.Attempts != 1 {
				t.Errorf("the refusal took %d attempts; want 1", st.Attempts)
			}
		})
	}
	if n := other.TotalHits() + other6.TotalHits(); n != 0 {
		t.Errorf("the servers ALLOWED_MEDIA_HOSTS does not name got %d requests; want none", n)
	}
}

// songTitle is the catalog's title of song id.
func (in *instance) songTitle(t *testing.T, id string) string {
	t.Helper()
	var song struct {
		Title string `json:"title"`
	}
	getJSON(t, in.base+"/v1/songs/"+url.PathEscape(id), &song)
	return song.Title
}
