package gateway

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/projection"
)

// live is the state of the operations this gateway has seen start, folded
// from the hub's one subscription to the stream by the recorder's rules
// (projection.Apply): a status read of such an operation needs no
// projection store read (see current), and never waits for the recorder.
//
// Only an operation whose song.requested the hub delivered is held (the
// hub starts at the stream's end, so an operation older than the gateway
// is read from the store and the stream, as before). Its later events come
// through the same ordered consumer, in stream order, so the fold is the
// recorder's own record. A finished operation is kept liveKeep after its
// end, long past the recorder's lag, then left to the projection; at most
// maxLive are held. Methods are safe for concurrent use.
type live struct {
	mu    sync.Mutex
	ops   map[string]projection.Operation
	ended []ended // finished operations, oldest first
	now   func() time.Time
	// stored holds the songs whose upload.done the hub delivered, in two
	// generations: once the newer holds maxStored, it becomes the older
	// and the oldest is dropped, so the songs seen last stay known.
	stored, storedBefore map[string]struct{}
	// ending holds, by operation, the channels awaitEnd handed out, to
	// close once the operation's end is folded.
	ending map[string][]chan struct{}
}

// maxStored bounds one generation of the stored songs: about 100 bytes
// each.
const maxStored = 50_000

type ended struct {
	id string
	at time.Time
}

// liveKeep is how long a finished operation is answered from the hub.
const liveKeep = 2 * time.Minute

// maxLive bounds the operations held: about 0.5 KiB each.
const maxLive = 100_000

func newLive() *live {
	return &live{ops: map[string]projection.Operation{}, now: time.Now, stored: map[string]struct{}{}}
}

// apply folds one event of the stream, at sequence seq, into its operation.
func (l *live) apply(data []byte, seq uint64, at time.Time) {
	env, ev, err := events.Decode(data)
	if err != nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if done, ok := ev.(events.UploadDone); ok {
		l.markStored(cmp.Or(done.Song.ID, env.SongID))
	}
	op, ok := l.ops[env.OperationID]
	if _, start := ev.(events.SongRequested); !ok && !start {
		return
	}
	if !ok && len(l.ops) >= maxLive {
		return
	}
	wasFinal := op.Final()
	op, _ = projection.Apply(op, projection.Song{}, env, ev, seq, at)
	l.ops[env.OperationID] = op
	now := l.now()
	if op.Final() && !wasFinal {
		l.ended = append(l.ended, ended{id: env.OperationID, at: now})
		for _, ch := range l.ending[env.OperationID] {
			close(ch)
		}
		delete(l.ending, env.OperationID)
	}
	for len(l.ended) > 0 && now.Sub(l.ended[0].at) > liveKeep {
		delete(l.ops, l.ended[0].id)
		l.ended = l.ended[1:]
	}
}

// get returns the operation with id if this gateway holds it.
func (l *live) get(id string) (projection.Operation, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	op, ok := l.ops[id]
	return op, ok
}

// awaitEnd returns a channel closed once the end of the operation with id
// is folded (at once if it is already, or if the operation is not held and
// maxLive are: it will never be), and the function that lets the channel
// go, to call once done waiting. An operation the hub never delivers the
// start of is never folded either: its channel stays open.
func (l *live) awaitEnd(id string) (<-chan struct{}, func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ch := make(chan struct{})
	op, held := l.ops[id]
	if held && op.Final() || !held && len(l.ops) >= maxLive {
		close(ch)
		return ch, func() {}
	}
	if l.ending == nil {
		l.ending = map[string][]chan struct{}{}
	}
	l.ending[id] = append(l.ending[id], ch)
	return ch, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		waiting := slices.DeleteFunc(l.ending[id], func(c chan struct{}) bool { return c == ch })
		if len(waiting) == 0 {
			delete(l.ending, id)
		} else {
			l.ending[id] = waiting
		}
	}
}

// markStored notes song as stored; l.mu is held.
func (l *live) markStored(song string) {
	if song == "" {
		return
	}
	if len(l.stored) >= maxStored {
		l.storedBefore, l.stored = l.stored, map[string]struct{}{}
	}
	l.stored[song] = struct{}{}
}

// isStored reports whether the hub saw song's upload.done lately: a new
// operation for it is then answered from the stored DCA, and its POST
// waits a moment for that (request).
func (l *live) isStored(song string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.stored[song]
	if !ok {
		_, ok = l.storedBefore[song]
	}
	return ok
}
