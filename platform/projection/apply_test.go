package projection

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/butakero/butakero/events"
)

var (
	t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	t1 = t0.Add(time.Minute)
)

func envelope(t *testing.T, songID string, ev events.Event) events.Envelope {
	t.Helper()
	env, err := events.NewWithID("e-"+ev.Type(), "op1", songID, ev)
	if err != nil {
		t.Fatal(err)
	}
	env.Time = t0
	return env
}

func TestApply(t *testing.T) {
	song := events.Song{ID: "vid1", URL: "https://youtu.be/vid1", Source: "youtube"}
	inProgress := Operation{ID: "op1", SongID: "vid1", Status: StatusInProgress, Stage: StageDownloaded, Query: "q", Attempts: 1, CreatedAt: "2025-03-01T11:00:00Z", LastSeq: 5}
	// stored is inProgress ended by upload.done at seq 8.
	stored := inProgress
	stored.Status, stored.Success, stored.Stage, stored.Message, stored.Data = "success", true, "stored", "DCA stored", "nats://objects/b/audio/vid1.dca"
	stored.ProcessingDate, stored.UpdatedAt, stored.LastSeq = "2025-03-01T12:00:00Z", "2025-03-01T12:00:00Z", 8
	known := Song{ID: "vid1", Title: "Old title", DurationMs: 1000, URL: "https://youtu.be/vid1", Channel: "Chan", LastSeq: 4}
	// encoded is inProgress after dca.encoded at seq 7.
	encoded := inProgress
	encoded.Stage, encoded.UpdatedAt, encoded.LastSeq = "encoded", "2025-03-01T12:00:00Z", 7
	// touched is inProgress after an event at seq 6 that leaves its stage.
	touched := inProgress
	touched.UpdatedAt, touched.LastSeq = "2025-03-01T12:00:00Z", 6
	success := inProgress
	success.Status, success.Success, success.Stage, success.Message, success.Data = StatusSuccess, true, StageStored, "DCA stored", "nats://x"

	cases := []struct {
		name     string
		op       Operation
		song     Song
		songID   string // envelope's
		ev       events.Event
		seq      uint64
		wantOp   Operation
		wantSong Song
	}{
		{
			name: "song.requested creates the operation",
			ev:   events.SongRequested{Query: "never gonna"}, seq: 1,
			wantOp: Operation{ID: "op1", Status: "iniciando", Stage: "requested", Query: "never gonna", Attempts: 1,
				CreatedAt: "2025-03-01T12:00:00Z", UpdatedAt: "2025-03-01T12:00:00Z", LastSeq: 1},
		},
		{
			// The gateway knew the song id at once (a YouTube URL): the
			// song gets no record from it, so the recorder need not read
			// it (projection.TouchesSong).
			name:   "song.requested with a song id leaves the song alone",
			songID: "vid1",
			ev:     events.SongRequested{Query: "https://youtu.be/vid1"}, seq: 1,
			wantOp: Operation{ID: "op1", SongID: "vid1", Status: "iniciando", Stage: "requested", Query: "https://youtu.be/vid1", Attempts: 1,
				CreatedAt: "2025-03-01T12:00:00Z", UpdatedAt: "2025-03-01T12:00:00Z", LastSeq: 1},
		},
		{
			name: "video.resolved sets the song and starts its record",
			op:   Operation{ID: "op1", Status: "iniciando", Stage: "requested", Attempts: 1, LastSeq: 1},
			ev:   events.VideoResolved{Song: song}, seq: 2, songID: "vid1",
			wantOp:   Operation{ID: "op1", SongID: "vid1", Status: "iniciando", Stage: "resolved", Attempts: 1, UpdatedAt: "2025-03-01T12:00:00Z", LastSeq: 2},
			wantSong: Song{ID: "vid1", URL: "https://youtu.be/vid1", Source: "youtube", UpdatedAt: "2025-03-01T12:00:00Z", LastSeq: 2},
		},
		{
			name: "audio.downloaded merges the song, the event's fields winning",
			op:   inProgress, song: known, songID: "vid1",
			ev:       events.AudioDownloaded{Song: events.Song{ID: "vid1", Title: "New title", DurationMs: 212000}, Key: "staging/op1.m4a", Size: 10},
			seq:      6,
			wantOp:   touched,
			wantSong: Song{ID: "vid1", Title: "New title", DurationMs: 212000, URL: "https://youtu.be/vid1", Channel: "Chan", UpdatedAt: "2025-03-01T12:00:00Z", LastSeq: 6},
		},
		{
			name: "dca.encoded: stage encoded, song frames; song id from the operation",
			op:   inProgress, song: known,
			ev: events.DCAEncoded{Frames: 150, DurationMs: 3000, Mode: "transcode", ModeReason: "the source is aac, not opus", LoudnessLUFS: &lufs, TruePeakDB: &peak}, seq: 7,
			wantOp: encoded,
			wantSong: func() Song {
				s := known
				s.DCAFrames, s.UpdatedAt, s.LastSeq = 150, "2025-03-01T12:00:00Z", 7
				s.Mode, s.ModeReason, s.LoudnessLUFS, s.TruePeakDB = "transcode", "the source is aac, not opus", &lufs, &peak
				return s
			}(),
		},
		{
			name: "dca.encoded gives a song without a duration the source's",
			op:   inProgress, song: Song{ID: "vid1", Title: "tone", Source: "direct", LastSeq: 6},
			ev: events.DCAEncoded{Frames: 150, DurationMs: 3000, SourceDurationMs: 2995}, seq: 7,
			wantOp:   encoded,
			wantSong: Song{ID: "vid1", Title: "tone", Source: "direct", DurationMs: 2995, DCAFrames: 150, UpdatedAt: "2025-03-01T12:00:00Z", LastSeq: 7},
		},
		{
			name: "upload.done ends in success",
			op:   inProgress, song: known, songID: "vid1",
			ev:     events.UploadDone{Song: song, Key: "audio/vid1.dca", Location: "nats://objects/b/audio/vid1.dca", Size: 4242},
			seq:    8,
			wantOp: stored,
			wantSong: func() Song {
				s := known
				s.Source, s.DCAKey, s.DCALocation, s.DCASize = "youtube", "audio/vid1.dca", "nats://objects/b/audio/vid1.dca", 4242
				s.UpdatedAt, s.LastSeq = "2025-03-01T12:00:00Z", 8
				return s
			}(),
		},
		{
			// Two operations of one song in different recorder lanes: the
			// other one's later event reached the song first.
			name: "an older event of another operation only fills in what the song lacks",
			op:   inProgress, song: func() Song { s := known; s.LastSeq = 12; return s }(), songID: "vid1",
			ev:     events.UploadDone{Song: events.Song{ID: "vid1", Title: "Older title", ThumbnailURL: "https://i/t.jpg"}, Key: "audio/vid1.dca", Location: "nats://objects/b/audio/vid1.dca", Size: 4242},
			seq:    8,
			wantOp: stored,
			wantSong: func() Song {
				s := known
				s.ThumbnailURL, s.DCAKey, s.DCALocation, s.DCASize = "https://i/t.jpg", "audio/vid1.dca", "nats://objects/b/audio/vid1.dca", 4242
				s.LastSeq = 12
				return s
			}(),
		},
		{
			name: "a stored song asked for again is not written",
			op:   inProgress, songID: "vid1",
			song: func() Song {
				s := known
				s.DCAKey, s.DCALocation, s.DCASize = "audio/vid1.dca", "nats://objects/b/audio/vid1.dca", 4242
				return s
			}(),
			ev:     events.UploadDone{Song: events.Song{ID: "vid1", Title: "Old title"}, Key: "audio/vid1.dca", Location: "nats://objects/b/audio/vid1.dca", Size: 4242},
			seq:    8,
			wantOp: stored,
			wantSong: func() Song {
				s := known
				s.DCAKey, s.DCALocation, s.DCASize = "audio/vid1.dca", "nats://objects/b/audio/vid1.dca", 4242
				return s
			}(),
		},
		{
			name: "operation.failed ends in failure and leaves the song",
			op:   inProgress, song: known, songID: "vid1",
			ev:  events.OperationFailed{Stage: "encode", Code: events.CodeInvalidAudio, Message: "not audio", Attempts: 3},
			seq: 9,
			wantOp: func() Operation {
				o := inProgress
				o.Status, o.Success, o.Stage, o.Message, o.ErrorCode = "failed", false, "failed", "not audio", "invalid_audio"
				o.Attempts, o.Failures, o.ProcessingDate, o.UpdatedAt, o.LastSeq = 3, 3, "2025-03-01T12:00:00Z", "2025-03-01T12:00:00Z", 9
				return o
			}(),
			wantSong: known,
		},
		{
			name: "an event at or below LastSeq changes nothing",
			op:   inProgress, song: known, songID: "vid1",
			ev: events.UploadDone{Song: song, Key: "k"}, seq: 5,
			wantOp: inProgress, wantSong: known,
		},
		{
			name: "the song part is skipped when the song already has the event",
			op:   inProgress, song: func() Song { s := known; s.LastSeq = 6; return s }(), songID: "vid1",
			ev: events.AudioDownloaded{Song: events.Song{ID: "vid1", Title: "New"}}, seq: 6,
			wantOp:   touched,
			wantSong: func() Song { s := known; s.LastSeq = 6; return s }(),
		},
		{
			name: "an event after the end is only recorded as applied",
			op:   success, song: known, songID: "vid1",
			ev: events.OperationFailed{Stage: "encode", Code: events.CodeTimeout, Message: "late", Attempts: 2}, seq: 10,
			wantOp:   func() Operation { o := success; o.LastSeq = 10; return o }(),
			wantSong: known,
		},
		{
			// A passthrough's loudness is measured once the DCA is stored,
			// so its event comes after upload.done.
			name: "loudness.measured after the end gives the song its loudness",
			op:   stored, song: known, songID: "vid1",
			ev: events.LoudnessMeasured{Key: "audio/vid1.dca", LoudnessLUFS: &lufs, TruePeakDB: &peak}, seq: 11,
			wantOp: func() Operation { o := stored; o.LastSeq = 11; return o }(),
			wantSong: func() Song {
				s := known
				s.LoudnessLUFS, s.TruePeakDB, s.UpdatedAt, s.LastSeq = &lufs, &peak, "2025-03-01T12:00:00Z", 11
				return s
			}(),
		},
		{
			name: "loudness.measured before the end changes only the song",
			op:   inProgress, song: known,
			ev: events.LoudnessMeasured{Key: "audio/vid1.dca", LoudnessLUFS: &lufs, TruePeakDB: &peak}, seq: 8,
			wantOp: func() Operation {
				o := inProgress
				o.UpdatedAt, o.LastSeq = "2025-03-01T12:00:00Z", 8
				return o
			}(),
			wantSong: func() Song {
				s := known
				s.LoudnessLUFS, s.TruePeakDB, s.UpdatedAt, s.LastSeq = &lufs, &peak, "2025-03-01T12:00:00Z", 8
				return s
			}(),
		},
		{
			// An operation older than OPERATION_TTL, whose dca.encoded
			// was measured late: the song gets its loudness, and no
			// operation record comes back as in progress.
			name:   "loudness.measured of an operation with no record creates none",
			songID: "vid1", song: known,
			ev: events.LoudnessMeasured{Key: "audio/vid1.dca", LoudnessLUFS: &lufs, TruePeakDB: &peak}, seq: 30,
			wantSong: func() Song {
				s := known
				s.LoudnessLUFS, s.TruePeakDB, s.UpdatedAt, s.LastSeq = &lufs, &peak, "2025-03-01T12:00:00Z", 30
				return s
			}(),
		},
		{
			name: "a dca.encoded whose loudness is pending leaves the song's",
			op:   inProgress, song: func() Song { s := known; s.LoudnessLUFS, s.TruePeakDB = &lufs, &peak; return s }(),
			ev: events.DCAEncoded{Frames: 150, DurationMs: 3000, Mode: "passthrough", ModeReason: "20 ms frames", LoudnessPending: true}, seq: 7,
			wantOp: encoded,
			wantSong: func() Song {
				s := known
				s.LoudnessLUFS, s.TruePeakDB = &lufs, &peak
				s.DCAFrames, s.Mode, s.ModeReason, s.UpdatedAt, s.LastSeq = 150, "passthrough", "20 ms frames", "2025-03-01T12:00:00Z", 7
				return s
			}(),
		},
		{
			// Another operation's lane measured the song since.
			name: "an older loudness.measured leaves a measured song alone",
			op:   stored, song: func() Song { s := known; s.LoudnessLUFS, s.LastSeq = &peak, 20; return s }(), songID: "vid1",
			ev: events.LoudnessMeasured{Key: "audio/vid1.dca", LoudnessLUFS: &lufs, TruePeakDB: &peak}, seq: 11,
			wantOp:   func() Operation { o := stored; o.LastSeq = 11; return o }(),
			wantSong: func() Song { s := known; s.LoudnessLUFS, s.LastSeq = &peak, 20; return s }(),
		},
		{
			name: "an event for an unseen operation creates it",
			ev:   events.AudioDownloaded{Song: events.Song{ID: "vid9", Title: "T"}}, seq: 3,
			wantOp: Operation{ID: "op1", SongID: "vid9", Status: "iniciando", Stage: "downloaded", Attempts: 1,
				CreatedAt: "2025-03-01T12:00:00Z", UpdatedAt: "2025-03-01T12:00:00Z", LastSeq: 3},
			wantSong: Song{ID: "vid9", Title: "T", UpdatedAt: "2025-03-01T12:00:00Z", LastSeq: 3},
		},
		{
			name: "a repeated video.resolved does not move the stage back",
			op:   inProgress, song: known, songID: "vid1",
			ev: events.VideoResolved{Song: song}, seq: 6,
			wantOp: touched,
			wantSong: func() Song {
				s := known
				s.Source, s.UpdatedAt, s.LastSeq = "youtube", "2025-03-01T12:00:00Z", 6
				return s
			}(),
		},
		{
			name: "a song id that cannot be a key is left out",
			op:   Operation{ID: "op1", Status: "iniciando", Stage: "requested", Attempts: 1, LastSeq: 1},
			ev:   events.VideoResolved{Song: events.Song{ID: "bad/id"}}, seq: 2,
			wantOp: Operation{ID: "op1", Status: "iniciando", Stage: "resolved", Attempts: 1, UpdatedAt: "2025-03-01T12:00:00Z", LastSeq: 2},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := envelope(t, tc.songID, tc.ev)
			op, song := Apply(tc.op, tc.song, env, tc.ev, tc.seq, t1)
			if op != tc.wantOp {
				t.Errorf("operation\n got %s\nwant %s", js(op), js(tc.wantOp))
			}
			if !song.Equal(tc.wantSong) {
				t.Errorf("song\n got %s\nwant %s", js(song), js(tc.wantSong))
			}
			// Applying the same event again changes nothing.
			op2, song2 := Apply(op, song, env, tc.ev, tc.seq, t1.Add(time.Hour))
			if op2 != op || song2 != song {
				t.Errorf("second Apply changed the records:\n%s\n%s", js(op2), js(song2))
			}
		})
	}
}

func js(v any) string { b, _ := json.Marshal(v); return string(b) }

// TestApplyCountsAttempts applies whole histories, each event with the
// delivery attempt that published it, and checks the operation's count of
// attempts and failures.
func TestApplyCountsAttempts(t *testing.T) {
	type step struct {
		ev      events.Event
		attempt int
	}
	song := events.Song{ID: "vid1"}
	requested := step{events.SongRequested{Query: "q"}, 0}
	resolved := func(a int) step { return step{events.VideoResolved{Song: song}, a} }
	downloaded := func(a int) step { return step{events.AudioDownloaded{Song: song, Key: "k"}, a} }
	encoded := func(a int) step { return step{events.DCAEncoded{Frames: 1}, a} }
	stored := func(a int) step { return step{events.UploadDone{Song: song, Key: "k", Location: "l"}, a} }
	failed := func(n int) step {
		return step{events.OperationFailed{Stage: "encode", Code: events.CodeTimeout, Message: "m", Attempts: n}, n}
	}
	cases := []struct {
		name                   string
		history                []step
		wantAttempts, wantFail int
	}{
		{"every stage at its first attempt", []step{requested, resolved(1), downloaded(1), encoded(1), stored(1)}, 1, 0},
		{"events from before attempts were stamped", []step{requested, resolved(0), downloaded(0), encoded(0), stored(0)}, 1, 0},
		{"the encode retried after a crash", []step{requested, resolved(1), downloaded(1), encoded(2), stored(2)}, 2, 1},
		{"the encoder died between its two events", []step{requested, resolved(1), downloaded(1), encoded(1), stored(2)}, 2, 1},
		{"retries in two stages", []step{requested, resolved(2), downloaded(3), encoded(1), stored(1)}, 4, 3},
		{"a stored song answered at once", []step{requested, resolved(1), stored(2)}, 2, 1},
		{"a permanent failure at the first attempt", []step{requested, resolved(1), failed(1)}, 1, 1},
		{"retries, then the last attempt fails", []step{requested, resolved(2), downloaded(1), failed(3)}, 4, 4},
		{"every delivery died (the max-deliveries advisory)", []step{requested, resolved(1), downloaded(1), failed(4)}, 4, 4},
		{"nothing counts after the end", []step{requested, resolved(1), downloaded(1), encoded(1), stored(1), failed(3)}, 1, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var op Operation
			var rec Song
			for i, s := range tc.history {
				env := envelope(t, "vid1", s.ev)
				env.Attempt = s.attempt
				seq := uint64(i + 1)
				op, rec = Apply(op, rec, env, s.ev, seq, t1)
				// A redelivered event changes nothing.
				if again, _ := Apply(op, rec, env, s.ev, seq, t1); again != op {
					t.Fatalf("event %d applied twice changed the operation", i+1)
				}
			}
			if op.Attempts != tc.wantAttempts || op.Failures != tc.wantFail {
				t.Errorf("attempts %d, failures %d; want %d, %d", op.Attempts, op.Failures, tc.wantAttempts, tc.wantFail)
			}
		})
	}
}

var lufs, peak = -20.5, -3.1
