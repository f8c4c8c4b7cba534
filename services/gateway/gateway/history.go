package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/projection"
	"github.com/nats-io/nats.go/jetstream"
)

// eventFrame is one event as the v1 API shows it, in GET
// /v1/operations/{id} and on the WebSocket: the envelope with its kind and
// stream sequence. Type is the versioned type ("butakero.upload.done.v1");
// Kind is its unversioned name ("upload.done"). Unknown (newer) types are
// passed through as they are.
type eventFrame struct {
	Type        string          `json:"type"`
	Kind        string          `json:"kind"`
	ID          string          `json:"id"`
	OperationID string          `json:"operation_id"`
	SongID      string          `json:"song_id"`
	Time        time.Time       `json:"time"`
	Seq         uint64          `json:"seq"`
	Data        json.RawMessage `json:"data"`
}

// final reports whether the event ends its operation.
func (f eventFrame) final() bool { return events.IsFinal(events.Kind(f.Kind)) }

// frameOf builds the frame of a stream message.
func frameOf(subject string, data []byte, seq uint64) (eventFrame, error) {
	kind, _, ok := events.KindOf(subject)
	if !ok {
		return eventFrame{}, fmt.Errorf("subject %q is not an event subject", subject)
	}
	var env events.Envelope
	if err := json.Unmarshal(data, &env); err != nil {
		return eventFrame{}, fmt.Errorf("decode envelope on %s: %w", subject, err)
	}
	if env.ID == "" || env.Type == "" || env.OperationID == "" {
		return eventFrame{}, fmt.Errorf("envelope on %s lacks id, type or operation id", subject)
	}
	if len(env.Data) == 0 {
		env.Data = json.RawMessage("{}")
	}
	return eventFrame{
		Type: env.Type, Kind: string(kind), ID: env.ID, OperationID: env.OperationID,
		SongID: env.SongID, Time: env.Time, Seq: seq, Data: env.Data,
	}, nil
}

// maxHistory bounds the events read for one operation; a pipeline run has
// about six.
const maxHistory = 256

// errNoHistory is history's answer for an operation the stream does not
// know.
var errNoHistory = errors.New("no such operation in the stream")

// streamEvent is one event of an operation's history: the frame the API
// shows, and the decoded event with the stream's timestamp, which the
// projection rules read.
type streamEvent struct {
	frame eventFrame
	env   events.Envelope
	ev    events.Event // nil for a type this version does not know
	at    time.Time
}

// history reads an operation's events from the stream in order: from
// stream sequence from on, or the whole history from its song.requested
// when from is 0. An operation without song.requested is errNoHistory.
// Undecodable messages are skipped and logged.
//
// It asks the stream leader for the last message on "*.*.<id>" (one
// request: the stream has nothing newer for this operation when that is
// before from) and then for the messages up to it (readHistory: one
// request each for the first few, then one ephemeral consumer filtered on
// that subject for the rest of a long history, until it has delivered
// that last message). The consumer may sit on a replica that lags behind
// the leader; waiting for the leader's last sequence makes the answer hold
// every event stored before the read began (a socket that subscribed to
// the hub first misses none). Direct gets, which take a batch in one
// request, would need AllowDirect on the event stream, and that would
// turn every service's GetMsg on it (the stage's check for what a
// redelivered message already caused, the cancel check) into reads from
// replicas that may lag.
func (s *server) history(ctx context.Context, opID string, from uint64) ([]streamEvent, error) {
	stream, err := s.eventStream(ctx)
	if err != nil {
		return nil, err
	}
	filter := events.OperationSubjects(opID)
	last, err := stream.GetLastMsgForSubject(ctx, filter)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound) && from == 0:
		return nil, errNoHistory
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("read the history of %s: %w", opID, err)
	}
	if last.Sequence < from {
		return nil, nil
	}
	var out []streamEvent
	add := func(subject string, data []byte, seq uint64, at time.Time) {
		f, err := frameOf(subject, data, seq)
		if err != nil {
			s.log.Warn("skipping an undecodable event in the history", "operation_id", opID, "seq", seq, "error", err)
			return
		}
		if events.IsAnnouncement(events.Kind(f.Kind)) {
			// The encoder's business, not a step clients follow.
			return
		}
		e := streamEvent{frame: f, at: at}
		e.env, e.ev, _ = events.Decode(data)
		out = append(out, e)
	}
	if last.Sequence == from {
		add(last.Subject, last.Data, last.Sequence, last.Time)
		return out, nil
	}
	if err := s.readHistory(ctx, stream, opID, filter, from, last.Sequence, add); err != nil {
		return nil, fmt.Errorf("read the history of %s: %w", opID, err)
	}
	if from != 0 {
		return out, nil
	}
	// The whole history starts at the operation's (last) song.requested.
	for i := len(out) - 1; i >= 0; i-- {
		if events.Kind(out[i].frame.Kind) == events.KindSongRequested {
			return out[i:], nil
		}
	}
	return nil, errNoHistory
}

// directReads is how many messages a history read asks the stream's
// leader for one at a time (the next message on the operation's subjects)
// before it reads the rest through a consumer: a status read's tail is
// one or two events and a whole run about six, so a read usually creates
// no consumer at all.
const directReads = 8

// historyConsumerIdle is how long the server keeps a history read's
// consumer after its last pull when the read could not delete it; it
// deletes it then.
const historyConsumerIdle = 5 * time.Second

// historyConsumerDelete bounds the deletion of a history read's consumer
// (a request to the meta leader on a cluster), which the read waits for.
const historyConsumerDelete = 5 * time.Second

// readHistory passes add the messages of operation opID on filter from
// stream sequence from (the first one when from is 0) through to, in
// order, at most maxHistory of them.
//
// The first directReads are asked of the stream's leader one at a time,
// each the next message on filter (no consumer: nats-server keeps at most
// 1,000 consumers on a stream, and a consumer per read made them pile up
// under a few hundred status polls a second). What remains of a longer
// history is read through one ephemeral consumer: its creation and one
// pull when its replica holds them all, more pulls while that replica
// catches up to to. It is AckNone, in memory, one replica, and deleted
// once read (or by the server once idle, if the deletion fails).
func (s *server) readHistory(ctx context.Context, stream jetstream.Stream, opID, filter string, from, to uint64, add func(subject string, data []byte, seq uint64, at time.Time)) error {
	seq, n := max(from, 1), 0
	for ; n < directReads; n++ {
		msg, err := stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("get: %w", err)
		}
		add(msg.Subject, msg.Data, msg.Sequence, msg.Time)
		if msg.Sequence >= to {
			return nil
		}
		seq = msg.Sequence + 1
	}
	cons, err := stream.CreateConsumer(ctx, jetstream.ConsumerConfig{
		Description:       "gateway: one read of an operation's history",
		FilterSubject:     filter,
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       seq,
		AckPolicy:         jetstream.AckNonePolicy,
		MemoryStorage:     true,
		Replicas:          1,
		InactiveThreshold: historyConsumerIdle,
	})
	if err != nil {
		return fmt.Errorf("consumer: %w", err)
	}
	defer func() {
		del, cancel := context.WithTimeout(context.WithoutCancel(ctx), historyConsumerDelete)
		defer cancel()
		if err := stream.DeleteConsumer(del, cons.CachedInfo().Name); err != nil {
			s.log.Debug("a history read's consumer is left to expire", "operation_id", opID, "error", err)
		}
	}()
	pending := cons.CachedInfo().NumPending
	for last := uint64(0); last < to && n < maxHistory; {
		// Pull what the replica holds; one at a time while it has
		// none of the rest yet.
		want := min(max(int(pending), 1), maxHistory-n)
		batch, err := cons.Fetch(want, jetstream.FetchContext(ctx))
		if err != nil {
			return fmt.Errorf("fetch: %w", err)
		}
		for msg := range batch.Messages() {
			md, err := msg.Metadata()
			if err != nil {
				return fmt.Errorf("metadata: %w", err)
			}
			n++
			last, pending = md.Sequence.Stream, md.NumPending
			add(msg.Subject(), msg.Data(), last, md.Timestamp)
		}
		if err := batch.Error(); err != nil {
			return fmt.Errorf("fetch: %w", err)
		}
	}
	return nil
}

// frames are the API frames of events.
func frames(evs []streamEvent) []eventFrame {
	out := make([]eventFrame, len(evs))
	for i, e := range evs {
		out[i] = e.frame
	}
	return out
}

// eventStream is the event stream's handle, looked up once: a read of an
// operation costs no stream info request.
func (s *server) eventStream(ctx context.Context) (jetstream.Stream, error) {
	s.streamMu.Lock()
	defer s.streamMu.Unlock()
	if s.stream != nil {
		return s.stream, nil
	}
	stream, err := s.js.Stream(ctx, events.StreamName)
	if err != nil {
		return nil, fmt.Errorf("open stream %s: %w", events.StreamName, err)
	}
	s.stream = stream
	return stream, nil
}

// current is the gateway's one read of an operation: its projection,
// brought up to date with the events the stream holds past the
// projection's last one (the recorder may lag behind a live operation), or
// built from the stream alone, by the recorder's own rules
// (projection.Apply), when the projection holds no record (the recorder
// has not reached it yet, or the record expired after OPERATION_TTL). A
// finished operation's record is final and read from the store alone.
// With full, the whole history is read too and returned, in order.
// projection.ErrNotFound means neither the store nor the stream knows it.
//
// An operation this gateway saw start is read, without full, from the
// hub's fold of its events (see live) instead of the store: a finished one
// is answered from it alone, one in progress with the stream's events past
// it (the hub may be a moment behind the stream, or have lost its place
// when the cluster moved the stream), and neither waits for the recorder.
func (s *server) current(ctx context.Context, opID string, full bool) (projection.Operation, []eventFrame, error) {
	var op projection.Operation
	var err error
	held := false
	if !full && s.hub != nil {
		op, held = s.hub.live.get(opID)
	}
	switch {
	case held && op.Final():
		return op, nil, nil
	case !held:
		op, err = s.store.Operation(ctx, opID)
		if err != nil && !errors.Is(err, projection.ErrNotFound) {
			return projection.Operation{}, nil, fmt.Errorf("read operation: %w", err)
		}
	}
	if op.Final() && !full {
		return op, nil, nil
	}
	from := uint64(0)
	if op.ID != "" && !full {
		from = op.LastSeq + 1
	}
	hist, err := s.history(ctx, opID, from)
	switch {
	case errors.Is(err, errNoHistory) && op.ID != "":
		// Known to the projection only: the stream was trimmed.
		return op, nil, nil
	case errors.Is(err, errNoHistory):
		return projection.Operation{}, nil, projection.ErrNotFound
	case err != nil:
		return projection.Operation{}, nil, err
	}
	for _, e := range hist {
		if e.ev != nil {
			op, _ = projection.Apply(op, projection.Song{}, e.env, e.ev, e.frame.Seq, e.at)
		}
	}
	if op.ID == "" {
		return projection.Operation{}, nil, projection.ErrNotFound
	}
	if !full {
		return op, nil, nil
	}
	return op, frames(hist), nil
}
