// Package events is Butakero's event contract: the envelope every message
// travels in, one struct per event, the subjects they are published on, and
// the stream and consumer definitions the services share.
//
// The stream is the source of truth. Every store the services keep is a
// projection of it that can be rebuilt by replaying these events in order.
//
// Compatibility follows NATS ADR-2: a type name carries its version
// ("butakero.video.resolved.v1"); fields may be added to a version, never
// removed or repurposed; a breaking change is a new type.
package events

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Kind names an event without its version. It is also the first two tokens
// of the subject the event is published on: "<kind>.<operation_id>".
type Kind string

// The kinds of the pipeline, in the order an operation goes through them.
const (
	KindSongRequested   Kind = "song.requested"
	KindVideoResolved   Kind = "video.resolved"
	KindAudioDownloaded Kind = "audio.downloaded"
	KindDCAEncoded      Kind = "dca.encoded"
	KindUploadDone      Kind = "upload.done"
	KindOperationFailed Kind = "operation.failed"
	// KindOperationCancelled ends an operation a user cancelled (see
	// cancel.go); it is published by the gateway, not by a stage.
	KindOperationCancelled Kind = "operation.cancelled"
)

// Kinds lists every kind the stream holds.
var Kinds = []Kind{KindSongRequested, KindVideoResolved, KindAudioDownloaded, KindDCAEncoded, KindUploadDone, KindOperationFailed,
	KindOperationCancelled, KindPlaylistResolved, KindPlaylistEnded, KindAudioArriving, KindLoudnessMeasured}

// Versioned type names carried in Envelope.Type.
const (
	TypeSongRequested   = "butakero.song.requested.v1"
	TypeVideoResolved   = "butakero.video.resolved.v1"
	TypeAudioDownloaded = "butakero.audio.downloaded.v1"
	TypeDCAEncoded      = "butakero.dca.encoded.v1"
	TypeUploadDone      = "butakero.upload.done.v1"
	TypeOperationFailed = "butakero.operation.failed.v1"
	// TypeOperationCancelled is OperationCancelled's type (cancel.go).
	TypeOperationCancelled = "butakero.operation.cancelled.v1"
)

// Event is implemented by the event structs of this package only.
type Event interface {
	// Kind is the event's subject prefix.
	Kind() Kind
	// Type is the event's versioned type name.
	Type() string
}

// Song is what is known of a song. Fields are filled in as the pipeline
// learns them: the resolver knows the id and URL, the fetcher adds what
// yt-dlp reports. Empty fields mean "not known yet", never "empty".
type Song struct {
	// ID is the YouTube video id, or "url-" and a hash of the normalized URL
	// for a direct media URL.
	ID           string `json:"id"`
	Title        string `json:"title,omitempty"`
	DurationMs   int64  `json:"duration_ms,omitempty"`
	URL          string `json:"url,omitempty"`
	ThumbnailURL string `json:"thumbnail_url,omitempty"`
	Channel      string `json:"channel,omitempty"`
	// Source is "youtube" or "direct".
	Source string `json:"source,omitempty"`
}

// Merge returns s with every empty field taken from other.
func (s Song) Merge(other Song) Song {
	pick := func(a, b string) string {
		if a != "" {
			return a
		}
		return b
	}
	s.ID = pick(s.ID, other.ID)
	s.Title = pick(s.Title, other.Title)
	s.URL = pick(s.URL, other.URL)
	s.ThumbnailURL = pick(s.ThumbnailURL, other.ThumbnailURL)
	s.Channel = pick(s.Channel, other.Channel)
	s.Source = pick(s.Source, other.Source)
	if s.DurationMs == 0 {
		s.DurationMs = other.DurationMs
	}
	return s
}

// SongRequested starts an operation: a user asked for a song.
type SongRequested struct {
	// Query is what the user typed: a title, a URL or a video id.
	Query string `json:"query"`
	// Playlist asks for the playlist a watch URL's list= names to be
	// expanded, not the one video (POST /v1/operations {"playlist":true}).
	Playlist bool `json:"playlist,omitempty"`
	// Parent is the parent operation of a playlist's child.
	Parent string `json:"parent,omitempty"`
}

// VideoResolved says which song the query names.
type VideoResolved struct {
	Song Song `json:"song"`
}

// AudioDownloaded says the source audio is in the blob store under Key.
type AudioDownloaded struct {
	// Song carries what the download learnt of the song (title, duration…).
	Song Song `json:"song"`
	// Key is the blob key of the downloaded audio.
	Key string `json:"key"`
	// Size is the audio's size in bytes.
	Size int64 `json:"size"`
	// Ext is the container's file extension as yt-dlp reported it.
	Ext string `json:"ext,omitempty"`
	// Run is the download's run, announced by its audio.arriving, whose
	// chunks an encoder may have begun to encode; empty from a fetcher
	// that announces nothing.
	Run string `json:"run,omitempty"`
}

// DCAEncoded says the audio was encoded and the frames checked.
type DCAEncoded struct {
	// Frames is the number of 20 ms Opus frames in the DCA.
	Frames int64 `json:"frames"`
	// DurationMs is what the frames cover: Frames × 20 ms.
	DurationMs int64 `json:"duration_ms"`
	// SourceDurationMs is the source audio's duration as ffprobe read it.
	SourceDurationMs int64 `json:"source_duration_ms"`
	// BitrateKbps is the Opus bitrate the DCA was encoded at (for a
	// passthrough, the source's).
	BitrateKbps int `json:"bitrate_kbps"`
	// Mode is "passthrough" (the source's Opus packets copied) or
	// "transcode"; ModeReason says why. Empty in events of older encoders.
	Mode       string `json:"mode,omitempty"`
	ModeReason string `json:"mode_reason,omitempty"`
	// LoudnessLUFS is the DCA's integrated loudness (EBU R128) and
	// TruePeakDB its true peak (dBTP); absent when not measured or not
	// finite (silence).
	LoudnessLUFS *float64 `json:"loudness_lufs,omitempty"`
	TruePeakDB   *float64 `json:"true_peak_db,omitempty"`
	// LoudnessPending says the audio was not measured yet (a passthrough
	// copies its packets without decoding them; a dca.encoded rebuilt
	// from a stored DCA whose header has no loudness): a loudness.measured
	// follows, once the encoder has measured the stored DCA.
	LoudnessPending bool `json:"loudness_pending,omitempty"`
}

// UploadDone ends an operation successfully: a valid DCA is stored.
type UploadDone struct {
	Song Song `json:"song"`
	// Key is the DCA's blob key ("audio/<song_id>.dca").
	Key string `json:"key"`
	// Location is where the DCA lives, as a URL of its store
	// ("nats://objects/<bucket>/<key>" or "s3://<bucket>/<key>").
	Location string `json:"location"`
	// Size is the DCA's size in bytes.
	Size int64 `json:"size"`
	// Cached is true when the song was already stored and nothing was fetched.
	Cached bool `json:"cached,omitempty"`
}

// OperationFailed ends an operation unsuccessfully.
type OperationFailed struct {
	// Stage is the stage that failed: "resolve", "fetch", "encode".
	Stage string `json:"stage"`
	// Code is a machine-readable reason (see Code).
	Code Code `json:"code"`
	// Message says why, in words a user can act on.
	Message string `json:"message"`
	// Attempts is how many times the stage was tried.
	Attempts int `json:"attempts"`
}

func (SongRequested) Kind() Kind   { return KindSongRequested }
func (VideoResolved) Kind() Kind   { return KindVideoResolved }
func (AudioDownloaded) Kind() Kind { return KindAudioDownloaded }
func (DCAEncoded) Kind() Kind      { return KindDCAEncoded }
func (UploadDone) Kind() Kind      { return KindUploadDone }
func (OperationFailed) Kind() Kind { return KindOperationFailed }

func (SongRequested) Type() string   { return TypeSongRequested }
func (VideoResolved) Type() string   { return TypeVideoResolved }
func (AudioDownloaded) Type() string { return TypeAudioDownloaded }
func (DCAEncoded) Type() string      { return TypeDCAEncoded }
func (UploadDone) Type() string      { return TypeUploadDone }
func (OperationFailed) Type() string { return TypeOperationFailed }

// Envelope is the JSON form of every message on the stream.
type Envelope struct {
	// ID is unique per event and is also the message's Nats-Msg-Id, so the
	// stream drops a republished copy within its duplicate window.
	ID string `json:"id"`
	// Type is the versioned event type, e.g. TypeVideoResolved.
	Type        string `json:"type"`
	OperationID string `json:"operation_id"`
	// SongID is set once the song is known (from video.resolved on).
	SongID string          `json:"song_id,omitempty"`
	Time   time.Time       `json:"time"`
	Data   json.RawMessage `json:"data"`
	// Attempt is the delivery attempt (from 1) of the stage message whose
	// handling published this event; 0 (absent) for an event no stage
	// published, such as song.requested. A retried stage publishes the
	// same id again, and the stream keeps the first copy, so Attempt is the
	// attempt that first got the event stored. The recorder counts an
	// operation's attempts and failures from it (README, "Attempts").
	Attempt int `json:"attempt,omitempty"`
	// Cause is the id of the event whose handling published this one;
	// empty for an event no stage published (song.requested).
	Cause string `json:"cause,omitempty"`
	// Batch is how many events the handling of Cause publishes, this one
	// included. A stage that finds fewer than Batch events of a message in
	// the stream knows its handling was cut short between two publishes
	// and publishes the rest (package platform/runtime/stage).
	Batch int `json:"batch,omitempty"`
}

// Errors returned by Decode and Envelope.Event.
var (
	ErrMalformed   = errors.New("events: malformed envelope")
	ErrUnknownType = errors.New("events: unknown event type")
)

// New wraps ev in an envelope with a fresh random id.
func New(operationID, songID string, ev Event) (Envelope, error) {
	return NewWithID(NewID(), operationID, songID, ev)
}

// Next wraps ev, the consequence of parent, in an envelope whose id is
// derived from parent's id and ev's type. A handler that runs twice for the
// same parent therefore publishes the same id twice, and the stream keeps one.
func Next(parent Envelope, songID string, ev Event) (Envelope, error) {
	if songID == "" {
		songID = parent.SongID
	}
	return NewWithID(DeriveID(parent.ID, ev.Type()), parent.OperationID, songID, ev)
}

// NewWithID wraps ev in an envelope with the given id.
func NewWithID(id, operationID, songID string, ev Event) (Envelope, error) {
	if err := ValidOperationID(operationID); err != nil {
		return Envelope{}, err
	}
	data, err := json.Marshal(ev)
	if err != nil {
		return Envelope{}, fmt.Errorf("events: encode %s: %w", ev.Type(), err)
	}
	return Envelope{
		ID:          id,
		Type:        ev.Type(),
		OperationID: operationID,
		SongID:      songID,
		Time:        time.Now().UTC(),
		Data:        data,
	}, nil
}

// Subject is the subject the envelope is published on.
func (e Envelope) Subject() (string, error) {
	ev, err := e.Event()
	if err != nil {
		return "", err
	}
	return Subject(ev.Kind(), e.OperationID), nil
}

// Event decodes the envelope's data into the struct its type names.
// It fails with ErrUnknownType for a type this version does not know and
// with ErrMalformed for data that does not decode.
func (e Envelope) Event() (Event, error) {
	var ev Event
	switch e.Type {
	case TypeSongRequested:
		ev = &SongRequested{}
	case TypeVideoResolved:
		ev = &VideoResolved{}
	case TypeAudioDownloaded:
		ev = &AudioDownloaded{}
	case TypeDCAEncoded:
		ev = &DCAEncoded{}
	case TypeUploadDone:
		ev = &UploadDone{}
	case TypeOperationFailed:
		ev = &OperationFailed{}
	case TypeOperationCancelled:
		ev = &OperationCancelled{}
	case TypePlaylistResolved:
		ev = &PlaylistResolved{}
	case TypePlaylistEnded:
		ev = &PlaylistEnded{}
	case TypeAudioArriving:
		ev = &AudioArriving{}
	case TypeLoudnessMeasured:
		ev = &LoudnessMeasured{}
	default:
		return nil, fmt.Errorf("%w: %q", ErrUnknownType, e.Type)
	}
	if err := json.Unmarshal(e.Data, ev); err != nil {
		return nil, fmt.Errorf("%w: %s data: %v", ErrMalformed, e.Type, err)
	}
	// Hand back values, not pointers, so callers can switch on the type.
	switch v := ev.(type) {
	case *SongRequested:
		return *v, nil
	case *VideoResolved:
		return *v, nil
	case *AudioDownloaded:
		return *v, nil
	case *DCAEncoded:
		return *v, nil
	case *UploadDone:
		return *v, nil
	case *OperationFailed:
		return *v, nil
	case *OperationCancelled:
		return *v, nil
	case *PlaylistResolved:
		return *v, nil
	case *PlaylistEnded:
		return *v, nil
	case *AudioArriving:
		return *v, nil
	case *LoudnessMeasured:
		return *v, nil
	}
	panic("unreachable")
}

// Decode parses a message body into an envelope and its event. Any error
// wraps ErrMalformed or ErrUnknownType: such a message can never be handled
// and is to be terminated, not retried.
func Decode(body []byte) (Envelope, Event, error) {
	var env Envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return Envelope{}, nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if env.ID == "" || env.Type == "" || ValidOperationID(env.OperationID) != nil {
		return Envelope{}, nil, fmt.Errorf("%w: missing id, type or operation id", ErrMalformed)
	}
	ev, err := env.Event()
	if err != nil {
		return Envelope{}, nil, err
	}
	return env, ev, nil
}

// NewID returns a random 128-bit id in lower-case hex, suitable for event
// and operation ids.
func NewID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("events: crypto/rand: %v", err))
	}
	return hex.EncodeToString(b[:])
}

// DeriveID returns a stable id for the event of type typ caused by parent.
func DeriveID(parent, typ string) string {
	sum := sha256.Sum256([]byte(parent + "\x00" + typ))
	return hex.EncodeToString(sum[:16])
}

// MaxSongIDLen is the longest song id: the stores take keys of up to 128
// characters.
const MaxSongIDLen = 128

// ValidSongID reports whether id can name a song: 1 to MaxSongIDLen
// characters of [A-Za-z0-9_-], as the resolver makes them (a YouTube video
// id, or "url-" and a hash for a direct URL). Such an id is one subject
// token, one key in every store and one file name component: it has no
// '/', no '.', nothing a shell or a path would read specially. A client
// that builds a path from a song id a server sent checks it with this.
func ValidSongID(id string) error { return validID("song", id, MaxSongIDLen) }

// ValidOperationID reports whether id can name an operation: 1 to 64
// characters of [A-Za-z0-9_-], so that it is one subject token and one key
// in every store.
func ValidOperationID(id string) error { return validID("operation", id, 64) }

// validID is the rule of both ids: 1 to max characters of [A-Za-z0-9_-].
func validID(what, id string, max int) error {
	if len(id) == 0 || len(id) > max {
		return fmt.Errorf("%w: %s id must have 1 to %d characters", ErrMalformed, what, max)
	}
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
		default:
			return fmt.Errorf("%w: %s id may hold only letters, digits, '-' and '_'", ErrMalformed, what)
		}
	}
	return nil
}
