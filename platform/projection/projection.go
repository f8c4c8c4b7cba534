// Package projection defines the state the recorder projects from the event
// stream, one Operation per request and one Song per catalog entry, and the
// rules that build it (Apply), which the recorder, a replay and the
// gateway's reads of an operation the recorder has not caught up with all
// share. Stores (kvstore, dynamostore) persist the records; the stream can
// always rebuild them.
package projection

import (
	"context"
	"errors"
	"fmt"
)

// ErrNotFound is returned by stores for an id they do not hold.
var ErrNotFound = errors.New("projection: not found")

// BadCursorError is a catalog's error for a search cursor it did not make:
// the caller's cursor, not the store, is at fault (a 400, not a 500).
type BadCursorError struct{ Cursor string }

func (e *BadCursorError) Error() string {
	return fmt.Sprintf("projection: malformed cursor %q", e.Cursor)
}

// Store is the projection store port: the records the recorder writes,
// the gateway reads and searches, and /readyz pings. Its implementations
// (platform/store/kvstore, platform/store/dynamostore) pass the contract
// suite platform/testkit/projectiontest and are safe for concurrent use.
// Reads of a missing record return ErrNotFound.
type Store interface {
	Operation(ctx context.Context, id string) (Operation, error)
	// PutOperation stores op. A finished one may expire after the
	// store's OPERATION_TTL.
	PutOperation(ctx context.Context, op Operation) error
	// PutOperationIf stores op as PutOperation does, but only if the
	// stored operation is still prev (by LastSeq; the zero Operation:
	// none is stored), and reports whether it stored op. The recorder
	// writes with it, so that what it built from a record it holds is
	// never stored over a change it has not seen.
	PutOperationIf(ctx context.Context, op, prev Operation) (bool, error)
	Song(ctx context.Context, id string) (Song, error)
	PutSong(ctx context.Context, song Song) error
	// PutSongIf stores song only if the stored song is still prev, field
	// for field (the zero Song: none is stored), and reports whether it
	// stored song: the songs are written by the recorder's lanes of all
	// their operations at once.
	PutSongIf(ctx context.Context, song, prev Song) (bool, error)
	// SearchSongs returns a page of the stored songs whose normalized
	// title or channel (NormalizeTitle) holds the normalized q, or whose
	// id is q, in title order, and the cursor of the next page ("" at the
	// end). A cursor it did not make is a *BadCursorError.
	SearchSongs(ctx context.Context, q string, limit int, cursor string) ([]Song, string, error)
	Ping(ctx context.Context) error
}

// Status values, as the original service named them.
const (
	StatusInProgress = "iniciando"
	StatusSuccess    = "success"
	StatusFailed     = "failed"
	// StatusCancelled ends an operation a user cancelled
	// (operation.cancelled).
	StatusCancelled = "cancelled"
	// StatusPartial ends a parent operation (a playlist) some of whose
	// children succeeded and some did not (playlist.ended).
	StatusPartial = "partial"
)

// Stages, the last step an operation reached.
const (
	StageRequested  = "requested"
	StageResolved   = "resolved"
	StageDownloaded = "downloaded"
	StageEncoded    = "encoded"
	StageStored     = "stored"
	StageFailed     = "failed"
	StageCancelled  = "cancelled"
)

// Operation is one request's state. The JSON names of the first fields are
// the original service's status object.
type Operation struct {
	ID             string `json:"id"`
	SongID         string `json:"song_id"`
	Status         string `json:"status"`
	Message        string `json:"message"`
	Data           string `json:"data"`
	ProcessingDate string `json:"processing_date"`
	Success        bool   `json:"success"`
	Attempts       int    `json:"attempts"`
	Failures       int    `json:"failures"`
	Stage          string `json:"stage"`

	// Query is what the user asked for.
	Query string `json:"query,omitempty"`
	// ErrorCode is the failure's code when Status is failed.
	ErrorCode string `json:"error_code,omitempty"`
	// CreatedAt and UpdatedAt are RFC 3339 times of the first and last event.
	CreatedAt string `json:"created_at,omitempty"`
	UpdatedAt string `json:"updated_at,omitempty"`
	// LastSeq is the stream sequence of the last event applied. An event at
	// or below it has been applied already and is skipped.
	LastSeq uint64 `json:"last_seq"`
}

// Final reports whether the operation has ended.
func (o Operation) Final() bool {
	return o.Status == StatusSuccess || o.Status == StatusFailed || o.Status == StatusCancelled || o.Status == StatusPartial
}

// Song is a catalog entry.
type Song struct {
	ID           string `json:"id"`
	Title        string `json:"title,omitempty"`
	DurationMs   int64  `json:"duration_ms,omitempty"`
	URL          string `json:"url,omitempty"`
	ThumbnailURL string `json:"thumbnail_url,omitempty"`
	Channel      string `json:"channel,omitempty"`
	Source       string `json:"source,omitempty"`

	// DCAKey, DCALocation and DCASize describe the stored DCA; DCAKey is
	// empty until one is stored.
	DCAKey      string `json:"dca_key,omitempty"`
	DCALocation string `json:"dca_location,omitempty"`
	DCASize     int64  `json:"dca_size,omitempty"`
	DCAFrames   int64  `json:"dca_frames,omitempty"`
	// Mode is how the DCA's packets were made ("passthrough" or
	// "transcode", from dca.encoded) and ModeReason why; LoudnessLUFS
	// and TruePeakDB are the stored audio's loudness (EBU R128) and true
	// peak, nil when not measured.
	Mode         string   `json:"mode,omitempty"`
	ModeReason   string   `json:"mode_reason,omitempty"`
	LoudnessLUFS *float64 `json:"loudness_lufs,omitempty"`
	TruePeakDB   *float64 `json:"true_peak_db,omitempty"`

	UpdatedAt string `json:"updated_at,omitempty"`
	LastSeq   uint64 `json:"last_seq"`
}

// Stored reports whether the song's DCA is stored: the recorder sets DCAKey
// at upload.done and never clears it. Only stored songs are in the catalog
// (SearchSongs); a song that is being processed, or whose every operation
// failed, has a record (GET /v1/songs/{id} says "stored": false) but is
// not listed.
func (s Song) Stored() bool { return s.DCAKey != "" }

// Equal reports whether s and o hold the same song, field for field. The
// loudness fields are pointers, so == would compare where they point, and
// a record read back from a store never equals the one written: compare
// songs with Equal, never ==.
func (s Song) Equal(o Song) bool {
	a, b := s, o
	a.LoudnessLUFS, a.TruePeakDB, b.LoudnessLUFS, b.TruePeakDB = nil, nil, nil, nil
	return a == b && sameFloat(s.LoudnessLUFS, o.LoudnessLUFS) && sameFloat(s.TruePeakDB, o.TruePeakDB)
}

// sameFloat reports whether a and b are both nil or point to one value.
func sameFloat(a, b *float64) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}
