// Package kvstore keeps the operation and song projections in JetStream
// key-value buckets: the embedded default, which also works against a NATS
// cluster shared by many processes.
package kvstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/jsbucket"
	"github.com/butakero/butakero/platform/projection"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Bucket names.
const (
	OperationsBucket = "operations"
	SongsBucket      = "songs"
)

// DefaultOperationTTL is how long a finished operation is kept when
// Options.OperationTTL is zero: OPERATION_TTL's default, as in dynamostore.
const DefaultOperationTTL = 30 * 24 * time.Hour

// expiryMarkerTTL is how long the operations bucket keeps the marker that
// JetStream leaves when a key's TTL runs out (a watcher sees it as a
// purge). Setting it is also what turns per-message TTLs on for the bucket.
const expiryMarkerTTL = time.Minute

// minKeyTTL is the shortest per-key TTL JetStream takes: an operation that
// finished longer than its TTL ago (a replay of an old history) is written
// with it and is gone a second later.
const minKeyTTL = time.Second

// Options configure a Store.
type Options struct {
	// Replicas of the buckets (STREAM_REPLICAS); 0 means 1.
	Replicas int
	// OperationTTL is how long a finished operation's entry is kept after
	// its last event (OPERATION_TTL); zero means DefaultOperationTTL. An
	// operation in progress never expires.
	OperationTTL time.Duration
	// Now is the clock for TTLs; nil means time.Now.
	Now func() time.Time
}

// Store reads and writes projections. It is safe for concurrent use.
//
// A finished operation is written with a per-key TTL (JetStream's Nats-TTL
// header): it expires OperationTTL after its last event, as a DynamoDB
// item does, while every operation in progress and every song stays. The
// operations bucket therefore allows per-message TTLs (with an expiry
// marker); it has no bucket-wide MaxAge.
type Store struct {
	js     jetstream.JetStream
	ops    jetstream.KeyValue
	songs  jetstream.KeyValue
	opsTTL time.Duration
	now    func() time.Time

	// The revisions of the records this Store last read or wrote, so
	// that a conditional write over one of them (PutOperationIf,
	// PutSongIf) is one revision-checked write with no read first. A
	// revision another writer moved on fails the check, and is read.
	revMu    sync.Mutex
	opRevs   map[string]revOf[projection.Operation]
	songRevs map[string]revOf[projection.Song]
}

// revOf is a record and the revision of its entry.
type revOf[T any] struct {
	rec T
	rev uint64
}

// maxRevs bounds the revisions held of each kind; past it they are all
// let go, and read again when needed.
const maxRevs = 16384

func remember[T any](s *Store, m map[string]revOf[T], key string, rec T, rev uint64) {
	s.revMu.Lock()
	defer s.revMu.Unlock()
	if len(m) >= maxRevs {
		clear(m)
	}
	m[key] = revOf[T]{rec: rec, rev: rev}
}

func recall[T any](s *Store, m map[string]revOf[T], key string) (revOf[T], bool) {
	s.revMu.Lock()
	defer s.revMu.Unlock()
	r, ok := m[key]
	return r, ok
}

func forget[T any](s *Store, m map[string]revOf[T], key string) {
	s.revMu.Lock()
	defer s.revMu.Unlock()
	delete(m, key)
}

// Open is New with the default OperationTTL.
func Open(ctx context.Context, js jetstream.JetStream, replicas int) (*Store, error) {
	return New(ctx, js, Options{Replicas: replicas})
}

// New creates the buckets if missing, or updates them to the current
// definition (an operations bucket made before per-key TTLs gets them),
// and returns a Store on them.
func New(ctx context.Context, js jetstream.JetStream, o Options) (*Store, error) {
	if o.OperationTTL <= 0 {
		o.OperationTTL = DefaultOperationTTL
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	ops, err := openBucket(ctx, js, jetstream.KeyValueConfig{Bucket: OperationsBucket, Description: "Butakero operations projection",
		Replicas: o.Replicas, LimitMarkerTTL: expiryMarkerTTL})
	if err != nil {
		return nil, err
	}
	songs, err := openBucket(ctx, js, jetstream.KeyValueConfig{Bucket: SongsBucket, Description: "Butakero song catalog projection",
		Replicas: o.Replicas})
	if err != nil {
		return nil, err
	}
	return &Store{js: js, ops: ops, songs: songs, opsTTL: o.OperationTTL, now: o.Now,
		opRevs: map[string]revOf[projection.Operation]{}, songRevs: map[string]revOf[projection.Song]{}}, nil
}

// openBucket creates (or updates) the file-stored bucket cfg names, which
// keeps one value per key; cfg gives the name, description, replicas
// and, where needed, the TTL (bucket-wide) and the expiry marker (per
// key).
func openBucket(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	cfg.History = 1
	cfg.Storage = jetstream.FileStorage
	cfg.Replicas = max(cfg.Replicas, 1)
	kv, err := jsbucket.KeyValue(ctx, js, cfg)
	if err != nil {
		return nil, fmt.Errorf("kvstore: open bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// Operation returns the operation with id, or projection.ErrNotFound.
func (s *Store) Operation(ctx context.Context, id string) (projection.Operation, error) {
	return getRecord(ctx, s, s.ops, s.opRevs, id, events.ValidOperationID)
}

// PutOperation stores op under op.ID. A finished operation expires
// OperationTTL after its last event (op.UpdatedAt; the write's time when
// that does not parse), at least a second from now.
func (s *Store) PutOperation(ctx context.Context, op projection.Operation) error {
	forget(s, s.opRevs, op.ID)
	_, err := s.putOperation(ctx, op)
	return err
}

// PutOperationIf stores op as PutOperation does, but only if the stored
// operation is still prev (by LastSeq; a zero prev: none is stored),
// checked by the entry's revision. It reports whether it stored op; false
// means another writer got there first, and the caller reads again.
//
// Over a record this Store read or wrote last (the recorder's case) it is
// one write, checked by the revision remembered; over a new operation
// (a zero prev) one write that expects the key never written. Otherwise
// the entry is read first.
func (s *Store) PutOperationIf(ctx context.Context, op, prev projection.Operation) (bool, error) {
	if events.ValidOperationID(op.ID) != nil {
		return false, fmt.Errorf("kvstore: invalid key %q", op.ID)
	}
	known, ok := recall(s, s.opRevs, op.ID)
	switch {
	case ok && known.rec.LastSeq == prev.LastSeq:
		return s.putOperationAt(ctx, op, known.rev)
	case prev.LastSeq == 0:
		stored, err := s.putOperationAt(ctx, op, 0)
		if stored || err != nil {
			return stored, err
		}
		// The key has an entry, or only the marker of one expired or
		// deleted: read which.
	}
	var have projection.Operation
	rev, err := getRev(ctx, s.ops, op.ID, &have)
	if err != nil {
		return false, err
	}
	if have.LastSeq != prev.LastSeq {
		forget(s, s.opRevs, op.ID)
		return false, nil
	}
	if rev == 0 {
		// A key that holds only a marker (an operation expired or
		// deleted) has no revision to check: the write is not checked,
		// since an operation's events are applied by one lane, one at a
		// time.
		rev, err := s.putOperation(ctx, op)
		if err != nil {
			return false, err
		}
		remember(s, s.opRevs, op.ID, op, rev)
		return true, nil
	}
	return s.putOperationAt(ctx, op, rev)
}

// putOperationAt stores op if its key's last revision is rev (0: the key
// was never written), and remembers the new revision.
func (s *Store) putOperationAt(ctx context.Context, op projection.Operation, rev uint64) (bool, error) {
	next, err := s.putOperation(ctx, op, jetstream.WithExpectLastSequencePerSubject(rev))
	if conflict(err) {
		forget(s, s.opRevs, op.ID)
		return false, nil
	}
	if err != nil {
		return false, err
	}
	remember(s, s.opRevs, op.ID, op, next)
	return true, nil
}

// putOperation writes op and returns its entry's revision.
func (s *Store) putOperation(ctx context.Context, op projection.Operation, opts ...jetstream.PublishOpt) (uint64, error) {
	if events.ValidOperationID(op.ID) != nil {
		return 0, fmt.Errorf("kvstore: invalid key %q", op.ID)
	}
	body, err := json.Marshal(op)
	if err != nil {
		return 0, fmt.Errorf("kvstore: encode %s/%s: %w", OperationsBucket, op.ID, err)
	}
	if op.Final() {
		now := s.now()
		end := now
		if t, err := time.Parse(time.RFC3339Nano, op.UpdatedAt); err == nil {
			end = t
		}
		ttl := max(end.Add(s.opsTTL).Sub(now), minKeyTTL)
		opts = append(opts, jetstream.WithMsgTTL(ttl))
	}
	// kv.Put takes no TTL (only Create does) and kv.Update no TTL either:
	// this is the same write, a message on the key's subject, with the
	// Nats-TTL header and the expected revision.
	msg := &nats.Msg{Subject: keySubject(OperationsBucket, op.ID), Data: body}
	ack, err := s.js.PublishMsg(ctx, msg, opts...)
	if err != nil {
		if conflict(err) {
			return 0, err
		}
		return 0, fmt.Errorf("kvstore: put %s/%s: %w", OperationsBucket, op.ID, err)
	}
	return ack.Sequence, nil
}

// conflict reports whether err is a revision check that failed.
func conflict(err error) bool {
	var api *jetstream.APIError
	if errors.As(err, &api) {
		return api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
	}
	return errors.Is(err, jetstream.ErrKeyExists)
}

// keySubject is the subject that holds key in bucket: JetStream KV's own
// naming ($KV.<bucket>.<key>, ADR-8), which kv.Put publishes to.
func keySubject(bucket, key string) string { return "$KV." + bucket + "." + key }

// Song returns the song with id, or projection.ErrNotFound.
func (s *Store) Song(ctx context.Context, id string) (projection.Song, error) {
	return getRecord(ctx, s, s.songs, s.songRevs, id, events.ValidSongID)
}

// PutSong stores song under song.ID.
func (s *Store) PutSong(ctx context.Context, song projection.Song) error {
	forget(s, s.songRevs, song.ID)
	return put(ctx, s.songs, song.ID, song)
}

// PutSongIf stores song only if the stored song is still prev (a zero
// prev: none is stored), checked by the entry's revision. It reports
// whether it stored song; false means another writer got there first.
//
// Like PutOperationIf it is one write over a record this Store read or
// wrote last, and over a new song (a zero prev: a create).
func (s *Store) PutSongIf(ctx context.Context, song, prev projection.Song) (bool, error) {
	if events.ValidSongID(song.ID) != nil {
		return false, fmt.Errorf("kvstore: invalid key %q", song.ID)
	}
	var rev uint64
	known, ok := recall(s, s.songRevs, song.ID)
	switch {
	case ok && known.rec.Equal(prev):
		rev = known.rev
	case prev.Equal(projection.Song{}):
		// A create: it fails on a key that has an entry.
	default:
		var have projection.Song
		var err error
		if rev, err = getRev(ctx, s.songs, song.ID, &have); err != nil {
			return false, err
		}
		if !have.Equal(prev) {
			forget(s, s.songRevs, song.ID)
			return false, nil
		}
	}
	body, err := json.Marshal(song)
	if err != nil {
		return false, fmt.Errorf("kvstore: encode %s/%s: %w", SongsBucket, song.ID, err)
	}
	var next uint64
	if rev == 0 {
		next, err = s.songs.Create(ctx, song.ID, body)
	} else {
		next, err = s.songs.Update(ctx, song.ID, body, rev)
	}
	if conflict(err) {
		forget(s, s.songRevs, song.ID)
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("kvstore: put %s/%s: %w", SongsBucket, song.ID, err)
	}
	remember(s, s.songRevs, song.ID, song, next)
	return true, nil
}

// Ping checks that both buckets answer.
func (s *Store) Ping(ctx context.Context) error {
	if _, err := s.ops.Status(ctx); err != nil {
		return fmt.Errorf("kvstore: %s: %w", OperationsBucket, err)
	}
	if _, err := s.songs.Status(ctx); err != nil {
		return fmt.Errorf("kvstore: %s: %w", SongsBucket, err)
	}
	return nil
}

func get(ctx context.Context, kv jetstream.KeyValue, key string, v any) error {
	if events.ValidSongID(key) != nil {
		return projection.ErrNotFound
	}
	e, err := jsbucket.Get(ctx, kv, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return projection.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("kvstore: get %s/%s: %w", kv.Bucket(), key, err)
	}
	if err := json.Unmarshal(e.Value(), v); err != nil {
		return fmt.Errorf("kvstore: decode %s/%s: %w", kv.Bucket(), key, err)
	}
	return nil
}

// getRecord reads the record under id from kv (an id valid rejects is
// one it does not hold: projection.ErrNotFound) and remembers its
// revision in revs, for a conditional write over it.
func getRecord[T any](ctx context.Context, s *Store, kv jetstream.KeyValue, revs map[string]revOf[T], id string, valid func(string) error) (T, error) {
	var rec T
	if valid(id) != nil {
		return rec, projection.ErrNotFound
	}
	rev, err := getRev(ctx, kv, id, &rec)
	if err != nil {
		return rec, err
	}
	if rev == 0 {
		return rec, projection.ErrNotFound
	}
	remember(s, revs, id, rec, rev)
	return rec, nil
}

// getRev reads key into v and returns its revision: 0, v untouched, for a
// key that is missing or deleted.
func getRev(ctx context.Context, kv jetstream.KeyValue, key string, v any) (uint64, error) {
	if events.ValidSongID(key) != nil {
		return 0, fmt.Errorf("kvstore: invalid key %q", key)
	}
	e, err := jsbucket.Get(ctx, kv, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("kvstore: get %s/%s: %w", kv.Bucket(), key, err)
	}
	if err := json.Unmarshal(e.Value(), v); err != nil {
		return 0, fmt.Errorf("kvstore: decode %s/%s: %w", kv.Bucket(), key, err)
	}
	return e.Revision(), nil
}

func put(ctx context.Context, kv jetstream.KeyValue, key string, v any) error {
	if events.ValidSongID(key) != nil {
		return fmt.Errorf("kvstore: invalid key %q", key)
	}
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("kvstore: encode %s/%s: %w", kv.Bucket(), key, err)
	}
	if _, err := kv.Put(ctx, key, body); err != nil {
		return fmt.Errorf("kvstore: put %s/%s: %w", kv.Bucket(), key, err)
	}
	return nil
}
