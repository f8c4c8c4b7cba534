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

	"github.com/butakero/butakero/platform/jsbucket"
	"github.com/butakero/butakero/platform/projection"
	"github.com/nats-io/nats.go/jetstream"
)

// Bucket names.
const (
	OperationsBucket = "operations"
	SongsBucket      = "songs"
)

// Store reads and writes projections. It is safe for concurrent use.
type Store struct {
	ops   jetstream.KeyValue
	songs jetstream.KeyValue
}

// Open creates the buckets if missing and returns a Store on them.
func Open(ctx context.Context, js jetstream.JetStream, replicas int) (*Store, error) {
	ops, err := openBucket(ctx, js, OperationsBucket, "Butakero operations projection", replicas, 0)
	if err != nil {
		return nil, err
	}
	songs, err := openBucket(ctx, js, SongsBucket, "Butakero song catalog projection", replicas, 0)
	if err != nil {
		return nil, err
	}
	return &Store{ops: ops, songs: songs}, nil
}

// openBucket creates (or updates) a file-stored bucket that keeps one
// value per key, whose values expire after ttl (0: never).
func openBucket(ctx context.Context, js jetstream.JetStream, name, desc string, replicas int, ttl time.Duration) (jetstream.KeyValue, error) {
	kv, err := jsbucket.KeyValue(ctx, js, jetstream.KeyValueConfig{
		Bucket:      name,
		Description: desc,
		History:     1,
		TTL:         ttl,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("kvstore: open bucket %s: %w", name, err)
	}
	return kv, nil
}

// Operation returns the operation with id, or projection.ErrNotFound.
func (s *Store) Operation(ctx context.Context, id string) (projection.Operation, error) {
	var op projection.Operation
	return op, get(ctx, s.ops, id, &op)
}

// PutOperation stores op under op.ID.
func (s *Store) PutOperation(ctx context.Context, op projection.Operation) error {
	return put(ctx, s.ops, op.ID, op)
}

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
	if !validKey(key) {
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
	if !validKey(key) {
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

// validKey accepts the ids Butakero makes: letters, digits, '-' and '_'.
func validKey(k string) bool {
	if k == "" || len(k) > 128 {
		return false
	}
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}
