package recorder_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/projection"
	"github.com/butakero/butakero/platform/store/kvstore"
	"github.com/butakero/butakero/platform/testkit/natstest"
	"github.com/butakero/butakero/services/recorder/recorder"
)

// orderStore checks that the operation writes of every operation come in
// stream order, fails the first write of chosen events (so that they are
// redelivered while other lanes go on), and counts what it stored.
type orderStore struct {
	*kvstore.Store
	t      *testing.T
	shared *orderLog
	name   string
}

type orderLog struct {
	mu      sync.Mutex
	last    map[string]uint64 // operation id: the last sequence stored
	failing map[uint64]bool   // sequences whose first write fails
	applied map[string]int    // recorder name: operation writes stored
}

func (s *orderStore) PutOperationIf(ctx context.Context, op, prev projection.Operation) (bool, error) {
	l := s.shared
	l.mu.Lock()
	if l.failing[op.LastSeq] {
		delete(l.failing, op.LastSeq)
		l.mu.Unlock()
		return false, errors.New("store unavailable")
	}
	l.mu.Unlock()
	ok, err := s.Store.PutOperationIf(ctx, op, prev)
	if !ok || err != nil {
		return ok, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if op.LastSeq <= l.last[op.ID] {
		s.t.Errorf("operation %s: sequence %d stored after %d", op.ID, op.LastSeq, l.last[op.ID])
	}
	l.last[op.ID] = op.LastSeq
	l.applied[s.name]++
	return true, nil
}

// TestLanesKeepOrderPerOperation runs two recorders on the same lanes and
// buckets (as two processes would) over many operations whose events interleave in the
// stream, some of them sharing a song, with some writes failing once: every
// operation's writes come in stream order, both recorders apply events, and
// the records are those of the events applied one by one in stream order.
func TestLanesKeepOrderPerOperation(t *testing.T) {
	env := natstest.Start(t)
	kv := openStore(t, env)
	log := &orderLog{last: map[string]uint64{}, failing: map[uint64]bool{}, applied: map[string]int{}}
	for _, name := range []string{"a", "b"} {
		// Each its own store, as two processes have: neither knows the
		// revisions the other wrote.
		start(t, env, &orderStore{Store: openStore(t, env), t: t, shared: log, name: name})
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	const ops = 48
	ids := make([]string, ops)
	histories := make([][]events.Event, ops)
	songs := make([]string, ops)
	for i := range ops {
		ids[i] = events.NewID()
		songs[i] = fmt.Sprintf("lane-song-%d", i%3)
		song := events.Song{ID: songs[i], Title: "Title " + songs[i], URL: "https://x/" + songs[i], Source: "direct"}
		end := events.Event(events.UploadDone{Song: song, Key: "audio/" + songs[i] + ".dca", Location: "nats://x/" + songs[i], Size: int64(100 + i%3)})
		if i%5 == 4 {
			end = events.OperationFailed{Stage: "encode", Code: events.CodeInvalidAudio, Message: "not audio", Attempts: 1}
		}
		histories[i] = []events.Event{events.SongRequested{Query: "q"}, events.VideoResolved{Song: song},
			events.AudioDownloaded{Song: song, Key: "staging/x.m4a"}, end}
	}
	// Round robin: the stream holds the operations' events interleaved.
	type published struct {
		env events.Envelope
		ev  events.Event
		seq uint64
	}
	var stream []published
	for step := range 4 {
		for i := range ops {
			e, err := events.New(ids[i], songs[i], histories[i][step])
			if err != nil {
				t.Fatal(err)
			}
			seq := publishEnvelope(t, env, e)
			if step == 2 && i%4 == 1 {
				log.mu.Lock()
				log.failing[seq] = true
				log.mu.Unlock()
			}
			stream = append(stream, published{env: e, ev: histories[i][step], seq: seq})
		}
	}
	for i := range ops {
		waitOp(ctx, t, env, ids[i], final)
	}
	waitDrained(ctx, t, env, stream[len(stream)-1].seq)

	// The records of the events applied one by one, in stream order.
	wantOps := map[string]projection.Operation{}
	wantSongs := map[string]projection.Song{}
	for _, p := range stream {
		op := wantOps[p.env.OperationID]
		id := projection.SongID(op, p.env, p.ev)
		newOp, newSong := projection.Apply(op, wantSongs[id], p.env, p.ev, p.seq, p.env.Time)
		wantOps[p.env.OperationID] = newOp
		if id != "" {
			wantSongs[id] = newSong
		}
	}
	for id, want := range wantOps {
		got, err := kv.Operation(ctx, id)
		if err != nil || got != want {
			t.Errorf("operation %s:\n got %+v (%v)\nwant %+v", id, got, err, want)
		}
	}
	for id, want := range wantSongs {
		got, err := kv.Song(ctx, id)
		// The catalog's content; which event last changed a song depends
		// on the order the lanes reached it.
		got.LastSeq, got.UpdatedAt, want.LastSeq, want.UpdatedAt = 0, "", 0, ""
		if err != nil || !got.Equal(want) {
			t.Errorf("song %s:\n got %+v (%v)\nwant %+v", id, got, err, want)
		}
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	if len(log.failing) != 0 {
		t.Errorf("writes never tried: %v", log.failing)
	}
	if log.applied["a"] == 0 || log.applied["b"] == 0 {
		t.Errorf("operation writes per recorder: %v; want both to share the lanes", log.applied)
	}
	t.Logf("operation writes per recorder: %v", log.applied)
}

// publishEnvelope publishes e and returns its stream sequence.
func publishEnvelope(t *testing.T, env *natstest.Env, e events.Envelope) uint64 {
	t.Helper()
	ack, err := events.NewPublisher(env.JS).Publish(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

var _ recorder.Store = (*orderStore)(nil)
