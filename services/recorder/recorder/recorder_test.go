package recorder_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/projection"
	"github.com/butakero/butakero/platform/runtime/config"
	"github.com/butakero/butakero/platform/store/kvstore"
	"github.com/butakero/butakero/platform/testkit/natstest"
	"github.com/butakero/butakero/platform/testkit/wait"
	"github.com/butakero/butakero/services/recorder/recorder"
	"github.com/nats-io/nats.go/jetstream"
)

// start runs the recorder on env with store until the test ends. stop
// cancels it and returns what Run returned.
func start(t *testing.T, env *natstest.Env, store recorder.Store) (stop func() error) {
	t.Helper()
	cfg, err := config.Load(config.FromMap(nil))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ShutdownGrace = 5 * time.Second
	return wait.Go(t, 30*time.Second, func(ctx context.Context) error {
		return recorder.Run(ctx, recorder.Deps{JS: env.JS, Store: store, Config: cfg,
			Log: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	})
}

func openStore(t *testing.T, env *natstest.Env) *kvstore.Store {
	t.Helper()
	return natstest.Open(context.Background(), t, kvstore.Open, env.JS, 1)
}

// waitOp watches operation id in the KV bucket until done says so, and
// returns the record that satisfied it.
func waitOp(ctx context.Context, t *testing.T, env *natstest.Env, id string, done func(projection.Operation) bool) projection.Operation {
	t.Helper()
	kv, err := env.JS.KeyValue(ctx, kvstore.OperationsBucket)
	if err != nil {
		t.Fatal(err)
	}
	w, err := kv.Watch(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	var last projection.Operation
	for {
		select {
		case e := <-w.Updates():
			if e == nil || e.Operation() != jetstream.KeyValuePut {
				continue
			}
			if err := json.Unmarshal(e.Value(), &last); err != nil {
				t.Fatal(err)
			}
			if done(last) {
				return last
			}
		case <-ctx.Done():
			t.Fatalf("operation %s never got there; last seen %+v", id, last)
		}
	}
}

// waitDrained waits until the recorder's lanes, sourced from the stream's
// first event, have taken every event up to seq and acked them all: the
// lanes stream is a work queue, empty once every lane acked its events.
func waitDrained(ctx context.Context, t *testing.T, env *natstest.Env, seq uint64) {
	t.Helper()
	for {
		lanes, err := env.JS.Stream(ctx, events.LanesStreamName)
		if err == nil {
			st := lanes.CachedInfo().State
			if st.LastSeq >= seq && st.Msgs == 0 {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the lanes did not drain up to sequence %d", seq)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func final(op projection.Operation) bool { return op.Final() }

// publish publishes evs for operation opID and returns the stream
// sequence of the last one.
func publish(t *testing.T, env *natstest.Env, opID, songID string, evs ...events.Event) uint64 {
	t.Helper()
	var seq uint64
	for _, ev := range evs {
		e, err := events.New(opID, songID, ev)
		if err != nil {
			t.Fatal(err)
		}
		ack, err := events.NewPublisher(env.JS).Publish(context.Background(), e)
		if err != nil {
			t.Fatal(err)
		}
		seq = ack.Sequence
	}
	return seq
}

// upTo says whether an operation has applied every event up to seq.
func upTo(seq uint64) func(projection.Operation) bool {
	return func(op projection.Operation) bool { return op.LastSeq >= seq }
}

func TestProjectsOperations(t *testing.T) {
	env := natstest.Start(t)
	store := openStore(t, env)
	start(t, env, store)

	song := events.Song{ID: "dQw4w9WgXcQ", URL: "https://www.youtube.com/watch?v=dQw4w9WgXcQ", Source: "youtube"}
	full := song
	full.Title, full.DurationMs, full.Channel = "Never Gonna Give You Up", 213000, "Rick Astley"
	done := events.UploadDone{Song: full, Key: "audio/dQw4w9WgXcQ.dca", Location: "nats://objects/butakero-blobs/audio/dQw4w9WgXcQ.dca", Size: 2_500_000}

	cases := []struct {
		name   string
		songID string
		events []events.Event
		want   projection.Operation // the fields compared
	}{
		{
			name: "success", songID: song.ID,
			events: []events.Event{
				events.SongRequested{Query: "never gonna give you up"},
				events.VideoResolved{Song: song},
				events.AudioDownloaded{Song: full, Key: "staging/x.m4a", Size: 3_000_000, Ext: "m4a"},
				events.DCAEncoded{Frames: 10650, DurationMs: 213000, SourceDurationMs: 212990, BitrateKbps: 96},
				done,
			},
			want: projection.Operation{SongID: song.ID, Status: "success", Success: true, Stage: "stored", Message: "DCA stored",
				Data: done.Location, Attempts: 1, Query: "never gonna give you up"},
		},
		{
			name: "failure", songID: song.ID,
			events: []events.Event{
				events.SongRequested{Query: "https://example.com/x.mp3"},
				events.VideoResolved{Song: song},
				events.OperationFailed{Stage: "fetch", Code: events.CodeDownloadFailed, Message: "the download failed", Attempts: 3},
			},
			want: projection.Operation{SongID: song.ID, Status: "failed", Stage: "failed", Message: "the download failed",
				Attempts: 3, Failures: 3, ErrorCode: "download_failed", Query: "https://example.com/x.mp3"},
		},
		{
			name: "song.requested missing", songID: song.ID,
			events: []events.Event{events.VideoResolved{Song: song}, done},
			want: projection.Operation{SongID: song.ID, Status: "success", Success: true, Stage: "stored", Message: "DCA stored",
				Data: done.Location, Attempts: 1},
		},
		{
			name: "events after the end are ignored", songID: song.ID,
			events: []events.Event{
				events.SongRequested{Query: "q"},
				events.OperationFailed{Stage: "resolve", Code: events.CodeNotFound, Message: "nothing found", Attempts: 1},
				events.VideoResolved{Song: song},
			},
			want: projection.Operation{Status: "failed", Stage: "failed", Message: "nothing found", Attempts: 1, Failures: 1,
				ErrorCode: "not_found", Query: "q", SongID: song.ID},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			opID := events.NewID()
			got := waitOp(ctx, t, env, opID, upTo(publish(t, env, opID, tc.songID, tc.events...)))
			cmp := got
			cmp.ID, cmp.CreatedAt, cmp.UpdatedAt, cmp.ProcessingDate, cmp.LastSeq = "", "", "", "", 0
			if cmp != tc.want {
				t.Fatalf("operation\n got %+v\nwant %+v", cmp, tc.want)
			}
			if got.ID != opID || got.CreatedAt == "" || got.ProcessingDate == "" {
				t.Fatalf("operation %+v", got)
			}
			if _, err := time.Parse(time.RFC3339, got.ProcessingDate); err != nil {
				t.Fatalf("processing date: %v", err)
			}
		})
	}
	t.Run("song catalog", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		// This runs before the parallel cases above.
		opID := events.NewID()
		waitOp(ctx, t, env, opID, upTo(publish(t, env, opID, song.ID, events.VideoResolved{Song: song},
			events.AudioDownloaded{Song: full, Key: "staging/y.webm"}, events.DCAEncoded{Frames: 10650}, done)))
		s, err := store.Song(ctx, song.ID)
		if err != nil {
			t.Fatal(err)
		}
		if s.Title != full.Title || s.DurationMs != full.DurationMs || s.Channel != full.Channel || s.DCAKey != done.Key ||
			s.DCALocation != done.Location || s.DCASize != done.Size || s.DCAFrames != 10650 {
			t.Fatalf("song %+v", s)
		}
	})
}

// flakyStore fails chosen writes once and counts the writes that stored
// something, per sequence (a conditional write that lost stored nothing).
type flakyStore struct {
	*kvstore.Store
	mu       sync.Mutex
	failOps  map[string]bool // operation status to fail once
	opPuts   map[uint64]int
	songPuts map[uint64]int
	// succeeded, when set, is closed once a successful operation's write
	// is stored and counted (a read of the store may see the write before
	// it is counted).
	succeeded chan struct{}
}

func (s *flakyStore) PutOperationIf(ctx context.Context, op, prev projection.Operation) (bool, error) {
	s.mu.Lock()
	if s.failOps[op.Status] {
		delete(s.failOps, op.Status)
		s.mu.Unlock()
		return false, errors.New("store unavailable")
	}
	s.mu.Unlock()
	ok, err := s.Store.PutOperationIf(ctx, op, prev)
	if ok {
		s.mu.Lock()
		s.opPuts[op.LastSeq]++
		if op.Status == "success" && s.succeeded != nil {
			close(s.succeeded)
			s.succeeded = nil
		}
		s.mu.Unlock()
	}
	return ok, err
}

func (s *flakyStore) PutSongIf(ctx context.Context, song, prev projection.Song) (bool, error) {
	ok, err := s.Store.PutSongIf(ctx, song, prev)
	if ok {
		s.mu.Lock()
		s.songPuts[song.LastSeq]++
		s.mu.Unlock()
	}
	return ok, err
}

func (s *flakyStore) puts() (ops, songs int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.opPuts {
		ops += n
	}
	for _, n := range s.songPuts {
		songs += n
	}
	return ops, songs
}

// TestStoreErrorRetried: the operation write of upload.done fails once after
// its song write succeeded; the event is Nak'd, redelivered and applied, and
// the song write is not repeated.
func TestStoreErrorRetried(t *testing.T) {
	env := natstest.Start(t)
	succeeded := make(chan struct{})
	store := &flakyStore{Store: openStore(t, env), failOps: map[string]bool{"success": true}, opPuts: map[uint64]int{}, songPuts: map[uint64]int{}, succeeded: succeeded}
	start(t, env, store)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	opID := events.NewID()
	song := events.Song{ID: "s1", Title: "T"}
	publish(t, env, opID, "s1", events.SongRequested{Query: "q"}, events.VideoResolved{Song: song},
		events.UploadDone{Song: song, Key: "audio/s1.dca", Location: "nats://x", Size: 9})
	op := waitOp(ctx, t, env, opID, final)
	if op.Status != "success" || op.LastSeq != 3 {
		t.Fatalf("operation %+v", op)
	}
	select {
	case <-succeeded:
	case <-ctx.Done():
		t.Fatal("the successful write was never counted")
	}
	store.mu.Lock()
	defer store.mu.Unlock()
	if store.songPuts[3] != 1 || store.opPuts[3] != 1 {
		t.Fatalf("writes for seq 3: song %d, operation %d; want 1 each", store.songPuts[3], store.opPuts[3])
	}
	if len(store.failOps) != 0 {
		t.Fatal("the failing write never happened")
	}
}

// TestRedeliveredEventsSkipped records an operation, then recreates the
// consumer so that every event is delivered again: none is written again.
func TestRedeliveredEventsSkipped(t *testing.T) {
	env, ctx := natstest.StartWithin(t, 20*time.Second)
	kv := openStore(t, env)

	stop := start(t, env, kv)
	first := events.NewID()
	song := events.Song{ID: "s2", Title: "T"}
	publish(t, env, first, "s2", events.SongRequested{Query: "q"}, events.VideoResolved{Song: song},
		events.UploadDone{Song: song, Key: "audio/s2.dca", Location: "nats://x", Size: 9})
	before := waitOp(ctx, t, env, first, final)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// A new lanes stream sources every event of the stream again.
	if err := env.JS.DeleteStream(ctx, events.LanesStreamName); err != nil {
		t.Fatal(err)
	}

	counting := &flakyStore{Store: kv, opPuts: map[uint64]int{}, songPuts: map[uint64]int{}}
	start(t, env, counting)
	marker := events.NewID()
	last := publish(t, env, marker, "", events.SongRequested{Query: "marker"})
	waitOp(ctx, t, env, marker, func(op projection.Operation) bool { return op.Stage == "requested" })
	waitDrained(ctx, t, env, last)
	if ops, songs := counting.puts(); ops != 1 || songs != 0 {
		t.Fatalf("after the replay: %d operation writes (want 1, the marker), %d song writes (want 0)", ops, songs)
	}
	after, err := kv.Operation(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Fatalf("replay changed the operation:\n%+v\n%+v", before, after)
	}
}

// TestUndecodableTerminated: messages that do not decode are terminated and
// the events after them are still applied.
func TestUndecodableTerminated(t *testing.T) {
	env := natstest.Start(t)
	start(t, env, openStore(t, env))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	opID := events.NewID()
	bad := [][]byte{
		[]byte("not json"),
		[]byte(`{"id":"x","type":"butakero.song.requested.v9","operation_id":"` + opID + `","data":{}}`),
		[]byte(`{"id":"y","type":"butakero.song.requested.v1","operation_id":"bad op id","data":{}}`),
		[]byte(`{"id":"z","type":"butakero.video.resolved.v1","operation_id":"` + opID + `","data":{"song":"not an object"}}`),
	}
	for _, body := range bad {
		if _, err := env.JS.Publish(ctx, events.Subject(events.KindSongRequested, opID), body); err != nil {
			t.Fatal(err)
		}
	}
	op := waitOp(ctx, t, env, opID, upTo(publish(t, env, opID, "", events.SongRequested{Query: "after the garbage"},
		events.OperationFailed{Stage: "resolve", Code: events.CodeNotFound, Message: "nothing", Attempts: 1})))
	if op.Query != "after the garbage" || op.Status != "failed" {
		t.Fatalf("operation %+v", op)
	}
	// The last event is acked just after it is stored: poll until every
	// lane has acked all it was given, none redelivered.
	lanes, err := env.JS.Stream(ctx, events.LanesStreamName)
	if err != nil {
		t.Fatal(err)
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for _, name := range events.LaneConsumers(config.DefaultRecorderPartitions) {
		cons, err := lanes.Consumer(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		for {
			info, err := cons.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if info.NumAckPending == 0 && info.NumPending == 0 && info.AckFloor.Stream == info.Delivered.Stream {
				if info.NumRedelivered != 0 {
					t.Fatalf("undecodable messages were redelivered: %+v", info)
				}
				break
			}
			select {
			case <-tick.C:
			case <-ctx.Done():
				t.Fatalf("lane %s still has work: %+v", name, info)
			}
		}
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestCatalogListsStoredSongsOnly projects songs through the live recorder:
// a song whose operations all failed keeps a record (GET /v1/songs/{id})
// but stays out of the catalog; a song enters it at upload.done, also one
// that failed before.
func TestCatalogListsStoredSongsOnly(t *testing.T) {
	env := natstest.Start(t)
	store := openStore(t, env)
	start(t, env, store)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	failing := events.Song{ID: "failingsong", URL: "https://www.youtube.com/watch?v=failingsong", Source: "youtube", Title: "Always Fails"}
	stored := events.Song{ID: "storedsong1", URL: "https://www.youtube.com/watch?v=storedsong1", Source: "youtube", Title: "Stored Song"}
	fail := events.OperationFailed{Stage: "encode", Code: events.CodeInvalidAudio, Message: "not audio", Attempts: 1}
	upload := func(s events.Song) events.UploadDone {
		return events.UploadDone{Song: s, Key: "audio/" + s.ID + ".dca", Location: "nats://objects/b/audio/" + s.ID + ".dca", Size: 1000}
	}
	catalog := func(t *testing.T) []string {
		t.Helper()
		songs, _, err := store.SearchSongs(ctx, "", 0, "")
		if err != nil {
			t.Fatal(err)
		}
		ids := []string{}
		for _, s := range songs {
			ids = append(ids, s.ID)
		}
		return ids
	}
	steps := []struct {
		name        string
		song        events.Song
		events      []events.Event
		wantCatalog []string
	}{
		{"a failed song is not listed", failing, []events.Event{events.SongRequested{Query: failing.URL}, events.VideoResolved{Song: failing},
			events.AudioDownloaded{Song: failing, Key: "staging/a.m4a", Size: 10, Ext: "m4a"}, fail}, []string{}},
		{"nor after a second failure", failing, []events.Event{events.VideoResolved{Song: failing}, fail}, []string{}},
		{"a stored song is listed", stored, []events.Event{events.VideoResolved{Song: stored}, upload(stored)}, []string{stored.ID}},
		{"the failed song once stored is listed", failing, []events.Event{events.VideoResolved{Song: failing}, upload(failing)}, []string{failing.ID, stored.ID}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			opID := events.NewID()
			waitOp(ctx, t, env, opID, upTo(publish(t, env, opID, st.song.ID, st.events...)))
			if got := catalog(t); !slices.Equal(got, st.wantCatalog) {
				t.Errorf("catalog %v, want %v", got, st.wantCatalog)
			}
			rec, err := store.Song(ctx, st.song.ID)
			if err != nil {
				t.Fatalf("the song's record: %v", err)
			}
			if wantStored := slices.Contains(st.wantCatalog, st.song.ID); rec.Stored() != wantStored || rec.Title != st.song.Title {
				t.Errorf("record %+v, want stored=%v and the title", rec, wantStored)
			}
		})
	}
}
