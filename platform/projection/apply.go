package projection

import (
	"cmp"
	"fmt"
	"time"

	"github.com/butakero/butakero/events"
)

// stageRank orders the stages so that a late or repeated event never moves
// an operation back.
var stageRank = map[string]int{
	StageRequested:  1,
	StageResolved:   2,
	StageDownloaded: 3,
	StageEncoded:    4,
	StageStored:     5,
	StageFailed:     5,
	StageCancelled:  5,
}

// SongID is the song an event is about: the one its data names, else the
// envelope's, else the one the operation already knows. It is "" when none
// is known or the id could not be a store key (such an event still updates
// its operation; the song catalog just cannot hold it).
func SongID(op Operation, env events.Envelope, ev events.Event) string {
	id := env.SongID
	switch e := ev.(type) {
	case events.VideoResolved:
		id = pick(e.Song.ID, id)
	case events.AudioDownloaded:
		id = pick(e.Song.ID, id)
	case events.UploadDone:
		id = pick(e.Song.ID, id)
	}
	id = pick(id, op.SongID)
	if events.ValidSongID(id) != nil {
		return ""
	}
	return id
}

// TouchesSong reports whether Apply may change a song for ev: for any other
// event the song it is given comes back as it was, so a writer need not
// read it.
func TouchesSong(ev events.Event) bool {
	switch ev.(type) {
	case events.VideoResolved, events.AudioDownloaded, events.DCAEncoded, events.UploadDone, events.LoudnessMeasured:
		return true
	}
	return false
}

// Apply returns op and song after the event ev (in envelope env) at stream
// sequence seq, recorded at time t (the stream's timestamp of the message,
// used only for an event without a time of its own).
// It is pure and deterministic, so that the live recorder and a replay of
// the stream build the same projections.
//
// op is the operation's current record (zero if none) and song the record
// of SongID(op, env, ev) (zero if none or no song). An operation whose
// LastSeq changed in the result must be stored, and a song that differs
// from the one given. Store the song before the operation: an event at or
// below op.LastSeq counts as fully applied and changes nothing, while an
// event applied to the song again changes nothing of it.
//
// An event for an operation that has already ended is only recorded as
// applied (op.LastSeq), except that loudness.measured, which comes after
// the end, still changes the song. An event for an operation not seen yet (its
// song.requested missing) creates the record, except loudness.measured,
// which changes only the song (the record may have expired).
//
// Attempts and failures count real attempts (see countAttempts): an
// operation starts at one attempt and no failure, and every retry of a
// stage, whatever ended the attempt before it (an error, a timeout, a
// crash, a shutdown), adds one of each.
func Apply(op Operation, song Song, env events.Envelope, ev events.Event, seq uint64, t time.Time) (Operation, Song) {
	if seq <= op.LastSeq {
		return op, song
	}
	at := env.Time
	if at.IsZero() {
		at = t
	}
	if m, ok := ev.(events.LoudnessMeasured); ok {
		// A song's measure, usually after its operation's end: it changes
		// the song, and of the operation only what records it as applied
		// (none is made for one whose record expired).
		id := SongID(op, env, ev)
		if op.ID != "" {
			if !op.Final() {
				op.UpdatedAt = at.UTC().Format(time.RFC3339)
				op.SongID = cmp.Or(id, op.SongID)
			}
			op.LastSeq = seq
		}
		if id != "" {
			song = measured(song, id, m, seq, at.UTC().Format(time.RFC3339))
		}
		return op, song
	}
	if op.Final() {
		op.LastSeq = seq
		return op, song
	}
	// Both times are the event's own: a record reads the same whichever
	// stream or lane it was applied from (the recorder's lanes store a
	// copy of the event a little later than the event stream did).
	evTime := at.UTC().Format(time.RFC3339)
	recTime := evTime
	songID := SongID(op, env, ev)

	if op.ID == "" {
		op = Operation{ID: env.OperationID, Status: StatusInProgress, CreatedAt: evTime, Attempts: 1}
	}
	if songID != "" {
		op.SongID = songID
	}
	op.LastSeq = seq
	op.UpdatedAt = recTime
	advance := func(stage string) {
		if stageRank[stage] > stageRank[op.Stage] {
			op.Stage = stage
		}
	}
	countAttempts(&op, env, ev)
	switch e := ev.(type) {
	case events.SongRequested:
		op.Query = e.Query
		advance(StageRequested)
	case events.VideoResolved:
		advance(StageResolved)
	case events.AudioDownloaded:
		advance(StageDownloaded)
	case events.DCAEncoded:
		advance(StageEncoded)
	case events.UploadDone:
		op.Status = StatusSuccess
		op.Success = true
		op.Stage = StageStored
		op.Message = "DCA stored"
		op.Data = e.Location
		op.ProcessingDate = evTime
		op.ErrorCode = ""
	case events.OperationFailed:
		op.Status = StatusFailed
		op.Success = false
		op.Stage = StageFailed
		op.Message = e.Message
		op.ErrorCode = string(e.Code)
		op.ProcessingDate = evTime
	case events.PlaylistEnded:
		op.Status = e.Status
		op.Success = e.Status == events.PlaylistSuccess
		op.Stage = StageStored
		if !op.Success {
			op.Stage = StageFailed
		}
		if e.Status == events.PlaylistCancelled {
			op.Stage = StageCancelled
		}
		op.Message = fmt.Sprintf("%d of %d songs stored", e.Counts[events.PlaylistSuccess],
			e.Counts[events.PlaylistSuccess]+e.Counts[events.PlaylistFailed]+e.Counts[events.PlaylistCancelled])
		op.ErrorCode = ""
		op.ProcessingDate = evTime
	case events.OperationCancelled:
		op.Status = StatusCancelled
		op.Success = false
		op.Stage = StageCancelled
		op.Message = pick(e.Reason, "cancelled")
		op.ErrorCode = ""
		op.ProcessingDate = evTime
	}

	if songID == "" || !TouchesSong(ev) {
		return op, song
	}
	// A song is touched by the events of all its operations, which the
	// recorder applies in lanes by operation: events of two operations of
	// one song may be applied out of stream order. An event older than
	// the song's last (or that event itself, again) only fills in what the
	// record lacks; a newer one's fields win. A song record changes only
	// when an event adds something to it, so a request for a stored song
	// (whose events say what the record holds) writes nothing.
	older := seq <= song.LastSeq
	next := song
	next.ID = songID
	switch e := ev.(type) {
	case events.VideoResolved:
		next = merge(next, e.Song, older)
	case events.AudioDownloaded:
		next = merge(next, e.Song, older)
	case events.DCAEncoded:
		if !older || next.DCAFrames == 0 {
			next.DCAFrames = e.Frames
			next.Mode, next.ModeReason = e.Mode, e.ModeReason
			// A pending loudness (loudness.measured follows) leaves the
			// one the song has.
			if !e.LoudnessPending {
				next.LoudnessLUFS, next.TruePeakDB = e.LoudnessLUFS, e.TruePeakDB
			}
		}
		// A plain file's metadata has no duration; the encoder measured it.
		if next.DurationMs == 0 {
			next.DurationMs = e.SourceDurationMs
		}
	case events.UploadDone:
		next = merge(next, e.Song, older)
		if !older || next.DCAKey == "" {
			next.DCAKey = e.Key
			next.DCALocation = e.Location
			next.DCASize = e.Size
		}
	}
	if next.Equal(song) {
		return op, song
	}
	if !older {
		next.LastSeq = seq
		next.UpdatedAt = recTime
	}
	return op, next
}

// measured is song after its loudness.measured at seq, recorded at
// recTime. An older event than the song's last (from another operation's
// lane) only fills in a loudness the record lacks.
func measured(song Song, songID string, e events.LoudnessMeasured, seq uint64, recTime string) Song {
	older := seq <= song.LastSeq
	if older && (song.LoudnessLUFS != nil || song.TruePeakDB != nil) {
		return song
	}
	next := song
	next.ID = songID
	next.LoudnessLUFS, next.TruePeakDB = e.LoudnessLUFS, e.TruePeakDB
	if next.Equal(song) {
		return song
	}
	if !older {
		next.LastSeq = seq
		next.UpdatedAt = recTime
	}
	return next
}

// countAttempts adds to op what ev says of its stage's attempts. Each
// stage's last event carries the delivery attempt that published it
// (Envelope.Attempt): attempt n means n-1 attempts of that stage ended
// without it, each a retry and a failure. The stages' last events are
// video.resolved (resolve), audio.downloaded (fetch) and upload.done
// (encode, or whichever stage answered from a stored song); dca.encoded is
// not one, since the encoder's upload.done follows it from the same
// delivery or a later one. operation.failed says how many attempts its
// stage made, all of them failed. Events are applied once each (by stream
// sequence) and a retried stage's events keep their first copy's attempt,
// so a count is never added twice.
func countAttempts(op *Operation, env events.Envelope, ev events.Event) {
	retries := 0
	switch e := ev.(type) {
	case events.VideoResolved, events.AudioDownloaded, events.UploadDone:
		retries = max(env.Attempt-1, 0)
	case events.OperationFailed:
		n := e.Attempts
		if n < 1 {
			n = max(env.Attempt, 1)
		}
		op.Attempts += n - 1
		op.Failures += n
		return
	}
	op.Attempts += retries
	op.Failures += retries
}

// merge folds what an event says of a song into its record. A newer event's
// non-empty fields win; an older one's only fill in empty fields.
func merge(rec Song, s events.Song, older bool) Song {
	have := events.Song{
		ID: rec.ID, Title: rec.Title, DurationMs: rec.DurationMs, URL: rec.URL,
		ThumbnailURL: rec.ThumbnailURL, Channel: rec.Channel, Source: rec.Source,
	}
	m := s.Merge(have)
	if older {
		m = have.Merge(s)
	}
	rec.Title, rec.DurationMs, rec.URL = m.Title, m.DurationMs, m.URL
	rec.ThumbnailURL, rec.Channel, rec.Source = m.ThumbnailURL, m.Channel, m.Source
	return rec
}

func pick(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
