// Package claims makes one operation at a time the owner of one song's
// work (its download and encode), so that simultaneous requests for the
// same new song share one download and one encode.
//
// A claim is one key per song id in the JetStream KV bucket "claims"; its
// value names the owner (an operation id) and the claim's state. The design
// in full:
//
//   - Acquire takes the claim with kv.Create, which is atomic across every
//     process of a cluster: of two operations racing for one song, one gets
//     it. An operation that already holds the claim gets it again (its own
//     message redelivered after a crash or a retry is the same owner), so
//     acquiring is re-entrant per operation id.
//   - The bucket's TTL (DefaultTTL, twice events.AckWait) removes a claim
//     that nobody refreshes, and its limit markers (nats-server 2.11+) tell
//     watchers when that happens. The owner refreshes the claim (Keep, every
//     third of the TTL) while a handler of its works on the song, so the
//     claim of a dead owner disappears within the TTL of its last refresh.
//   - Everyone else waits (Wait: a kv.Watch of the key, plus a re-read every
//     half TTL in case a marker is missed) until the claim is released,
//     expires, fails or changes hands, then looks again: the song may now be
//     stored, or the claim free for it to take over.
//   - The owner releases the claim (Release: a delete conditional on its
//     revision, so a stale owner never removes a newer owner's claim) once
//     the song is stored, or when its attempts run out. A permanent failure
//     (the source is missing, private, not audio…) is recorded instead (Fail)
//     so that the waiters fail the same way at once rather than each trying
//     again; the record expires with the TTL like any other.
//
// Between two stages (the download is done, the encode has not started) no
// handler refreshes the claim: it lives on for the TTL, which covers the
// usual gap. A longer gap only costs a second download, never a wrong
// result: writing a song's DCA twice stores the same file.
package claims

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/jsbucket"
	"github.com/nats-io/nats.go/jetstream"
)

// Bucket is the KV bucket holding the claims.
const Bucket = "claims"

// DefaultTTL is how long a claim lives after its last refresh: twice the
// stages' AckWait, so an owner that dies mid-stage loses its claim in about
// the time the server takes to hand its message to another process.
const DefaultTTL = 2 * events.AckWait

// MinTTL is the shortest TTL the bucket accepts (the server's limit for
// its markers).
const MinTTL = time.Second

// ErrLost is returned by a Claim's methods once the claim is no longer
// held by its owner: it expired, and another operation may have taken it.
var ErrLost = errors.New("claims: the claim is no longer held")

// State is what the owner of a claim is doing.
type State string

const (
	// StateWorking: the owner is fetching or encoding the song.
	StateWorking State = "working"
	// StateFailed: the owner failed for good; Record.Code and Message say
	// why. Waiters end with the same failure.
	StateFailed State = "failed"
)

// Record is a claim's value.
type Record struct {
	// Owner is the operation id that holds the claim.
	Owner string `json:"owner"`
	State State  `json:"state"`
	// Code and Message are the failure, for StateFailed.
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
	// Since is when the owner took the claim.
	Since time.Time `json:"since"`
}

// Store holds the claims. It is safe for concurrent use.
type Store struct {
	kv  jetstream.KeyValue
	ttl time.Duration
	// markers is false on a server without limit markers (before 2.11):
	// expiries are then only noticed by Wait's re-reads.
	markers bool
}

// Open creates the claims bucket if missing (or updates its settings) and
// returns a Store on it. ttl is how long a claim lives after its last
// refresh: 0 means DefaultTTL; less than MinTTL is an error.
func Open(ctx context.Context, js jetstream.JetStream, replicas int, ttl time.Duration) (*Store, error) {
	if ttl == 0 {
		ttl = DefaultTTL
	}
	if ttl < MinTTL {
		return nil, fmt.Errorf("claims: ttl %s is shorter than %s", ttl, MinTTL)
	}
	if replicas < 1 {
		replicas = 1
	}
	cfg := jetstream.KeyValueConfig{
		Bucket:         Bucket,
		Description:    "Butakero: which operation downloads and encodes each song",
		History:        1,
		TTL:            ttl,
		LimitMarkerTTL: ttl,
		Storage:        jetstream.FileStorage,
		Replicas:       replicas,
	}
	markers := true
	kv, err := jsbucket.KeyValue(ctx, js, cfg)
	if errors.Is(err, jetstream.ErrLimitMarkerTTLNotSupported) {
		cfg.LimitMarkerTTL, markers = 0, false
		kv, err = jsbucket.KeyValue(ctx, js, cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("claims: open bucket %s: %w", Bucket, err)
	}
	return &Store{kv: kv, ttl: ttl, markers: markers}, nil
}

// TTL is how long a claim lives after its last refresh.
func (s *Store) TTL() time.Duration { return s.ttl }

// Acquire takes the claim on song for the operation owner. It returns the
// held Claim when owner has it: the claim was free (or expired, or
// released), or owner held it already (a redelivery of its own message),
// in which case it is refreshed and its state set back to working.
// Otherwise the Claim is nil and the Record is the current holder's, to be
// passed to Wait or, for StateFailed, turned into the same failure.
func (s *Store) Acquire(ctx context.Context, song, owner string) (*Claim, Record, error) {
	if events.ValidSongID(song) != nil || owner == "" {
		return nil, Record{}, fmt.Errorf("claims: invalid song %q or owner %q", song, owner)
	}
	mine := Record{Owner: owner, State: StateWorking, Since: time.Now().UTC()}
	val, err := json.Marshal(mine)
	if err != nil {
		return nil, Record{}, fmt.Errorf("claims: encode: %w", err)
	}
	// Each pass either decides or lost a race that changed the key; a
	// handful of passes is plenty (the key changes at most a few times per
	// refresh period).
	for range 5 {
		e, err := jsbucket.Get(ctx, s.kv, song)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			rev, err := s.kv.Create(ctx, song, val)
			if errors.Is(err, jetstream.ErrKeyExists) {
				continue
			}
			if err != nil {
				return nil, Record{}, fmt.Errorf("claims: create %s: %w", song, err)
			}
			return &Claim{s: s, song: song, rec: mine, rev: rev}, Record{}, nil
		case err != nil:
			return nil, Record{}, fmt.Errorf("claims: get %s: %w", song, err)
		}
		var held Record
		if err := json.Unmarshal(e.Value(), &held); err != nil {
			return nil, Record{}, fmt.Errorf("claims: decode %s: %w", song, err)
		}
		if held.Owner != owner {
			return nil, held, nil
		}
		mine.Since = held.Since
		val, _ = json.Marshal(mine)
		rev, err := s.kv.Update(ctx, song, val, e.Revision())
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue
		}
		if err != nil {
			return nil, Record{}, fmt.Errorf("claims: refresh %s: %w", song, err)
		}
		return &Claim{s: s, song: song, rec: mine, rev: rev}, Record{}, nil
	}
	return nil, Record{}, fmt.Errorf("claims: %s keeps changing; try again", song)
}

// Wait blocks until the claim on song is no longer held as held (the
// Record Acquire returned): it was released, expired, marked failed or
// taken by another operation. The caller then looks again (is the song
// stored? can it take the claim?). Wait returns ctx.Err() when ctx ends
// first, and an error if the bucket cannot be watched.
func (s *Store) Wait(ctx context.Context, song string, held Record) error {
	if events.ValidSongID(song) != nil {
		return fmt.Errorf("claims: invalid song %q", song)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := s.kv.Watch(ctx, song)
	if err != nil {
		return fmt.Errorf("claims: watch %s: %w", song, err)
	}
	defer func() { _ = w.Stop() }()
	// The re-read covers a server without limit markers, and a watcher
	// that falls behind.
	recheck := time.NewTicker(s.ttl / 2)
	defer recheck.Stop()
	seen := false
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-recheck.C:
			e, err := s.kv.Get(ctx, song)
			if errors.Is(err, jetstream.ErrKeyNotFound) {
				return nil
			}
			if err == nil && changed(e, held) {
				return nil
			}
		case e, ok := <-w.Updates():
			if !ok {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return fmt.Errorf("claims: watch of %s ended", song)
			}
			if e == nil {
				// The initial values are done: no value means no claim.
				if !seen {
					return nil
				}
				continue
			}
			seen = true
			if changed(e, held) {
				return nil
			}
		}
	}
}

// changed reports whether entry e no longer shows the claim as held.
func changed(e jetstream.KeyValueEntry, held Record) bool {
	if op := e.Operation(); op == jetstream.KeyValueDelete || op == jetstream.KeyValuePurge {
		return true
	}
	var r Record
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return true
	}
	return r.Owner != held.Owner || r.State != held.State
}

// Claim is a claim its owner holds. Its methods are safe for concurrent
// use; each fails with ErrLost once the claim has been lost.
type Claim struct {
	s    *Store
	song string

	mu  sync.Mutex
	rec Record
	rev uint64
}

// Song is the song id the claim is on.
func (c *Claim) Song() string { return c.song }

// Refresh restarts the claim's TTL.
func (c *Claim) Refresh(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.write(ctx, c.rec)
}

// Keep refreshes the claim every third of the TTL until stop is called or
// ctx ends. stop returns the first refresh error, typically ErrLost (the
// owner was too slow or paused past the TTL and may have been taken over).
func (c *Claim) Keep(ctx context.Context) (stop func() error) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		t := time.NewTicker(c.s.ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				done <- nil
				return
			case <-t.C:
				// A refresh is not cut short by stop: an update the server
				// applied but the client gave up on would leave the claim
				// at a revision this handle does not know.
				rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), c.s.ttl/3)
				err := c.Refresh(rctx)
				rcancel()
				if err != nil && ctx.Err() == nil {
					done <- err
					return
				}
			}
		}
	}()
	return func() error { cancel(); return <-done }
}

// Release gives the claim up: waiters look again. Releasing a claim
// already lost (another owner has it now) changes nothing and returns
// ErrLost.
func (c *Claim) Release(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	err := c.s.kv.Delete(ctx, c.song, jetstream.LastRevision(c.rev))
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) && c.resync(ctx) {
		err = c.s.kv.Delete(ctx, c.song, jetstream.LastRevision(c.rev))
	}
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return ErrLost
	}
	if err != nil {
		return fmt.Errorf("claims: release %s: %w", c.song, err)
	}
	return nil
}

// Fail records that the owner failed for good with code and message: the
// waiters end with that failure instead of trying again. The record
// expires with the TTL, after which a new request tries afresh.
func (c *Claim) Fail(ctx context.Context, code, message string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.rec
	r.State, r.Code, r.Message = StateFailed, code, message
	if err := c.write(ctx, r); err != nil {
		return err
	}
	c.rec = r
	return nil
}

// write stores r as the claim's value if the claim is still at c.rev.
// Called with c.mu held.
func (c *Claim) write(ctx context.Context, r Record) error {
	val, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("claims: encode: %w", err)
	}
	rev, err := c.s.kv.Update(ctx, c.song, val, c.rev)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) && c.resync(ctx) {
		rev, err = c.s.kv.Update(ctx, c.song, val, c.rev)
	}
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return ErrLost
	}
	if err != nil {
		return fmt.Errorf("claims: update %s: %w", c.song, err)
	}
	c.rev = rev
	return nil
}

// resync adopts the claim's current revision when the claim is still the
// owner's: an earlier write of this handle reached the server after the
// client gave up on it, or the owner's own redelivery acquired it again
// (both are the same operation). Called with c.mu held.
func (c *Claim) resync(ctx context.Context) bool {
	e, err := c.s.kv.Get(ctx, c.song)
	if err != nil {
		return false
	}
	var r Record
	if json.Unmarshal(e.Value(), &r) != nil || r.Owner != c.rec.Owner {
		return false
	}
	c.rev = e.Revision()
	return true
}
