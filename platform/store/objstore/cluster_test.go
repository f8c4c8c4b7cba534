package objstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/butakero/butakero/platform/testkit/natstest"
	"github.com/nats-io/nats.go"
)

// TestPutThroughLeaderChanges: the object stream's leader steps down again
// and again while blobs are written to a three-node cluster, as it does when
// a node is stopped (nats-server hands its leaderships on as it shuts down).
// Every Put either fails or stores exactly the bytes it was given: read
// back, each stored blob is the one written.
func TestPutThroughLeaderChanges(t *testing.T) {
	cluster := natstest.StartCluster(t, 3)
	nc, js := natstest.Connect(t, cluster.URLs(), nats.MaxReconnects(-1))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s := natstest.Open(ctx, t, Open, js, 3)
	stream := s.stream.CachedInfo().Config.Name
	stepdowns := 0
	stepdown := func() {
		// Answered once the leader has stepped down; a stream still
		// electing its next leader answers nothing.
		resp, err := nc.Request("$JS.API.STREAM.LEADER.STEPDOWN."+stream, nil, 2*time.Second)
		if err != nil {
			t.Logf("stepdown: %v", err)
			return
		}
		var r struct {
			Success bool `json:"success"`
			Error   *struct {
				Description string `json:"description"`
			} `json:"error"`
		}
		// Refused while the stream has just elected a leader ("temporarily
		// unavailable"): the next one steps it down.
		if json.Unmarshal(resp.Data, &r) == nil && r.Success {
			stepdowns++
		}
	}

	const chunk = 128 << 10
	stored, failed := 0, 0
	for round := range 8 {
		content := make([]byte, 12*chunk+777)
		if _, err := rand.Read(content); err != nil {
			t.Fatal(err)
		}
		key := fmt.Sprintf("audio/round-%d.dca", round)
		r := &hookReader{r: bytes.NewReader(content), every: 3 * chunk, hook: stepdown}
		_, err := s.Put(ctx, key, "audio/x-dca", nil, r)
		if err != nil {
			failed++
			t.Logf("round %d: put failed (%d stepdowns): %v", round, r.fired, err)
			continue
		}
		stored++
		rc, info, err := s.Open(ctx, key)
		if err != nil {
			t.Fatalf("round %d: open: %v", round, err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, content) {
			t.Errorf("round %d: %d stepdowns during the put; read back %d of %d bytes (info %d bytes), equal %v: %v",
				round, r.fired, len(got), len(content), info.Size, bytes.Equal(got, content), err)
		}
	}
	t.Logf("%d blobs stored whole, %d puts failed, %d leader changes", stored, failed, stepdowns)
	if stepdowns == 0 || stored == 0 {
		t.Fatalf("%d leader changes, %d blobs stored: the test tried nothing", stepdowns, stored)
	}
}

// hookReader runs hook each time another every bytes have been read.
type hookReader struct {
	r     io.Reader
	every int
	hook  func()
	read  int
	fired int
}

func (h *hookReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.read += n
	for h.read >= (h.fired+1)*h.every {
		h.fired++
		h.hook()
	}
	return n, err
}
