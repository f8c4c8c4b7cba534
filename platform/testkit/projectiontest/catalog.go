package projectiontest

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"testing"

	"github.com/butakero/butakero/platform/projection"
)

// Catalog is the song search of the v1 catalog (GET /v1/songs).
type Catalog interface {
	PutSong(ctx context.Context, song projection.Song) error
	// SearchSongs returns one page of songs matching q and the cursor of
	// the next page ("" after the last); a cursor it did not make is a
	// *projection.BadCursorError.
	SearchSongs(ctx context.Context, q string, limit int, cursor string) ([]projection.Song, string, error)
}

// RunCatalog runs the catalog contract against a fresh, empty catalog made
// by newCatalog. A catalog searching an eventually consistent index must
// show a write to the next search on the test's server (DynamoDB Local
// does).
//
// The catalog lists stored songs only (projection.Song.Stored): songs
// being processed and songs whose every operation failed have records but
// never appear, whatever the query, even one that names their id.
func RunCatalog(t *testing.T, newCatalog func(t *testing.T) Catalog) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c := newCatalog(t)
	stored := func(s projection.Song) projection.Song {
		s.DCAKey, s.DCALocation, s.DCASize = "audio/"+s.ID+".dca", "nats://objects/b/audio/"+s.ID+".dca", 1000
		return s
	}
	songs := []projection.Song{
		stored(projection.Song{ID: "bohemian1", Title: "Bohemian Rhapsody", Channel: "Queen Official", LastSeq: 1}),
		stored(projection.Song{ID: "pressure1", Title: "Under Pressure", Channel: "Queen Official", LastSeq: 2}),
		stored(projection.Song{ID: "cancion1", Title: "Canción  ÑANDÚ!", Channel: "Los Músicos", LastSeq: 3}),
		stored(projection.Song{ID: "bohemian2", Title: "Bohemian Like You", Channel: "The Dandy Warhols", LastSeq: 4}),
		stored(projection.Song{ID: "url-untitled", URL: "http://127.0.0.1:9000/tone.m4a", LastSeq: 5}),
		stored(projection.Song{ID: "alpha", Title: "Alpha", Channel: "Beta", LastSeq: 6}),
	}
	// Records without a DCA: what the recorder keeps of a song resolved
	// and downloaded whose operations all failed, or that is in progress.
	unstored := []projection.Song{
		{ID: "failedonly", Title: "Bohemian Failure", Channel: "Queen Official", URL: "https://youtu.be/failedonly", LastSeq: 7},
		{ID: "inflight1", Title: "Gamma In Flight", Channel: "Delta", LastSeq: 8},
		{ID: "url-failed", URL: "http://127.0.0.1:9000/corrupt.mp3", LastSeq: 9},
	}
	for _, s := range append(slices.Clone(songs), unstored...) {
		if err := c.PutSong(ctx, s); err != nil {
			t.Fatalf("PutSong %s: %v", s.ID, err)
		}
	}
	ids := func(ss []projection.Song) []string {
		out := []string{}
		for _, s := range ss {
			out = append(out, s.ID)
		}
		return out
	}
	// search reads every page of q with page size limit.
	search := func(t *testing.T, q string, limit int) []string {
		t.Helper()
		var got []string
		cursor := ""
		for page := 0; ; page++ {
			if page > len(songs)+1 {
				t.Fatalf("more pages than songs: cursor %q never ends", cursor)
			}
			ss, next, err := c.SearchSongs(ctx, q, limit, cursor)
			if err != nil {
				t.Fatalf("SearchSongs(%q, %d, %q): %v", q, limit, cursor, err)
			}
			if page := pageSize(limit); len(ss) > page {
				t.Fatalf("page of %d songs, limit %d", len(ss), pageSize(limit))
			}
			got = append(got, ids(ss)...)
			if next == "" {
				return got
			}
			cursor = next
		}
	}
	cases := []struct {
		name  string
		q     string
		limit int
		want  []string
	}{
		{"empty query lists all by title, untitled last", "", 0, []string{"alpha", "bohemian2", "bohemian1", "cancion1", "pressure1", "url-untitled"}},
		{"the same in pages of two", "", 2, []string{"alpha", "bohemian2", "bohemian1", "cancion1", "pressure1", "url-untitled"}},
		{"a word of two titles", "bohem", 0, []string{"bohemian2", "bohemian1"}},
		{"case and diacritics folded", "cancion nandu", 0, []string{"cancion1"}},
		{"accents in the query", "ÑANDÚ", 0, []string{"cancion1"}},
		{"the channel", "queen", 0, []string{"bohemian1", "pressure1"}},
		{"the channel in pages of one", "queen", 1, []string{"bohemian1", "pressure1"}},
		{"an id", "url-untitled", 0, []string{"url-untitled"}},
		{"a word inside a title", "pressure", 0, []string{"pressure1"}},
		{"no match", "zzzz", 0, []string{}},
		{"a song that only failed, by id", "failedonly", 0, []string{}},
		{"a song that only failed, by title", "failure", 0, []string{}},
		{"a song in progress, by id", "inflight1", 0, []string{}},
		{"an untitled song that failed, by id", "url-failed", 0, []string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := search(t, tc.q, tc.limit)
			if got == nil {
				got = []string{}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("SearchSongs(%q) = %v, want %v", tc.q, got, tc.want)
			}
		})
	}
	t.Run("a song enters the catalog once its DCA is stored", func(t *testing.T) {
		later := stored(unstored[1])
		later.LastSeq = 20
		if err := c.PutSong(ctx, later); err != nil {
			t.Fatal(err)
		}
		if got := search(t, "inflight1", 0); !reflect.DeepEqual(got, []string{"inflight1"}) {
			t.Errorf("SearchSongs(inflight1) after its upload = %v, want [inflight1]", got)
		}
	})
	t.Run("a song is found with its fields", func(t *testing.T) {
		ss, _, err := c.SearchSongs(ctx, "alpha", 0, "")
		if err != nil || len(ss) != 1 || !reflect.DeepEqual(ss[0], songs[5]) {
			t.Errorf("SearchSongs(alpha) = %+v, %v; want %+v", ss, err, songs[5])
		}
	})
	t.Run("a cursor it did not make is refused", func(t *testing.T) {
		for _, cursor := range []string{"not base64!", "bm8gbnVs"} {
			_, _, err := c.SearchSongs(ctx, "", 2, cursor)
			var bad *projection.BadCursorError
			if !errors.As(err, &bad) {
				t.Errorf("cursor %q: %v, want a *projection.BadCursorError", cursor, err)
			}
		}
	})
}

// pageSize is the page a search with limit returns at most: 0 means 20.
func pageSize(limit int) int {
	if limit <= 0 {
		return 20
	}
	return limit
}
