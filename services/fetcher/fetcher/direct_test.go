package fetcher

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/blob"
	"github.com/butakero/butakero/platform/runtime/config"
	"github.com/butakero/butakero/platform/testkit/audiofixture"
)

// TestFetchDirect fetches direct songs from a loopback server whose
// address and port are the only entry of ALLOWED_MEDIA_HOSTS. Two other
// servers stand for every host the list does not admit: another port of
// 127.0.0.1 (also reached as localhost) and [::1]. Whatever the allowed
// server answers (redirects, pages, playlists, errors), the fetch either
// stores the file it serves itself or fails with a clear message, and the
// other servers never get a request.
func TestFetchDirect(t *testing.T) {
	_, blobs := startStore(t)
	dir := t.TempDir()
	tonePath := audiofixture.Make(t, dir, audiofixture.M4A("tone.m4a", time.Second))
	tone, err := os.ReadFile(tonePath)
	if err != nil {
		t.Fatal(err)
	}
	allowed := audiofixture.Serve(t, dir)
	other := audiofixture.Serve(t, dir)
	other6 := audiofixture.ServeAt(t, dir, "[::1]:0")
	allowedHost := strings.TrimPrefix(allowed.Server.URL, "http://")
	otherPort := other.Server.URL[strings.LastIndex(other.Server.URL, ":")+1:]

	redirect := func(to string) http.Handler { return http.RedirectHandler(to, http.StatusFound) }
	typed := func(contentType string, body []byte) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header()["Content-Type"] = nil // no guess when contentType is ""
			if contentType != "" {
				w.Header().Set("Content-Type", contentType)
			}
			_, _ = w.Write(body)
		})
	}
	status := func(code int) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", code) })
	}
	allowed.Handle("/same-host", redirect(allowed.URL("tone.m4a")))
	allowed.Handle("/off-port", redirect(other.URL("tone.m4a")))
	allowed.Handle("/two-hops", redirect(allowed.URL("off-port")))
	allowed.Handle("/to-localhost", redirect("http://localhost:"+otherPort+"/tone.m4a"))
	allowed.Handle("/to-ipv6", redirect(other6.URL("tone.m4a")))
	allowed.Handle("/to-ftp", redirect("ftp://"+allowedHost+"/tone.m4a"))
	allowed.Handle("/loop", redirect(allowed.URL("loop")))
	allowed.Handle("/page.html", typed("text/html; charset=utf-8", fmt.Appendf(nil,
		`<!DOCTYPE html><html><body><audio src="%s"></audio><video src="%s"></video></body></html>`, other.URL("tone.m4a"), other6.URL("tone.m4a"))))
	allowed.Handle("/page.xhtml", typed("application/xhtml+xml", fmt.Appendf(nil, `<html xmlns="http://www.w3.org/1999/xhtml"><body><audio src="%s"/></body></html>`, other.URL("tone.m4a"))))
	allowed.Handle("/notes.txt", typed("text/plain", []byte(other.URL("tone.m4a"))))
	allowed.Handle("/list.m3u8", typed("application/vnd.apple.mpegurl", fmt.Appendf(nil, "#EXTM3U\n#EXTINF:1,\n%s\n", other.URL("tone.m4a"))))
	allowed.Handle("/untyped", typed("", tone))
	allowed.Handle("/download", typed("audio/mp4", tone))
	allowed.Handle("/octets", typed("application/octet-stream", tone))
	allowed.Handle("/empty", typed("audio/mpeg", nil))
	allowed.Handle("/gone", status(http.StatusGone))
	allowed.Handle("/busy", status(http.StatusTooManyRequests))
	allowed.Handle("/broken", status(http.StatusBadGateway))
	allowed.Handle("/forbidden", status(http.StatusForbidden))
	allowed.Handle("/truncated", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "audio/mp4")
		w.Header().Set("Content-Length", fmt.Sprint(len(tone)+1000))
		_, _ = w.Write(tone)
	}))
	allowed.Handle("/chunked.m4a", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "audio/mp4")
		for i := 0; i < len(tone); i += 1024 {
			_, _ = w.Write(tone[i:min(i+1024, len(tone))])
			w.(http.Flusher).Flush() // no Content-Length: chunked
		}
	}))

	tests := []struct {
		name string
		url  string
		// allow is ALLOWED_MEDIA_HOSTS; "" means allowedHost alone.
		allow string
		// limit is DIRECT_MAX_BYTES; 0 means the default.
		limit int64
		// For a success: the staged file's extension and the song's title.
		wantExt, wantTitle string
		// For a failure: its code and a fragment of its message.
		wantCode events.Code
		wantMsg  string
	}{
		{name: "file", url: allowed.URL("tone.m4a"), wantExt: "m4a", wantTitle: "tone"},
		{name: "redirect on the allowed host", url: allowed.URL("same-host"), wantExt: "m4a", wantTitle: "same-host"},
		{name: "no extension: the media type's", url: allowed.URL("download"), wantExt: "m4a", wantTitle: "download"},
		{name: "no Content-Type: ffmpeg decides", url: allowed.URL("untyped"), wantExt: "bin", wantTitle: "untyped"},
		{name: "octet stream", url: allowed.URL("octets"), wantExt: "bin", wantTitle: "octets"},
		{name: "chunked", url: allowed.URL("chunked.m4a"), wantExt: "m4a", wantTitle: "chunked"},

		{name: "song URL on another port", url: other.URL("tone.m4a"),
			wantCode: events.CodeInvalidInput, wantMsg: "the song's URL is not on a host and port ALLOWED_MEDIA_HOSTS allows"},
		{name: "redirect to another port", url: allowed.URL("off-port"),
			wantCode: events.CodeInvalidInput, wantMsg: "the source redirected to a host or port that ALLOWED_MEDIA_HOSTS does not allow"},
		{name: "two redirects, the second off the allowed port", url: allowed.URL("two-hops"),
			wantCode: events.CodeInvalidInput, wantMsg: "the source redirected to a host or port that ALLOWED_MEDIA_HOSTS does not allow"},
		{name: "redirect to localhost", url: allowed.URL("to-localhost"),
			wantCode: events.CodeInvalidInput, wantMsg: "the source redirected to a host or port that ALLOWED_MEDIA_HOSTS does not allow"},
		{name: "redirect to [::1]", url: allowed.URL("to-ipv6"),
			wantCode: events.CodeInvalidInput, wantMsg: "the source redirected to a host or port that ALLOWED_MEDIA_HOSTS does not allow"},
		{name: "redirect to [::1] with every loopback port of 127.0.0.1 allowed", url: allowed.URL("to-ipv6"), allow: "127.0.0.1:*",
			wantCode: events.CodeInvalidInput, wantMsg: "the source redirected to a host or port that ALLOWED_MEDIA_HOSTS does not allow"},
		{name: "redirect to ftp", url: allowed.URL("to-ftp"),
			wantCode: events.CodeInvalidInput, wantMsg: "the source redirected to a host or port that ALLOWED_MEDIA_HOSTS does not allow"},
		{name: "redirect loop", url: allowed.URL("loop"),
			wantCode: events.CodeUnavailable, wantMsg: "the source redirected more than 5 times"},
		// The list names localhost, but a name never reaches a loopback
		// address: the dialer refuses before connecting.
		{name: "listed name resolving to loopback", url: "http://localhost:" + otherPort + "/tone.m4a", allow: "localhost:*",
			wantCode: events.CodeInvalidInput, wantMsg: "the media host resolves to an internal address"},
		{name: "HTML page embedding media on other hosts", url: allowed.URL("page.html"),
			wantCode: events.CodeInvalidInput, wantMsg: "the URL serves a web page (text/html), not a media file"},
		{name: "XHTML page", url: allowed.URL("page.xhtml"),
			wantCode: events.CodeInvalidInput, wantMsg: "the URL serves a web page (application/xhtml+xml), not a media file"},
		{name: "text", url: allowed.URL("notes.txt"),
			wantCode: events.CodeInvalidInput, wantMsg: "the URL serves text/plain, not an audio or video file"},
		{name: "HLS playlist", url: allowed.URL("list.m3u8"),
			wantCode: events.CodeInvalidInput, wantMsg: "the URL serves a playlist (application/vnd.apple.mpegurl), not a media file"},
		{name: "empty", url: allowed.URL("empty"),
			wantCode: events.CodeEmptyAudio, wantMsg: "the source gave no audio: the file is empty"},
		{name: "404", url: allowed.URL("missing.m4a"),
			wantCode: events.CodeNotFound, wantMsg: "no audio was found at this URL: the server answered HTTP 404 Not Found"},
		{name: "410", url: allowed.URL("gone"),
			wantCode: events.CodeNotFound, wantMsg: "the server answered HTTP 410 Gone"},
		{name: "429", url: allowed.URL("busy"),
			wantCode: events.CodeRateLimited, wantMsg: "the source is limiting requests (rate limited)"},
		{name: "502", url: allowed.URL("broken"),
			wantCode: events.CodeDownloadFailed, wantMsg: "the download failed: the server answered HTTP 502 Bad Gateway"},
		{name: "403", url: allowed.URL("forbidden"),
			wantCode: events.CodeUnavailable, wantMsg: "the source refused the download: the server answered HTTP 403 Forbidden"},
		{name: "body shorter than its Content-Length", url: allowed.URL("truncated"),
			wantCode: events.CodeNetwork, wantMsg: "the network failed during the download"},
		{name: "Content-Length over the limit", url: allowed.URL("tone.m4a"), limit: int64(len(tone)) - 1,
			wantCode: events.CodeUnavailable, wantMsg: "the file is larger than the " + byteSize(int64(len(tone))-1) + " limit"},
		{name: "chunked body over the limit", url: allowed.URL("chunked.m4a"), limit: 4 << 10,
			wantCode: events.CodeUnavailable, wantMsg: "the file is larger than the 4 KiB limit"},
		{name: "nothing listed", url: allowed.URL("tone.m4a"), allow: ",",
			wantCode: events.CodeInvalidInput, wantMsg: "the song's URL is not on a host and port ALLOWED_MEDIA_HOSTS allows"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			allow := tc.allow
			if allow == "" {
				allow = allowedHost
			}
			vars := map[string]string{"ALLOWED_MEDIA_HOSTS": allow}
			if tc.limit > 0 {
				vars["DIRECT_MAX_BYTES"] = fmt.Sprint(tc.limit)
			}
			cfg, err := config.Load(config.FromMap(vars))
			if err != nil {
				t.Fatal(err)
			}
			f := &Fetcher{Blobs: blobs, Config: cfg}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			before, before6 := other.TotalHits(), other6.TotalHits()
			opID := events.NewID()
			song := events.Song{ID: "url-direct", URL: tc.url, Source: SourceDirect}

			got, err := f.Fetch(ctx, opID, song, quietLog())

			if n := other.TotalHits() - before + other6.TotalHits() - before6; n != 0 {
				t.Errorf("the hosts that are not allowed got %d requests; want none", n)
			}
			if tc.wantCode == "" {
				if err != nil {
					t.Fatalf("Fetch = %v", err)
				}
				want := events.AudioDownloaded{Song: events.Song{ID: song.ID, URL: song.URL, Source: SourceDirect, Title: tc.wantTitle},
					Key: "staging/" + opID + "." + tc.wantExt, Size: int64(len(tone)), Ext: tc.wantExt}
				if got != want {
					t.Fatalf("Fetch\n got %+v\nwant %+v", got, want)
				}
				assertBlob(ctx, t, blobs, want.Key, tonePath)
				return
			}
			var fl *events.Failure
			if !errors.As(err, &fl) || fl.Code != tc.wantCode || !strings.Contains(fl.Message, tc.wantMsg) {
				t.Fatalf("Fetch = %v; want %s with %q", err, tc.wantCode, tc.wantMsg)
			}
			if u, _ := url.Parse(tc.url); strings.Contains(fl.Message, u.Host) || strings.Contains(fl.Message, "127.0.0.1") ||
				strings.Contains(fl.Message, "::1") || strings.Contains(fl.Message, "localhost") {
				t.Errorf("message %q names an address", fl.Message)
			}
			for _, ext := range []string{"m4a", "bin", "mp3"} {
				if _, err := blobs.Stat(ctx, "staging/"+opID+"."+ext); !errors.Is(err, blob.ErrNotFound) {
					t.Errorf("a failed fetch left staging/%s.%s: %v", opID, ext, err)
				}
			}
		})
	}
}

func TestMediaType(t *testing.T) {
	tests := []struct {
		header string
		want   string // "" with wantErr false: no type, accepted
		ok     bool
	}{
		{"", "", true},
		{"audio/mpeg", "audio/mpeg", true},
		{"Audio/MP4; codecs=mp4a.40.2", "audio/mp4", true},
		{"video/webm", "video/webm", true},
		{"application/octet-stream", "application/octet-stream", true},
		{"binary/octet-stream", "binary/octet-stream", true},
		{"application/ogg", "application/ogg", true},
		{"text/html; charset=utf-8", "", false},
		{"application/xhtml+xml", "", false},
		{"text/plain", "", false},
		{"application/json", "", false},
		{"audio/x-mpegurl", "", false},
		{"audio/x-scpls", "", false},
		{"not a type", "", false},
	}
	for _, tc := range tests {
		got, err := mediaType(tc.header)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("mediaType(%q) = %q, %v; want %q, ok %v", tc.header, got, err, tc.want, tc.ok)
		}
		if err != nil && events.AsFailure(err).Code != events.CodeInvalidInput {
			t.Errorf("mediaType(%q) = %v; want an invalid_input failure", tc.header, err)
		}
	}
}

func TestDirectTitle(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"http://h/media/tone.m4a", "tone"},
		{"http://h/media/My%20Song.mp3?x=1", "My Song"},
		{"http://h/media/dir/", "dir"},
		{"http://h/", ""},
		{"http://h", ""},
		{"http://h/a%0Ab.mp3", "ab"},
		{"http://h/archive.tar.gz", "archive.tar"},
	} {
		u, err := url.Parse(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		if got := directTitle(u); got != tc.want {
			t.Errorf("directTitle(%s) = %q; want %q", tc.url, got, tc.want)
		}
	}
}
