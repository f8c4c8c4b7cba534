// Package songquery says what a song query names, without any network
// access: a YouTube video, a direct media URL on an allowed host, text to
// search for, or a playlist (a YouTube playlist, an M3U file). It is the
// one place that rule lives: the resolver resolves and expands what Parse
// and PlaylistOf find, and the gateway asks PlaylistOf whether a request
// is a playlist, which it answers without waiting for a song id.
package songquery

import (
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/media/mediahosts"
)

// MaxBytes is the longest query Parse accepts; the gateway refuses a
// longer one before it is published.
const MaxBytes = 512

// Kind says what a query names.
type Kind int

// The kinds of query.
const (
	// KindYouTube: a YouTube URL or a bare video id; Query.Song is complete.
	KindYouTube Kind = iota + 1
	// KindDirect: a URL on an allowed media host; Query.Song is complete.
	KindDirect
	// KindSearch: free text to search for; Query.Text holds it.
	KindSearch
)

// String names the kind in logs: "youtube", "direct" or "search".
func (k Kind) String() string {
	switch k {
	case KindYouTube:
		return "youtube"
	case KindDirect:
		return "direct"
	case KindSearch:
		return "search"
	}
	return "unknown"
}

// Query is a parsed song request.
type Query struct {
	Kind Kind
	// Song is the song a URL or id names (ID, URL, Source); empty for a
	// search.
	Song events.Song
	// Text is the search text, trimmed; empty unless Kind is KindSearch.
	Text string
}

// videoID is a YouTube video id: 11 characters of the URL-safe base64
// alphabet. It is also a valid subject token and store key.
var videoID = regexp.MustCompile(`^[A-Za-z0-9_-]{11}$`)

// IsVideoID reports whether id has the form of a YouTube video id. What
// a search or a listing returns is checked with it before it becomes a
// song's id.
func IsVideoID(id string) bool { return videoID.MatchString(id) }

// youtubeHosts are the hosts whose URLs name a YouTube video or playlist.
var youtubeHosts = map[string]bool{
	"youtube.com":              true,
	"www.youtube.com":          true,
	"m.youtube.com":            true,
	"music.youtube.com":        true,
	"youtu.be":                 true,
	"www.youtu.be":             true,
	"youtube-nocookie.com":     true,
	"www.youtube-nocookie.com": true,
}

// youtubePathPrefixes are the path forms that carry the id as their next
// segment: /shorts/<id>, /embed/<id>, /live/<id>, /v/<id>.
var youtubePathPrefixes = []string{"/shorts/", "/embed/", "/live/", "/v/"}

// WatchURL is the canonical URL of YouTube video id: the URL of every
// YouTube song, however its query spelled it.
func WatchURL(id string) string { return "https://www.youtube.com/watch?v=" + id }

// Parse decides what query names, without any network access:
//   - a YouTube URL (watch?v=, youtu.be/, /shorts/, /embed/, /live/, /v/;
//     other parameters ignored; the scheme may be left out) or a bare
//     11-character video id: the video, with its canonical watch URL;
//   - an http(s) URL whose host and port an entry of allowed admits (see
//     package mediahosts; entries as config.Config.AllowedMediaHosts holds
//     them): that URL, normalized, under the id "url-" and 20 hex digits of
//     its SHA-256;
//   - any other URL: a CodeInvalidInput failure;
//   - anything else: free text to search for.
//
// Queries longer than MaxBytes, empty ones, ones that are not valid
// UTF-8 or hold control characters fail with CodeInvalidInput. Every error
// Parse returns is an *events.Failure with that code.
func Parse(query string, allowed []string) (Query, error) {
	if len(query) > MaxBytes {
		return Query{}, events.Fail(events.CodeInvalidInput, "the query is longer than %d bytes", MaxBytes)
	}
	if !utf8.ValidString(query) {
		return Query{}, events.Fail(events.CodeInvalidInput, "the query is not valid UTF-8 text")
	}
	for _, r := range query {
		if unicode.IsControl(r) {
			return Query{}, events.Fail(events.CodeInvalidInput, "the query holds control characters")
		}
	}
	q := strings.TrimSpace(query)
	if q == "" {
		return Query{}, events.Fail(events.CodeInvalidInput, "the query is empty")
	}
	if videoID.MatchString(q) {
		return youtube(q), nil
	}
	if raw, ok := asURL(q, allowed); ok {
		return parseURL(raw, allowed)
	}
	return Query{Kind: KindSearch, Text: q}, nil
}

// asURL reports whether q is meant as a URL, and returns it with a scheme.
// A query is a URL when it has no blank and either has a scheme followed by
// "//" or a scheme that only ever names a resource (file:, data:…), or
// starts with a YouTube or allowed host and a "/" or "?" (a URL pasted
// without its scheme). Text such as "Queen: Bohemian Rhapsody" or "AC/DC"
// stays text.
func asURL(q string, allowed []string) (string, bool) {
	if strings.ContainsFunc(q, unicode.IsSpace) {
		return "", false
	}
	if i := strings.Index(q, ":"); i > 0 && validScheme(q[:i]) {
		if strings.HasPrefix(q[i+1:], "//") || resourceSchemes[strings.ToLower(q[:i])] {
			return q, true
		}
	}
	i := strings.IndexAny(q, "/?#")
	if i <= 0 {
		return "", false
	}
	host := strings.ToLower(q[:i])
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if youtubeHosts[host] || mediahosts.Names(allowed, host) {
		return "https://" + q, true
	}
	return "", false
}

// resourceSchemes are schemes without "//" that a query may still carry
// and that are never a search.
var resourceSchemes = map[string]bool{
	"file": true, "data": true, "javascript": true, "vbscript": true, "blob": true,
	"mailto": true, "about": true, "view-source": true, "http": true, "https": true,
}

// validScheme reports whether s has the syntax of a URL scheme (RFC 3986).
func validScheme(s string) bool {
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case i > 0 && (r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.'):
		default:
			return false
		}
	}
	return s != ""
}

func parseURL(raw string, allowed []string) (Query, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Query{}, events.Fail(events.CodeInvalidInput, "the URL cannot be parsed")
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return Query{}, events.Fail(events.CodeInvalidInput, "only http and https URLs are accepted, not %s", scheme)
	}
	if u.User != nil {
		return Query{}, events.Fail(events.CodeInvalidInput, "URLs with a user name or password are not accepted")
	}
	host := strings.ToLower(u.Hostname())
	if host == "" {
		return Query{}, events.Fail(events.CodeInvalidInput, "the URL has no host")
	}
	if youtubeHosts[host] {
		id, ok := youtubeID(host, u)
		if !ok {
			return Query{}, events.Fail(events.CodeInvalidInput, "the YouTube URL does not name a video")
		}
		return youtube(id), nil
	}
	if !mediahosts.AllowsURL(allowed, u) {
		if !mediahosts.Names(allowed, host) {
			return Query{}, events.Fail(events.CodeInvalidInput, "host %s is not allowed", printable(host))
		}
		port := u.Port()
		if port == "" {
			port = map[string]string{"http": "80", "https": "443"}[scheme]
		}
		return Query{}, events.Fail(events.CodeInvalidInput, "port %s of host %s is not allowed", printable(port), printable(host))
	}
	norm := normalize(scheme, host, u)
	sum := sha256.Sum256([]byte(norm))
	return Query{Kind: KindDirect, Song: events.Song{
		ID:     "url-" + hex.EncodeToString(sum[:])[:20],
		URL:    norm,
		Source: "direct",
	}}, nil
}

// youtubeID finds the video id in a URL on a YouTube host.
func youtubeID(host string, u *url.URL) (string, bool) {
	var id string
	switch {
	case host == "youtu.be" || host == "www.youtu.be":
		id = firstSegment(strings.TrimPrefix(u.Path, "/"))
	case u.Path == "/watch" || u.Path == "/watch/":
		id = u.Query().Get("v")
	default:
		for _, p := range youtubePathPrefixes {
			if rest, ok := strings.CutPrefix(u.Path, p); ok {
				id = firstSegment(rest)
				break
			}
		}
	}
	return id, videoID.MatchString(id)
}

func firstSegment(p string) string {
	if i := strings.IndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return p
}

// normalize rebuilds a direct URL so that spellings of one URL share an id:
// lower-case scheme and host, no default port, no fragment, path and query
// kept as given.
func normalize(scheme, host string, u *url.URL) string {
	port := u.Port()
	if scheme == "http" && port == "80" || scheme == "https" && port == "443" {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	s := scheme + "://" + host + path
	if u.RawQuery != "" || u.ForceQuery {
		s += "?" + u.RawQuery
	}
	return s
}

func youtube(id string) Query {
	return Query{Kind: KindYouTube, Song: events.Song{ID: id, URL: WatchURL(id), Source: "youtube"}}
}

// printable quotes a host for a message when it holds anything unusual.
func printable(host string) string {
	for _, r := range host {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == ':') {
			return strconv.Quote(host)
		}
	}
	return host
}
