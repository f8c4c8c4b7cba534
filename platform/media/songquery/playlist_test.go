package songquery_test

import (
	"strings"
	"testing"

	"github.com/butakero/butakero/platform/media/songquery"
)

func TestPlaylistOf(t *testing.T) {
	const list = "PLrAXtmErZgOeiKm4sgNOknGvNjby9efdf"
	yt := songquery.Playlist{Source: songquery.SourceYouTubePlaylist, ID: list}
	m3u := func(u string) songquery.Playlist { return songquery.Playlist{Source: songquery.SourceM3U, ID: u} }
	tests := []struct {
		name   string
		query  string
		expand bool
		want   songquery.Playlist
		// wantOK false: not a playlist (Parse says what it is).
		wantOK bool
	}{
		{name: "playlist URL", query: "https://www.youtube.com/playlist?list=" + list, want: yt, wantOK: true},
		{name: "playlist URL padded", query: "  https://www.youtube.com/playlist?list=" + list + " ", want: yt, wantOK: true},
		{name: "playlist URL without scheme", query: "youtube.com/playlist?list=" + list, want: yt, wantOK: true},
		{name: "playlist URL upper-case host", query: "https://WWW.YouTube.com/playlist?list=" + list, want: yt, wantOK: true},
		{name: "music playlist URL", query: "https://music.youtube.com/playlist?list=" + list + "&si=x", want: yt, wantOK: true},
		{name: "playlist URL expanded too", query: "https://www.youtube.com/playlist?list=" + list, expand: true, want: yt, wantOK: true},
		{name: "watch with list, not expanded", query: "https://www.youtube.com/watch?v=dQw4w9WgXcQ&list=" + list},
		{name: "watch with list, expanded", query: "https://www.youtube.com/watch?v=dQw4w9WgXcQ&list=" + list, expand: true, want: yt, wantOK: true},
		{name: "short link with list, expanded", query: "https://youtu.be/dQw4w9WgXcQ?list=" + list, expand: true, want: yt, wantOK: true},
		{name: "short link with list, not expanded", query: "https://youtu.be/dQw4w9WgXcQ?list=" + list},
		{name: "watch without list, expanded", query: "https://www.youtube.com/watch?v=dQw4w9WgXcQ", expand: true},
		{name: "shorts with list, expanded", query: "https://www.youtube.com/shorts/dQw4w9WgXcQ?list=" + list, expand: true},
		{name: "playlist without list", query: "https://www.youtube.com/playlist"},
		{name: "list id too short", query: "https://www.youtube.com/playlist?list=P"},
		{name: "list id too long", query: "https://www.youtube.com/playlist?list=" + strings.Repeat("P", 65)},
		{name: "list id with a bad character", query: "https://www.youtube.com/playlist?list=PL!x"},
		{name: "lookalike host", query: "https://youtube.com.evil.example/playlist?list=" + list},
		{name: "M3U", query: "https://cdn.example.com/lists/mix.m3u", want: m3u("https://cdn.example.com/lists/mix.m3u"), wantOK: true},
		{name: "M3U8 upper-case", query: "https://cdn.example.com/lists/MIX.M3U8?x=1", want: m3u("https://cdn.example.com/lists/MIX.M3U8?x=1"), wantOK: true},
		{name: "M3U without scheme", query: "cdn.example.com/mix.m3u8", want: m3u("https://cdn.example.com/mix.m3u8"), wantOK: true},
		{name: "M3U on an allowed loopback port", query: "http://127.0.0.1:8080/mix.m3u", want: m3u("http://127.0.0.1:8080/mix.m3u"), wantOK: true},
		{name: "M3U on a host not allowed", query: "https://evil.example/mix.m3u"},
		{name: "M3U on another port of an allowed host", query: "https://cdn.example.com:8443/mix.m3u"},
		{name: "M3U with user info", query: "https://u@cdn.example.com/mix.m3u"},
		{name: "M3U over ftp", query: "ftp://cdn.example.com/mix.m3u"},
		{name: "M3U as a query parameter", query: "https://cdn.example.com/play?file=mix.m3u"},
		{name: "media file", query: "https://cdn.example.com/a/song.mp3"},
		{name: "video", query: "https://www.youtube.com/watch?v=dQw4w9WgXcQ", expand: true},
		{name: "bare id", query: "dQw4w9WgXcQ", expand: true},
		{name: "search text", query: "mix.m3u playlist", expand: true},
		{name: "search text naming a playlist URL", query: "play https://www.youtube.com/playlist?list=" + list},
		{name: "empty", query: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := songquery.PlaylistOf(tc.query, tc.expand, testAllowed)
			if ok != tc.wantOK || got != tc.want {
				t.Fatalf("PlaylistOf(%q, %v) = %+v, %v; want %+v, %v", tc.query, tc.expand, got, ok, tc.want, tc.wantOK)
			}
		})
	}
}
