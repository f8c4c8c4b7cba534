// Package kvstore keeps the operation and song projections in JetStream
// key-value buckets: the embedded default, which also works against a NATS
// cluster shared by many processes.
package kvstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/projection"
	"github.com/butakero/butakero/platform/runtime/jsbucket"
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
	return &Store{js: js, ops: ops, songs: songs, opsTTL: o.OperationTTL, now: o.Now}, nil
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
	var op projection.Operation
	return op, get(ctx, s.ops, id, &op)
}

// PutOperation stores op under op.ID. A finished operation expires
// OperationTTL after its last event (op.UpdatedAt; the write's time when
// that does not parse), at least a second from now.
func (s *Store) PutOperation(ctx context.Context, op projection.Operation) error {
	if !op.Final() {
		return put(ctx, s.ops, op.ID, op)
	}
	if events.ValidSongID(op.ID) != nil {
		return fmt.Errorf("kvstore: invalid key %q", op.ID)
	}
	body, err := json.Marshal(op)
	if err != nil {
		return fmt.Errorf("kvstore: encode %s/%s: %w", OperationsBucket, op.ID, err)
	}
	now := s.now()
	end := now
	if t, err := time.Parse(time.RFC3339Nano, op.UpdatedAt); err == nil {
		end = t
	}
	ttl := max(end.Add(s.opsTTL).Sub(now), minKeyTTL)
	// kv.Put takes no TTL (only Create does): this is the same write, a
	// message on the key's subject, with the Nats-TTL header.
	msg := &nats.Msg{Subject: keySubject(OperationsBucket, op.ID), Data: body}
	if _, err := s.js.PublishMsg(ctx, msg, jetstream.WithMsgTTL(ttl)); err != nil {
		return fmt.Errorf("kvstore: put %s/%s: %w", OperationsBucket, op.ID, err)
	}
	return nil
}

// keySubject is the subject that holds key in bucket: JetStream KV's own
// naming ($KV.<bucket>.<key>, ADR-8), which kv.Put publishes to.
func keySubject(bucket, key string) string { return "$KV." + bucket + "." + key }

// Song returns the song with id, or projection.ErrNotFound.
func (s *Store) Song(ctx context.Context, id string) (projection.Song, error) {
	var song projection.Song
	return song, get(ctx, s.songs, id, &song)
}

// PutSong stores song under song.ID.
func (s *Store) PutSong(ctx context.Context, song projection.Song) error {
	return put(ctx, s.songs, song.ID, song)
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
	e, err := kv.Get(ctx, key)
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
