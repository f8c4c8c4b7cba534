package jsbucket_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/butakero/butakero/platform/jsbucket"
	"github.com/butakero/butakero/platform/runtime/natsconn"
	"github.com/butakero/butakero/platform/runtime/natsembed"
	"github.com/butakero/butakero/platform/testkit/natstest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// flaky is a bucket whose first reads find no responder, as a cluster's
// freshly created bucket does, and whose later reads return err.
type flaky struct {
	jetstream.KeyValue
	noResponders int
	err          error
	calls        int
}

func (f *flaky) Get(context.Context, string) (jetstream.KeyValueEntry, error) {
	f.calls++
	if f.calls <= f.noResponders {
		return nil, nats.ErrNoResponders
	}
	return nil, f.err
}

func TestGet(t *testing.T) {
	t.Run("tries again while no replica answers", func(t *testing.T) {
		kv := &flaky{noResponders: 3, err: jetstream.ErrKeyNotFound}
		_, err := jsbucket.Get(t.Context(), kv, "k")
		if !errors.Is(err, jetstream.ErrKeyNotFound) || kv.calls != 4 {
			t.Fatalf("after %d reads: %v, want the fourth read's answer (key not found)", kv.calls, err)
		}
	})
	t.Run("returns any other error at once", func(t *testing.T) {
		kv := &flaky{err: nats.ErrConnectionClosed}
		_, err := jsbucket.Get(t.Context(), kv, "k")
		if !errors.Is(err, nats.ErrConnectionClosed) || kv.calls != 1 {
			t.Fatalf("after %d reads: %v, want one read and its error", kv.calls, err)
		}
	})
	t.Run("gives up", func(t *testing.T) {
		kv := &flaky{noResponders: 1 << 30}
		_, err := jsbucket.Get(t.Context(), kv, "k")
		if !errors.Is(err, nats.ErrNoResponders) || kv.calls < 2 {
			t.Fatalf("after %d reads: %v, want several reads, then no responders", kv.calls, err)
		}
	})
	t.Run("stops with its context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		kv := &flaky{noResponders: 1 << 30}
		_, err := jsbucket.Get(ctx, kv, "k")
		if !errors.Is(err, context.Canceled) || !errors.Is(err, nats.ErrNoResponders) || kv.calls != 1 {
			t.Fatalf("after %d reads: %v, want one read, then the context's end and no responders", kv.calls, err)
		}
	})
}

// TestCreateLost checks that a stream's create whose request is lost (the
// connection is cut before the server sees it, so no answer ever comes)
// is made again after AttemptTimeout and succeeds, within the caller's
// context.
func TestCreateLost(t *testing.T) {
	const token = "lost-create"
	env := natstest.StartWith(t, natsembed.Options{Listen: "127.0.0.1:0", Auth: natsconn.Auth{Token: token}})
	proxy := natstest.StartFaultProxy(t, strings.TrimPrefix(env.Server.ClientURL(), "nats://"))
	_, js := natstest.Connect(t, proxy.URL(), nats.Token(token), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	const name = "JSBUCKET_LOST"
	proxy.Arm("$JS.API.STREAM.CREATE."+name, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 3*jsbucket.AttemptTimeout)
	defer cancel()
	cfg := jetstream.StreamConfig{Name: name, Subjects: []string{"lost.>"}, Storage: jetstream.MemoryStorage}
	s, err := jsbucket.Stream(ctx, js, cfg)
	if err != nil {
		t.Fatalf("Stream after a lost create: %v", err)
	}
	if proxy.Fired() != 1 {
		t.Fatalf("the proxy cut %d creates, want 1: the test lost nothing", proxy.Fired())
	}
	if got := s.CachedInfo().Config.Subjects; len(got) != 1 || got[0] != "lost.>" {
		t.Errorf("the stream's subjects are %v", got)
	}
}
