package songquery

import (
	"net/url"
	"path"
	"strings"

	"github.com/butakero/butakero/platform/media/mediahosts"
)

// Playlist sources, as events.PlaylistResolved.Source names them.
const (
	SourceYouTubePlaylist = "youtube"
	SourceM3U             = "m3u"
)

// Playlist is a playlist a query names.
type Playlist struct {
	// Source is SourceYouTubePlaylist or SourceM3U.
	Source string
	// ID is the YouTube list id, or the M3U file's URL.
	ID string
}

// PlaylistOf reports whether query names a playlist, and which:
//   - a YouTube playlist URL (youtube.com/playlist?list=…), or, when
//     expand is set (the request's "playlist": true), a watch or youtu.be
//     URL with list=; the list id must have a list id's form;
//   - an M3U file: a URL whose path ends in .m3u or .m3u8 (any case) on a
//     host and port allowed admits (see package mediahosts).
//
// Anything else is not a playlist, and Parse says what it is. Like Parse,
// PlaylistOf reaches no network: whether the playlist exists, or the file
// is an M3U playlist, is the resolver's to find out.
func PlaylistOf(query string, expand bool, allowed []string) (Playlist, bool) {
	raw, ok := asURL(strings.TrimSpace(query), allowed)
	if !ok {
		return Playlist{}, false
	}
	u, err := url.Parse(raw)
	if err != nil {
		return Playlist{}, false
	}
	host := strings.ToLower(u.Hostname())
	if youtubeHosts[host] {
		list := u.Query().Get("list")
		if !validListID(list) {
			return Playlist{}, false
		}
		if u.Path == "/playlist" || (expand && (u.Path == "/watch" || host == "youtu.be" || host == "www.youtu.be")) {
			return Playlist{Source: SourceYouTubePlaylist, ID: list}, true
		}
		return Playlist{}, false
	}
	if ext := strings.ToLower(path.Ext(u.Path)); (ext == ".m3u" || ext == ".m3u8") && mediahosts.AllowsURL(allowed, u) {
		return Playlist{Source: SourceM3U, ID: u.String()}, true
	}
	return Playlist{}, false
}

// validListID reports whether id has the form of a YouTube playlist id:
// 2 to 64 characters of the URL-safe base64 alphabet.
func validListID(id string) bool {
	if len(id) < 2 || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}
