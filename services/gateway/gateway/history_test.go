package gateway_test

import (
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
