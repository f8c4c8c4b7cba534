package kvstore_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/butakero/butakero/platform/projection"
	"github.com/butakero/butakero/platform/store/kvstore"
	"github.com/butakero/butakero/platform/testkit/natstest"
)

func TestSearchSongs(t *testing.T) {
	env := natstest.Start(t)
	ctx := context.Background()
	s := natstest.Open(ctx, t, kvstore.Open, env.JS, 1)
	for _, song := range []projection.Song{
		{ID: "a1", Title: "Árbol de Canción"}, {ID: "b2", Title: "arbol  grande!"}, {ID: "c3", Title: "Zeta"},
		{ID: "d4"}, {ID: "e5", Title: "Canción", Channel: "Los Árboles"},
	} {
		song.DCAKey = "audio/" + song.ID + ".dca" // stored: in the catalog
		if err := s.PutSong(ctx, song); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name  string
		q     string
		limit int
		want  []string
	}{
		{name: "all, titled first", q: "", limit: 2, want: []string{"a1", "b2", "e5", "c3", "d4"}},
		{name: "folded prefix", q: "ARBOL", limit: 1, want: []string{"a1", "b2", "e5"}},
		{name: "substring", q: "cancion", limit: 10, want: []string{"a1", "e5"}},
		{name: "punctuation and spaces", q: "arbol grande", limit: 0, want: []string{"b2"}},
		{name: "id", q: "d4", limit: 5, want: []string{"d4"}},
		{name: "none", q: "xyz", limit: 5, want: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			cursor := ""
			for range 10 {
				page, next, err := s.SearchSongs(ctx, tc.q, tc.limit, cursor)
				if err != nil {
					t.Fatal(err)
				}
				if tc.limit > 0 && len(page) > tc.limit {
					t.Errorf("page of %d, limit %d", len(page), tc.limit)
				}
				for _, p := range page {
					got = append(got, p.ID)
				}
				if cursor = next; cursor == "" {
					break
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	_, _, err := s.SearchSongs(ctx, "", 10, "%%%")
	var bad *projection.BadCursorError
	if !errors.As(err, &bad) {
		t.Errorf("forged cursor: %v, want a *projection.BadCursorError", err)
	}
}
