// Package projectiontest is the contract every projection store of
// Butakero passes: kvstore (JetStream KV) and dynamostore (DynamoDB). Run
// checks the operation and song store the recorder and gateway use,
// RunCatalog the song search of the v1 catalog, RunCache the resolver's
// cache. A store's own tests call them with a constructor of fresh, empty
// stores.
package projectiontest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/butakero/butakero/platform/projection"
)

// Store is the projection store as the recorder and the gateway use it.
type Store interface {
	Operation(ctx context.Context, id string) (projection.Operation, error)
	PutOperation(ctx context.Context, op projection.Operation) error
	Song(ctx context.Context, id string) (projection.Song, error)
	PutSong(ctx context.Context, song projection.Song) error
	PutOperationIf(ctx context.Context, op, prev projection.Operation) (bool, error)
	PutSongIf(ctx context.Context, song, prev projection.Song) (bool, error)
	Ping(ctx context.Context) error
}

// Options says what a store promises beyond the common contract.
type Options struct {
	// ConditionalBySeq: a write whose LastSeq is at or below the stored
	// record's changes nothing and returns nil, so that redelivery, replay
	// and a slow writer overtaken by a later event are harmless.
	ConditionalBySeq bool
}

const timeout = 2 * time.Minute

// Run runs the store contract against stores made by newStore, which
// returns a fresh, empty store for each case and cleans it up with t.
func Run(t *testing.T, newStore func(t *testing.T) Store, o Options) {
	type tc struct {
		name string
		run  func(t *testing.T, ctx context.Context, s Store)
	}
	cases := []tc{
		{"unknown ids are not found", testNotFound},
		{"operation round trip", testOperationRoundTrip},
		{"song round trip", testSongRoundTrip},
		{"a later event replaces the record", testLaterReplaces},
		{"invalid ids are refused", testInvalidIDs},
		{"concurrent writes of different records", testConcurrent},
		{"a conditional write stores only over the record it names", testPutIf},
		{"conditional writes racing on one song lose nothing", testSongRace},
		{"ping", func(t *testing.T, ctx context.Context, s Store) {
			if err := s.Ping(ctx); err != nil {
				t.Fatalf("Ping: %v", err)
			}
		}},
	}
	if o.ConditionalBySeq {
		cases = append(cases,
			tc{"redelivered or stale operation write is a no-op", testStaleOperation},
			tc{"redelivered or stale song write is a no-op", testStaleSong})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			c.run(t, ctx, newStore(t))
		})
	}
}

// Operation returns a finished operation with every field set.
func Operation(id string, seq uint64) projection.Operation {
	return projection.Operation{
		ID: id, SongID: "song-" + id, Status: projection.StatusSuccess, Message: "DCA stored",
		Data: "s3://bucket/audio/song-" + id + ".dca", ProcessingDate: "2026-11-26T18:02:11Z",
		Success: true, Attempts: 2, Failures: 1, Stage: projection.StageStored,
		Query: "Canción de prueba — «título»", ErrorCode: "", CreatedAt: "2026-11-26T18:02:09Z",
		UpdatedAt: time.Now().UTC().Format(time.RFC3339Nano), LastSeq: seq,
	}
}

// Song returns a stored song with every field set.
func Song(id string, seq uint64) projection.Song {
	return projection.Song{
		ID: id, Title: "Título con acentos ☃", DurationMs: 183_456, URL: "https://www.youtube.com/watch?v=" + id,
		ThumbnailURL: "https://i.ytimg.com/vi/" + id + "/hq.jpg", Channel: "Canal", Source: "youtube",
		DCAKey: "audio/" + id + ".dca", DCALocation: "s3://bucket/audio/" + id + ".dca",
		DCASize: 1_234_567, DCAFrames: 9172, UpdatedAt: "2026-11-26T18:02:11Z", LastSeq: seq,
		Mode: "passthrough", ModeReason: "the source is 48 kHz opus in 20 ms frames",
		LoudnessLUFS: &loudness, TruePeakDB: &truePeak,
	}
}

// A loudness and a true peak that a decimal round trip must keep exactly.
var loudness, truePeak = -13.87, -0.25

func testNotFound(t *testing.T, ctx context.Context, s Store) {
	for _, id := range []string{"never-written", "a.b", "", "with space", "video#x"} {
		if _, err := s.Operation(ctx, id); !errors.Is(err, projection.ErrNotFound) {
			t.Errorf("Operation(%q): %v, want projection.ErrNotFound", id, err)
		}
		if _, err := s.Song(ctx, id); !errors.Is(err, projection.ErrNotFound) {
			t.Errorf("Song(%q): %v, want projection.ErrNotFound", id, err)
		}
	}
}

func testOperationRoundTrip(t *testing.T, ctx context.Context, s Store) {
	cases := []struct {
		name string
		op   projection.Operation
	}{
		{"finished, every field", Operation("op-full_1", 7)},
		{"just requested, no song yet", projection.Operation{ID: "op-new", Status: projection.StatusInProgress,
			Stage: projection.StageRequested, Attempts: 1, CreatedAt: "2026-11-26T18:02:09Z", UpdatedAt: "2026-11-26T18:02:09Z", LastSeq: 1}},
		{"failed with a code", projection.Operation{ID: "op-failed", SongID: "url-abc", Status: projection.StatusFailed,
			Message: "the downloaded file is not audio ffmpeg can read", Stage: projection.StageFailed, Attempts: 1, Failures: 1,
			ErrorCode: "invalid_audio", CreatedAt: "2026-11-26T18:02:09Z", UpdatedAt: time.Now().UTC().Format(time.RFC3339), LastSeq: 3}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			checkRoundTrip(t, c.op, func(op projection.Operation) error { return s.PutOperation(ctx, op) },
				func() (projection.Operation, error) { return s.Operation(ctx, c.op.ID) })
		})
	}
}

func testSongRoundTrip(t *testing.T, ctx context.Context, s Store) {
	cases := []struct {
		name string
		song projection.Song
	}{
		{"stored, every field", Song("dQw4w9WgXcQ", 9)},
		{"resolved only", projection.Song{ID: "url-0123abcd", URL: "http://127.0.0.1:9000/tone.m4a", Source: "url", LastSeq: 2}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			checkRoundTrip(t, c.song, func(song projection.Song) error { return s.PutSong(ctx, song) },
				func() (projection.Song, error) { return s.Song(ctx, c.song.ID) })
		})
	}
}

// checkRoundTrip puts v and checks that get reads back exactly v.
func checkRoundTrip[T any](t *testing.T, v T, put func(T) error, get func() (T, error)) {
	t.Helper()
	if err := put(v); err != nil {
		t.Fatalf("put: %v", err)
	}
	got, err := get()
	if err != nil {
		t.Fatalf("read back: %v", err)
	}
	if !reflect.DeepEqual(got, v) {
		t.Errorf("read back\n%+v\nwant\n%+v", got, v)
	}
}

func testLaterReplaces(t *testing.T, ctx context.Context, s Store) {
	first := projection.Operation{ID: "op-1", Status: projection.StatusInProgress, Stage: projection.StageResolved,
		SongID: "s1", Attempts: 1, CreatedAt: "2026-11-26T18:02:09Z", LastSeq: 4}
	second := Operation("op-1", 9)
	for _, op := range []projection.Operation{first, second} {
		if err := s.PutOperation(ctx, op); err != nil {
			t.Fatalf("PutOperation seq %d: %v", op.LastSeq, err)
		}
	}
	if got, err := s.Operation(ctx, "op-1"); err != nil || !reflect.DeepEqual(got, second) {
		t.Errorf("Operation = %+v, %v; want the later %+v", got, err, second)
	}
	older := projection.Song{ID: "s1", URL: "https://youtu.be/s1", LastSeq: 2}
	newer := Song("s1", 9)
	for _, song := range []projection.Song{older, newer} {
		if err := s.PutSong(ctx, song); err != nil {
			t.Fatalf("PutSong seq %d: %v", song.LastSeq, err)
		}
	}
	if got, err := s.Song(ctx, "s1"); err != nil || !reflect.DeepEqual(got, newer) {
		t.Errorf("Song = %+v, %v; want the later %+v", got, err, newer)
	}
}

func testInvalidIDs(t *testing.T, ctx context.Context, s Store) {
	for _, id := range []string{"", "a.b", "a/b", "video#x", string(make([]byte, 129))} {
		if err := s.PutOperation(ctx, projection.Operation{ID: id, LastSeq: 1}); err == nil {
			t.Errorf("PutOperation with id %q succeeded", id)
		}
		if err := s.PutSong(ctx, projection.Song{ID: id, LastSeq: 1}); err == nil {
			t.Errorf("PutSong with id %q succeeded", id)
		}
	}
	// An operation id is held to its own rule (events.ValidOperationID):
	// at most 64 characters, where a song id may have 128.
	long := strings.Repeat("o", 65)
	if err := s.PutOperation(ctx, projection.Operation{ID: long, LastSeq: 1}); err == nil {
		t.Errorf("PutOperation with a %d-character id succeeded", len(long))
	}
	if err := s.PutSong(ctx, projection.Song{ID: long, LastSeq: 1}); err != nil {
		t.Errorf("PutSong with a %d-character id: %v", len(long), err)
	}
}

func testConcurrent(t *testing.T, ctx context.Context, s Store) {
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		wg.Go(func() {
			errs <- s.PutOperation(ctx, Operation(fmt.Sprintf("op-c%d", i), uint64(i+1)))
			errs <- s.PutSong(ctx, Song(fmt.Sprintf("song-c%d", i), uint64(i+1)))
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		if op, err := s.Operation(ctx, fmt.Sprintf("op-c%d", i)); err != nil || op.LastSeq != uint64(i+1) {
			t.Errorf("op-c%d: %+v, %v", i, op, err)
		}
		if song, err := s.Song(ctx, fmt.Sprintf("song-c%d", i)); err != nil || song.LastSeq != uint64(i+1) {
			t.Errorf("song-c%d: %+v, %v", i, song, err)
		}
	}
}

func testStaleOperation(t *testing.T, ctx context.Context, s Store) {
	checkStaleWrites(t, Operation("op-stale", 10), 10, 3,
		func(op projection.Operation) error { return s.PutOperation(ctx, op) },
		func() (projection.Operation, error) { return s.Operation(ctx, "op-stale") },
		func(seq uint64) projection.Operation {
			return projection.Operation{ID: "op-stale", Status: projection.StatusInProgress, Stage: projection.StageRequested, Attempts: 1, LastSeq: seq}
		})
}

func testStaleSong(t *testing.T, ctx context.Context, s Store) {
	checkStaleWrites(t, Song("song-stale", 10), 10, 1,
		func(song projection.Song) error { return s.PutSong(ctx, song) },
		func() (projection.Song, error) { return s.Song(ctx, "song-stale") },
		func(seq uint64) projection.Song {
			return projection.Song{ID: "song-stale", Title: "older title", LastSeq: seq}
		})
}

// checkStaleWrites puts stored, then writes stale(seq) at same, stored's
// own sequence (a redelivery), and at earlier (a stale writer): each
// write must be a no-op, no error, with get still returning stored.
func checkStaleWrites[T any](t *testing.T, stored T, same, earlier uint64, put func(T) error, get func() (T, error), stale func(seq uint64) T) {
	t.Helper()
	if err := put(stored); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		seq  uint64
	}{
		{"same sequence (redelivery)", same},
		{"earlier sequence (stale writer)", earlier},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := put(stale(c.seq)); err != nil {
				t.Fatalf("a stale write is a no-op, not an error: %v", err)
			}
			if got, err := get(); err != nil || !reflect.DeepEqual(got, stored) {
				t.Errorf("after a stale write: %+v, %v; want %+v", got, err, stored)
			}
		})
	}
}

func testPutIf(t *testing.T, ctx context.Context, s Store) {
	op1, op2, op3 := Operation("op-if", 1), Operation("op-if", 2), Operation("op-if", 3)
	op1.Status, op2.Status = projection.StatusInProgress, projection.StatusInProgress
	song1, song2 := Song("song-if", 1), Song("song-if", 2)
	song1.DCAKey, song1.DCALocation, song1.DCASize = "", "", 0
	steps := []struct {
		name string
		put  func() (bool, error)
		want bool
	}{
		{"a new operation over none", func() (bool, error) { return s.PutOperationIf(ctx, op1, projection.Operation{}) }, true},
		{"a new operation over one stored", func() (bool, error) { return s.PutOperationIf(ctx, op2, projection.Operation{}) }, false},
		{"the next operation over the one stored", func() (bool, error) { return s.PutOperationIf(ctx, op2, op1) }, true},
		{"an operation over one no longer stored", func() (bool, error) { return s.PutOperationIf(ctx, op3, op1) }, false},
		{"a finished operation over the one stored", func() (bool, error) { return s.PutOperationIf(ctx, op3, op2) }, true},
		{"a new song over none", func() (bool, error) { return s.PutSongIf(ctx, song1, projection.Song{}) }, true},
		{"a new song over one stored", func() (bool, error) { return s.PutSongIf(ctx, song2, projection.Song{}) }, false},
		{"a song over one that differs in a field", func() (bool, error) {
			stale := song1
			stale.Title = "other"
			return s.PutSongIf(ctx, song2, stale)
		}, false},
		{"a song over the one stored", func() (bool, error) { return s.PutSongIf(ctx, song2, song1) }, true},
		{"a song with the same sequence over the one stored", func() (bool, error) {
			filled := song2
			filled.Channel = "filled in"
			return s.PutSongIf(ctx, filled, song2)
		}, true},
	}
	for _, st := range steps {
		got, err := st.put()
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if got != st.want {
			t.Fatalf("%s: stored %v, want %v", st.name, got, st.want)
		}
	}
	if got, err := s.Operation(ctx, "op-if"); err != nil || got != op3 {
		t.Errorf("operation %+v, %v; want %+v", got, err, op3)
	}
	want := song2
	want.Channel = "filled in"
	if got, err := s.Song(ctx, "song-if"); err != nil || !got.Equal(want) {
		t.Errorf("song %+v, %v; want %+v", got, err, want)
	}
}

// testSongRace has writers each set one field of one song, reading it
// again whenever their write loses: every field is there at the end.
func testSongRace(t *testing.T, ctx context.Context, s Store) {
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			for {
				prev, err := s.Song(ctx, "song-race")
				if err != nil && !errors.Is(err, projection.ErrNotFound) {
					errs <- err
					return
				}
				next := prev
				next.ID = "song-race"
				next.DurationMs |= 1 << i
				next.LastSeq = max(next.LastSeq, uint64(i+1))
				ok, err := s.PutSongIf(ctx, next, prev)
				if err != nil || ok {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Song(ctx, "song-race")
	if err != nil || got.DurationMs != 1<<n-1 || got.LastSeq != n {
		t.Fatalf("song %+v, %v: want every writer's bit (%b) and last_seq %d", got, err, 1<<n-1, n)
	}
}
