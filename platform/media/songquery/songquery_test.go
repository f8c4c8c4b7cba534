package songquery_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/url"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/media/songquery"
)

const rick = "dQw4w9WgXcQ"

// testAllowed is an ALLOWED_MEDIA_HOSTS list in canonical form (as
// mediahosts.Parse returns it).
var testAllowed = []string{"cdn.example.com", "127.0.0.1:*", "[::1]:9000"}

func directID(u string) string {
	sum := sha256.Sum256([]byte(u))
	return "url-" + hex.EncodeToString(sum[:])[:20]
}

func TestParse(t *testing.T) {
	yt := func(id string) songquery.Query {
		return songquery.Query{Kind: songquery.KindYouTube, Song: events.Song{ID: id, URL: "https://www.youtube.com/watch?v=" + id, Source: "youtube"}}
	}
	direct := func(u string) songquery.Query {
		return songquery.Query{Kind: songquery.KindDirect, Song: events.Song{ID: directID(u), URL: u, Source: "direct"}}
	}
	search := func(s string) songquery.Query { return songquery.Query{Kind: songquery.KindSearch, Text: s} }

	tests := []struct {
		name  string
		query string
		want  songquery.Query
		// wantErr is a fragment of the failure message; the code is always
		// invalid_input.
		wantErr string
	}{
		{name: "bare id", query: rick, want: yt(rick)},
		{name: "bare id with dash and underscore", query: "a-b_c-d_e-f", want: yt("a-b_c-d_e-f")},
		{name: "bare id padded", query: "  " + rick + " ", want: yt(rick)},
		{name: "watch", query: "https://www.youtube.com/watch?v=" + rick, want: yt(rick)},
		{name: "watch http", query: "http://youtube.com/watch?v=" + rick, want: yt(rick)},
		{name: "watch upper-case host and scheme", query: "HTTPS://WWW.YouTube.COM/watch?v=" + rick, want: yt(rick)},
		{name: "watch with port", query: "https://www.youtube.com:443/watch?v=" + rick, want: yt(rick)},
		{name: "watch v not first", query: "https://www.youtube.com/watch?feature=share&v=" + rick, want: yt(rick)},
		{name: "watch extra params", query: "https://www.youtube.com/watch?v=" + rick + "&t=42s&list=PLx&si=abc&index=3", want: yt(rick)},
		{name: "watch with fragment", query: "https://www.youtube.com/watch?v=" + rick + "#t=1m", want: yt(rick)},
		{name: "mobile", query: "https://m.youtube.com/watch?v=" + rick, want: yt(rick)},
		{name: "music", query: "https://music.youtube.com/watch?v=" + rick + "&feature=share", want: yt(rick)},
		{name: "short link", query: "https://youtu.be/" + rick, want: yt(rick)},
		{name: "short link with params", query: "https://youtu.be/" + rick + "?si=xyz&t=10", want: yt(rick)},
		{name: "short link trailing slash", query: "https://youtu.be/" + rick + "/", want: yt(rick)},
		{name: "shorts", query: "https://www.youtube.com/shorts/" + rick, want: yt(rick)},
		{name: "shorts with params", query: "https://youtube.com/shorts/" + rick + "?feature=share", want: yt(rick)},
		{name: "embed", query: "https://www.youtube.com/embed/" + rick + "?start=3", want: yt(rick)},
		{name: "nocookie embed", query: "https://www.youtube-nocookie.com/embed/" + rick, want: yt(rick)},
		{name: "nocookie bare host", query: "https://youtube-nocookie.com/embed/" + rick, want: yt(rick)},
		{name: "live", query: "https://www.youtube.com/live/" + rick + "?feature=share", want: yt(rick)},
		{name: "v path", query: "https://www.youtube.com/v/" + rick, want: yt(rick)},
		{name: "without scheme", query: "www.youtube.com/watch?v=" + rick, want: yt(rick)},
		{name: "short link without scheme", query: "youtu.be/" + rick, want: yt(rick)},
		{name: "playlist only", query: "https://www.youtube.com/playlist?list=PLx", wantErr: "does not name a video"},
		{name: "watch without v", query: "https://www.youtube.com/watch?list=PLx", wantErr: "does not name a video"},
		{name: "id too short", query: "https://youtu.be/abc", wantErr: "does not name a video"},
		{name: "id too long", query: "https://www.youtube.com/watch?v=" + rick + "x", wantErr: "does not name a video"},
		{name: "id with bad character", query: "https://www.youtube.com/watch?v=dQw4w9WgXc!", wantErr: "does not name a video"},
		{name: "channel", query: "https://www.youtube.com/@someone", wantErr: "does not name a video"},
		{name: "youtube with user info", query: "https://user@www.youtube.com/watch?v=" + rick, wantErr: "user name"},
		{name: "lookalike host", query: "https://youtube.com.evil.example/watch?v=" + rick, wantErr: "host youtube.com.evil.example is not allowed"},
		{name: "direct", query: "https://cdn.example.com/a/song.mp3", want: direct("https://cdn.example.com/a/song.mp3")},
		{name: "direct normalized", query: "HTTPS://CDN.Example.COM:443/a/song.mp3?x=1&Y=2#frag",
			want: direct("https://cdn.example.com/a/song.mp3?x=1&Y=2")},
		{name: "direct keeps path case and query order", query: "http://cdn.example.com/A/Song.MP3?b=2&a=1",
			want: direct("http://cdn.example.com/A/Song.MP3?b=2&a=1")},
		{name: "direct default http port dropped", query: "http://cdn.example.com:80/x", want: direct("http://cdn.example.com/x")},
		{name: "direct other port kept", query: "http://127.0.0.1:8080/tone.m4a", want: direct("http://127.0.0.1:8080/tone.m4a")},
		{name: "direct empty path", query: "https://cdn.example.com", want: direct("https://cdn.example.com/")},
		{name: "direct ipv6", query: "http://[::1]:9000/t.mp3", want: direct("http://[::1]:9000/t.mp3")},
		{name: "direct without scheme", query: "cdn.example.com/a.mp3", want: direct("https://cdn.example.com/a.mp3")},
		{name: "allowed host on another port", query: "https://cdn.example.com:8443/a.mp3", wantErr: "port 8443 of host cdn.example.com is not allowed"},
		{name: "allowed host without scheme on another port", query: "cdn.example.com:8080/a.mp3", wantErr: "port 8080 of host cdn.example.com is not allowed"},
		{name: "allowed host over the other scheme's port", query: "http://cdn.example.com:443/a.mp3", wantErr: "port 443 of host cdn.example.com is not allowed"},
		{name: "ipv6 on another port than its entry's", query: "http://[::1]/t.mp3", wantErr: "port 80 of host ::1 is not allowed"},
		{name: "direct with user info", query: "https://u:p@cdn.example.com/a.mp3", wantErr: "user name"},
		{name: "direct with empty user info", query: "https://@cdn.example.com/a.mp3", wantErr: "user name"},
		{name: "host not allowed", query: "https://evil.example/a.mp3", wantErr: "host evil.example is not allowed"},
		{name: "allowed host suffix is not allowed", query: "https://x.cdn.example.com/a.mp3", wantErr: "not allowed"},
		{name: "allowed host as userinfo trick", query: "https://cdn.example.com@evil.example/a.mp3", wantErr: "user name"},
		{name: "ftp", query: "ftp://cdn.example.com/a.mp3", wantErr: "only http and https"},
		{name: "file", query: "file:///etc/passwd", wantErr: "only http and https"},
		{name: "javascript", query: "javascript:alert(1)", wantErr: "only http and https"},
		{name: "data", query: "data:audio/mp3;base64,AAAA", wantErr: "only http and https"},
		{name: "http without host", query: "http:///a.mp3", wantErr: "no host"},
		{name: "title", query: "Never Gonna Give You Up", want: search("Never Gonna Give You Up")},
		{name: "title trimmed", query: "  queen  bohemian rhapsody ", want: search("queen  bohemian rhapsody")},
		{name: "title with colon", query: "Queen: Bohemian Rhapsody", want: search("Queen: Bohemian Rhapsody")},
		{name: "title with slash", query: "AC/DC", want: search("AC/DC")},
		{name: "title looking like a dash option", query: "--exec rm", want: search("--exec rm")},
		{name: "title with search prefix", query: "ytsearch10:foo", want: search("ytsearch10:foo")},
		{name: "title unicode", query: "Café Tacvba — Eres", want: search("Café Tacvba — Eres")},
		{name: "ten characters is text", query: "abcdefghij", want: search("abcdefghij")},
		{name: "twelve characters is text", query: "abcdefghijkl", want: search("abcdefghijkl")},
		{name: "url inside text is text", query: "listen to https://evil.example/a.mp3 now", want: search("listen to https://evil.example/a.mp3 now")},
		{name: "empty", query: "", wantErr: "empty"},
		{name: "blank", query: "   ", wantErr: "empty"},
		{name: "too long", query: strings.Repeat("a", songquery.MaxBytes+1), wantErr: "longer than"},
		{name: "longest accepted", query: strings.Repeat("a", songquery.MaxBytes), want: search(strings.Repeat("a", songquery.MaxBytes))},
		{name: "newline", query: "foo\nbar", wantErr: "control"},
		{name: "trailing newline", query: rick + "\n", wantErr: "control"},
		{name: "tab", query: "foo\tbar", wantErr: "control"},
		{name: "nul", query: "foo\x00", wantErr: "control"},
		{name: "c1 control", query: "foo\u0085", wantErr: "control"},
		{name: "invalid utf-8", query: "foo\xff", wantErr: "UTF-8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := songquery.Parse(tc.query, testAllowed)
			if tc.wantErr != "" {
				var f *events.Failure
				if !errors.As(err, &f) || f.Code != events.CodeInvalidInput {
					t.Fatalf("Parse(%q) = %+v, %v; want an invalid_input failure", tc.query, got, err)
				}
				if !strings.Contains(f.Message, tc.wantErr) {
					t.Fatalf("Parse(%q) message %q; want it to contain %q", tc.query, f.Message, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.query, err)
			}
			if got != tc.want {
				t.Fatalf("Parse(%q)\n got %+v\nwant %+v", tc.query, got, tc.want)
			}
		})
	}
}

// TestParseNoAllowedHosts checks that with no ALLOWED_MEDIA_HOSTS every
// non-YouTube URL is refused.
func TestParseNoAllowedHosts(t *testing.T) {
	for _, q := range []string{"https://cdn.example.com/a.mp3", "http://127.0.0.1:8080/a.m4a", "http://localhost/a.mp3"} {
		if _, err := songquery.Parse(q, nil); err == nil {
			t.Errorf("Parse(%q, nil) accepted a URL on a host that is not allowed", q)
		}
	}
}

// FuzzParse holds Parse's invariants on any input: it never panics; every
// error is an invalid_input failure; a song's id is one subject token and
// its URL an http(s) URL that parses back to the same song; search text is
// trimmed, printable, valid UTF-8 and within the length limit.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		rick, "https://www.youtube.com/watch?v=" + rick + "&t=1", "https://youtu.be/" + rick,
		"youtu.be/" + rick, "https://www.youtube.com/shorts/" + rick, "https://cdn.example.com/a.mp3?x=1#y",
		"http://[::1]:80/a", "HTTP://CDN.EXAMPLE.COM:80", "https://u@cdn.example.com/", "file:///etc/passwd",
		"javascript:alert(1)", "Queen: Bohemian Rhapsody", "AC/DC", "--exec", "foo\nbar", "\xff", "",
		"http://cdn.example.com/%zz", "http://cdn.example.com/a%2Fb", "https://cdn.example.com/?", "cdn.example.com:8080/x",
		"https://www.youtube.com/watch?v=" + rick + "&v=aaaaaaaaaaa",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, query string) {
		q, err := songquery.Parse(query, testAllowed)
		if err != nil {
			var fl *events.Failure
			if !errors.As(err, &fl) || fl.Code != events.CodeInvalidInput || fl.Message == "" {
				t.Fatalf("Parse(%q) error %v is not an invalid_input failure", query, err)
			}
			return
		}
		switch q.Kind {
		case songquery.KindYouTube, songquery.KindDirect:
			if q.Text != "" {
				t.Fatalf("Parse(%q): text %q on a %s query", query, q.Text, q.Kind)
			}
			if err := events.ValidOperationID(q.Song.ID); err != nil {
				t.Fatalf("Parse(%q): id %q is not a subject token: %v", query, q.Song.ID, err)
			}
			if q.Kind == songquery.KindYouTube && (q.Song.Source != "youtube" || !songquery.IsVideoID(q.Song.ID)) {
				t.Fatalf("Parse(%q): bad YouTube song %+v", query, q.Song)
			}
			if q.Kind == songquery.KindDirect && (q.Song.Source != "direct" || q.Song.ID != directID(q.Song.URL)) {
				t.Fatalf("Parse(%q): bad direct song %+v", query, q.Song)
			}
			u, err := url.Parse(q.Song.URL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.User != nil || u.Fragment != "" {
				t.Fatalf("Parse(%q): song URL %q is not a plain http(s) URL (%v)", query, q.Song.URL, err)
			}
			again, err := songquery.Parse(q.Song.URL, testAllowed)
			if err != nil || again != q {
				t.Fatalf("Parse(%q) = %+v, but its URL parses to %+v, %v", query, q, again, err)
			}
		case songquery.KindSearch:
			if q.Song != (events.Song{}) {
				t.Fatalf("Parse(%q): song %+v on a search", query, q.Song)
			}
			if q.Text == "" || q.Text != strings.TrimSpace(q.Text) || len(q.Text) > songquery.MaxBytes || !utf8.ValidString(q.Text) ||
				strings.ContainsFunc(q.Text, unicode.IsControl) {
				t.Fatalf("Parse(%q): bad search text %q", query, q.Text)
			}
		default:
			t.Fatalf("Parse(%q): unknown kind %d", query, q.Kind)
		}
	})
}
