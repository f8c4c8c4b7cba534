package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/jsbucket"
	"github.com/nats-io/nats.go/jetstream"
)

// IdempotencyBucket is the JetStream KV bucket of Idempotency-Key records.
const IdempotencyBucket = "idempotency"

// IdempotencyTTL is how long an Idempotency-Key is remembered: a request
// with the same key (and the same caller) within it gets the original
// operation.
const IdempotencyTTL = 24 * time.Hour

// maxIdempotencyKey bounds the header's length.
const maxIdempotencyKey = 255

// HeaderIdempotencyKey names the request header; HeaderReplayed marks an
// answer that repeats an earlier request's.
const (
	HeaderIdempotencyKey = "Idempotency-Key"
	HeaderReplayed       = "Idempotent-Replayed"
)

// openIdempotency creates (or updates) the idempotency bucket. Its entries
// expire after IdempotencyTTL.
func openIdempotency(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.KeyValue, error) {
	kv, err := jsbucket.KeyValue(ctx, js, jetstream.KeyValueConfig{
		Bucket:      IdempotencyBucket,
		Description: "Butakero Idempotency-Key records of the gateway",
		History:     1,
		TTL:         IdempotencyTTL,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("gateway: open bucket %s: %w", IdempotencyBucket, err)
	}
	return kv, nil
}

// idemRecord is what a key remembers: the operation it started and what
// was asked, so a reuse for another request is told apart from a retry.
type idemRecord struct {
	OperationID string `json:"operation_id"`
	Fingerprint string `json:"fingerprint"`
	Query       string `json:"query"`
	// Playlist is the request's "playlist" flag (expand a watch URL's
	// list=), which a replay publishes again with the query.
	Playlist bool      `json:"playlist,omitempty"`
	Created  time.Time `json:"created"`
}

// validIdempotencyKey accepts 1 to 255 printable ASCII characters.
func validIdempotencyKey(k string) bool {
	if k == "" || len(k) > maxIdempotencyKey {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// claim returns the record of an Idempotency-Key: a new one, with a fresh
// operation id, that this request now owns (fresh is true), or the one an
// earlier request with the same key and caller made. A key reused for a
// different request (another route, query or playlist flag) is
// CodeIdempotencyMismatch.
//
// The record is written with a create-if-absent, so of concurrent requests
// with one key exactly one owns it; the others replay its operation. The
// owner publishes song.requested with an id derived from the operation id,
// and a replay that finds no song.requested in the stream (the owner is
// still publishing, or crashed) publishes the same envelope: the stream
// keeps one.
func (s *server) claim(ctx context.Context, scope, key, route, query string, playlist bool) (idemRecord, bool, error) {
	sum := sha256.Sum256([]byte(scope + "\x00" + key))
	kvKey := hex.EncodeToString(sum[:])
	// The flag is in the fingerprint only when set, so that the records
	// of plain requests made before it was keep their fingerprints.
	what := route + "\x00" + query
	if playlist {
		what += "\x00playlist"
	}
	fp := sha256.Sum256([]byte(what))
	rec := idemRecord{
		OperationID: events.NewID(),
		Fingerprint: hex.EncodeToString(fp[:]),
		Query:       query,
		Playlist:    playlist,
		Created:     time.Now().UTC(),
	}
	body, err := json.Marshal(rec)
	if err != nil {
		return idemRecord{}, false, fmt.Errorf("encode idempotency record: %w", err)
	}
	// Twice at most: a record that expires between Create and Get is gone,
	// and the second Create takes the key.
	for range 2 {
		_, err := s.idem.Create(ctx, kvKey, body)
		if err == nil {
			return rec, true, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return idemRecord{}, false, fmt.Errorf("create idempotency record: %w", err)
		}
		e, err := jsbucket.Get(ctx, s.idem, kvKey)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return idemRecord{}, false, fmt.Errorf("read idempotency record: %w", err)
		}
		var old idemRecord
		if err := json.Unmarshal(e.Value(), &old); err != nil {
			return idemRecord{}, false, fmt.Errorf("decode idempotency record: %w", err)
		}
		if old.Fingerprint != rec.Fingerprint {
			return idemRecord{}, false, errorf(CodeIdempotencyMismatch,
				"this Idempotency-Key was used for a different request in the last 24 hours")
		}
		return old, false, nil
	}
	return idemRecord{}, false, errors.New("idempotency record vanished twice")
}

// idempotencyScope is the part of the caller that scopes its keys: its API
// key when keys are configured, else nothing (one scope for everybody).
func idempotencyScope(client string) string {
	if strings.HasPrefix(client, "key:") {
		return client
	}
	return ""
}
