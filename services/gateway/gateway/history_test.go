package gateway_test

import (
	"fmt"
	"testing"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/runtime/config"
	"github.com/butakero/butakero/platform/testkit/natstest"
)

// TestHistoryInACluster reads, through a gateway on one node of a
// three-node cluster, an operation of 122 events interleaved with another
// operation's: the history is every event of the operation, each once, in
// stream order, and the status is its last event's.
func TestHistoryInACluster(t *testing.T) {
	cluster := natstest.StartCluster(t, 3)
	env := cluster.Env(t)
	gwNC, _ := natstest.Connect(t, cluster.Servers[2].ClientURL())
	h := serve(t, config.Config{StreamReplicas: 3}, nil, env, gwNC)

	// Each event of the operation is followed by one of another
	// operation's.
	opID, envs := publishHistory(t, env, "rick astley")
	_, others := publishHistory(t, env, "another song")
	var steps []events.Event
	for range 40 {
		steps = append(steps, resolved, downloaded, encoded)
	}
	for _, ev := range append(steps, uploaded) {
		for _, list := range []*[]events.Envelope{&envs, &others} {
			e, err := events.Next((*list)[len(*list)-1], "dQw4w9WgXcQ", ev)
			if err != nil {
				t.Fatal(err)
			}
			env.Publish(t, e)
			*list = append(*list, e)
		}
	}

	r := h.do(t, "GET", "/v1/operations/"+opID, nil)
	var got struct {
		Status string `json:"status"`
		Events []struct {
			ID          string `json:"id"`
			Kind        string `json:"kind"`
			OperationID string `json:"operation_id"`
			Seq         uint64 `json:"seq"`
		} `json:"events"`
	}
	r.decode(t, 200, &got)
	if len(got.Events) != len(envs) {
		t.Fatalf("%d events in the history, want %d", len(got.Events), len(envs))
	}
	for i, e := range got.Events {
		if e.ID != envs[i].ID || e.OperationID != opID {
			t.Fatalf("event %d is %s of %s, want %s of %s", i, e.ID, e.OperationID, envs[i].ID, opID)
		}
		if i > 0 && e.Seq <= got.Events[i-1].Seq {
			t.Fatalf("event %d has seq %d after %d, want stream order", i, e.Seq, got.Events[i-1].Seq)
		}
	}
	if got.Status != "success" {
		t.Errorf("status %q, want success", got.Status)
	}
}

// TestHistoryReadsLeaveNoConsumers reads the histories of more operations
// than nats-server lets a stream have consumers (1,000 by default), one
// after another, faster than a consumer left behind would expire: every
// read answers, and none leaves a consumer on the event stream, neither
// the short ones nor those longer than the gateway asks for one by one
// (every hundredth, of 12 events).
func TestHistoryReadsLeaveNoConsumers(t *testing.T) {
	h := start(t)
	const ops = 1100
	ids := make([]string, ops)
	lens := make([]int, ops)
	for i := range ids {
		steps := []events.Event{resolved}
		if i%100 == 0 {
			for range 10 {
				steps = append(steps, downloaded)
			}
			steps = append(steps, encoded)
		}
		ids[i], _ = publishHistory(t, h.env, fmt.Sprintf("song %d", i), steps...)
		lens[i] = 1 + len(steps)
	}
	var consumers int
	for i, id := range ids {
		r := h.do(t, "GET", "/v1/operations/"+id, nil)
		var got struct {
			Events []struct {
				Kind string `json:"kind"`
			} `json:"events"`
		}
		if r.status != 200 {
			t.Fatalf("read %d of %d: %d %s", i+1, ops, r.status, r.body)
		}
		r.decode(t, 200, &got)
		if len(got.Events) != lens[i] || got.Events[1].Kind != string(events.KindVideoResolved) {
			t.Fatalf("read %d: %d events %+v, want %d from song.requested and video.resolved", i+1, len(got.Events), got.Events, lens[i])
		}
		if i == 0 {
			// The gateway's hub is running by now: its consumer
			// is the one the stream keeps.
			consumers = streamConsumers(t, h)
		}
	}
	if n := streamConsumers(t, h); n != consumers {
		t.Errorf("the event stream has %d consumers after %d history reads, %d after the first", n, ops, consumers)
	}
}

// streamConsumers is how many consumers the event stream has.
func streamConsumers(t *testing.T, h *harness) int {
	t.Helper()
	stream, err := h.env.JS.Stream(t.Context(), events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	return stream.CachedInfo().State.Consumers
}

// TestTwoGatewaysEachSeeEveryEvent runs two gateways on one server, as
// two gateway tasks of a deployment do, and follows one operation on a
// socket of each: both deliver every event, in order. (The hubs' consumers
// had one name, so the second gateway took over the first one's consumer
// and each hub got only some of the events.)
func TestTwoGatewaysEachSeeEveryEvent(t *testing.T) {
	a := start(t)
	bNC, err := a.env.Server.Connect("gateway-b")
	if err != nil {
		t.Fatal(err)
	}
	b := serve(t, config.Config{}, nil, a.env, bNC)
	opID, envs := publishHistory(t, a.env, "rick astley")
	sa, sb := dial(t, a, opID, nil), dial(t, b, opID, nil)
	for _, s := range []*socket{sa, sb} {
		if m := s.nextEvent(); m["id"] != envs[0].ID {
			t.Fatalf("first event %v, want song.requested %s", m["id"], envs[0].ID)
		}
	}
	for range 10 {
		for _, ev := range []events.Event{resolved, downloaded, encoded} {
			e, err := events.Next(envs[len(envs)-1], "dQw4w9WgXcQ", ev)
			if err != nil {
				t.Fatal(err)
			}
			a.env.Publish(t, e)
			envs = append(envs, e)
		}
	}
	for name, s := range map[string]*socket{"first": sa, "second": sb} {
		for i, want := range envs[1:] {
			if m := s.nextEvent(); m["id"] != want.ID {
				t.Fatalf("the %s gateway's socket: event %d is %v (%v), want %s", name, i+1, m["id"], m["kind"], want.ID)
			}
		}
	}
}
