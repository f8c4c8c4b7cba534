package jsbucket_test

import (
	"context"
	"errors"
	"testing"

	"github.com/butakero/butakero/platform/jsbucket"
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
