package gateway

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/projection"
)

// TestLive folds the events the hub delivers the way the recorder does,
// holds only operations it saw start, and lets finished ones go after
// liveKeep.
func TestLive(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	l := newLive()
	l.now = func() time.Time { return now }
	song := events.Song{ID: "s1", Title: "T"}
	body := func(opID string, ev events.Event) []byte {
		e, err := events.New(opID, "s1", ev)
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	seen, unseen := events.NewID(), events.NewID()
	stream := []struct {
		op string
		ev events.Event
	}{
		{seen, events.SongRequested{Query: "q"}},
		{unseen, events.VideoResolved{Song: song}}, // started before the gateway
		{seen, events.VideoResolved{Song: song}},
		{seen, events.UploadDone{Song: song, Key: "audio/s1.dca", Location: "nats://x", Size: 9}},
	}
	var want projection.Operation
	for i, e := range stream {
		b := body(e.op, e.ev)
		l.apply(b, uint64(i+1), now)
		if e.op == seen {
			env, ev, _ := events.Decode(b)
			want, _ = projection.Apply(want, projection.Song{}, env, ev, uint64(i+1), now)
		}
	}
	cases := []struct {
		name  string
		id    string
		after time.Duration
		want  bool
	}{
		{name: "an operation seen from its start", id: seen, want: true},
		{name: "an operation that started before the gateway", id: unseen},
		{name: "a finished operation past liveKeep", id: seen, after: liveKeep + time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.after > 0 {
				now = now.Add(tc.after)
				l.apply(body(events.NewID(), events.SongRequested{Query: "later"}), 99, now)
			}
			got, ok := l.get(tc.id)
			if ok != tc.want {
				t.Fatalf("held %v, want %v", ok, tc.want)
			}
			if ok && got != want {
				t.Fatalf("got %+v\nwant %+v", got, want)
			}
		})
	}
}

// TestLiveAwaitEnd: the channel awaitEnd hands out closes when the end of
// its operation is folded, not before; one asked for after the end is
// closed already; one let go is dropped, and its operation's end closes
// the others still waiting.
func TestLiveAwaitEnd(t *testing.T) {
	l := newLive()
	song := events.Song{ID: "s1", Title: "T"}
	var seq uint64
	apply := func(opID string, ev events.Event) {
		t.Helper()
		e, err := events.New(opID, "s1", ev)
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		seq++
		l.apply(b, seq, time.Now())
	}
	closed := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}

	apply("op1", events.SongRequested{Query: "q"})
	early, stopEarly := l.awaitEnd("op1")
	defer stopEarly()
	dropped, stopDropped := l.awaitEnd("op1")
	apply("op1", events.VideoResolved{Song: song})
	if closed(early) {
		t.Fatal("closed after video.resolved, before the end")
	}
	stopDropped()
	apply("op1", events.UploadDone{Song: song, Key: "audio/s1.dca", Size: 10, Cached: true})
	if !closed(early) {
		t.Fatal("not closed once upload.done is folded")
	}
	if closed(dropped) {
		t.Error("a channel let go was closed at the end")
	}
	late, stopLate := l.awaitEnd("op1")
	defer stopLate()
	if !closed(late) {
		t.Error("asked for after the end: not closed")
	}
	never, stopNever := l.awaitEnd("op2")
	apply("op2", events.UploadDone{Song: song, Key: "audio/s1.dca", Size: 10, Cached: true})
	if closed(never) {
		t.Error("closed for an operation whose start the hub never delivered")
	}
	stopNever()
	if n := len(l.ending); n != 0 {
		t.Errorf("%d operations still have waiters after every one was let go or closed", n)
	}
}
