package kvstore

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/butakero/butakero/platform/projection"
	"github.com/nats-io/nats.go/jetstream"
)

// MaxSearchLimit caps the page size of SearchSongs.
const MaxSearchLimit = 100

// SearchSongs returns one page of the catalog: the stored songs
// (projection.Song.Stored) whose normalized title (or channel) contains
// the normalized q, or whose id is q, ordered by
// normalized title then id, songs without a title last. An empty q matches
// every song. limit is clamped to 1..MaxSearchLimit (0 means 20). cursor is
// "" for the first page, else the next cursor a previous call returned; the
// returned next cursor is "" after the last page. Cursors are opaque and
// stable: songs added between two pages appear in the later one when they
// sort after the cursor.
//
// The songs bucket is read whole with one watcher per call, so a search
// costs a pass over the catalog: fine for the catalogs a bot's back end
// holds (thousands of songs), not for millions.
func (s *Store) SearchSongs(ctx context.Context, q string, limit int, cursor string) ([]projection.Song, string, error) {
	if limit <= 0 {
		limit = 20
	}
	limit = min(limit, MaxSearchLimit)
	after := ""
	if cursor != "" {
		raw, err := base64.RawURLEncoding.DecodeString(cursor)
		if err != nil || !strings.Contains(string(raw), "\x00") {
			return nil, "", &projection.BadCursorError{Cursor: cursor}
		}
		after = string(raw)
	}
	needle := projection.NormalizeTitle(q)

	w, err := s.songs.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, "", fmt.Errorf("kvstore: list %s: %w", SongsBucket, err)
	}
	defer func() { _ = w.Stop() }()
	type hit struct {
		key  string
		song projection.Song
	}
	var hits []hit
	for {
		var e jetstream.KeyValueEntry
		select {
		case e = <-w.Updates():
		case <-ctx.Done():
			return nil, "", fmt.Errorf("kvstore: list %s: %w", SongsBucket, ctx.Err())
		}
		if e == nil {
			break // every current value has been delivered
		}
		var song projection.Song
		if err := json.Unmarshal(e.Value(), &song); err != nil {
			return nil, "", fmt.Errorf("kvstore: decode %s/%s: %w", SongsBucket, e.Key(), err)
		}
		if !song.Stored() {
			continue // in progress, or only ever failed: not in the catalog
		}
		title := projection.NormalizeTitle(song.Title)
		if needle != "" && song.ID != q && !strings.Contains(title, needle) && !strings.Contains(projection.NormalizeTitle(song.Channel), needle) {
			continue
		}
		key := sortKey(title, song.ID)
		if key <= after {
			continue
		}
		hits = append(hits, hit{key: key, song: song})
	}
	slices.SortFunc(hits, func(a, b hit) int { return strings.Compare(a.key, b.key) })
	next := ""
	if len(hits) > limit {
		hits = hits[:limit]
		next = base64.RawURLEncoding.EncodeToString([]byte(hits[limit-1].key))
	}
	songs := make([]projection.Song, len(hits))
	for i, h := range hits {
		songs[i] = h.song
	}
	return songs, next, nil
}

// sortKey orders songs by normalized title, then id; untitled songs last.
func sortKey(title, id string) string {
	if title == "" {
		title = "\U0010FFFF"
	}
	return title + "\x00" + id
}
