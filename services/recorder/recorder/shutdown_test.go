package recorder_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/projection"
	"github.com/butakero/butakero/platform/runtime/config"
	"github.com/butakero/butakero/platform/testkit/natstest"
	"github.com/butakero/butakero/services/recorder/recorder"
)

// blockingStore holds every operation write until release is closed or
// the write's context ends.
type blockingStore struct {
	recorder.Store
	reached chan struct{}
	release chan struct{}
}

func (s *blockingStore) PutOperation(ctx context.Context, op projection.Operation) error {
	select {
	case s.reached <- struct{}{}:
	default:
	}
	select {
	case <-s.release:
		return s.Store.PutOperation(ctx, op)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestShutdown stops the recorder while it writes an event: within
// SHUTDOWN_GRACE the write finishes and the event is acked; past it the
// event is left for redelivery, and the next recorder applies it. Either
// way nothing is lost and Run returns nil.
func TestShutdown(t *testing.T) {
	cases := []struct {
		name     string
		grace    time.Duration
		release  bool // let the write finish after the stop
		wantDone bool // the operation is stored when Run returns
	}{
		{name: "the write finishes within the grace period", grace: time.Minute, release: true, wantDone: true},
		{name: "the event is left when the grace period runs out", grace: 100 * time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := natstest.Start(t)
			kv := openStore(t, env)
			store := &blockingStore{Store: kv, reached: make(chan struct{}, 1), release: make(chan struct{})}
			cfg, err := config.Load(config.FromMap(nil))
			if err != nil {
				t.Fatal(err)
			}
			cfg.ShutdownGrace = tc.grace
			log := slog.New(slog.NewTextHandler(testWriter{t}, nil))
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- recorder.Run(ctx, recorder.Deps{JS: env.JS, Store: store, Config: cfg, Log: log}) }()

			opID := events.NewID()
			seq := publish(t, env, opID, "", events.SongRequested{Query: "q"})
			select {
			case <-store.reached:
			case <-time.After(20 * time.Second):
				t.Fatal("the recorder never wrote the operation")
			}
			cancel()
			if tc.release {
				close(store.release)
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("Run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("Run did not return after the stop")
			}
			_, err = kv.Operation(context.Background(), opID)
			if stored := err == nil; stored != tc.wantDone {
				t.Fatalf("operation stored when Run returned: %v (%v), want %v", stored, err, tc.wantDone)
			}
			if !tc.wantDone && !errors.Is(err, projection.ErrNotFound) {
				t.Fatalf("reading the operation: %v", err)
			}

			// The next recorder: the operation is there, applied once.
			start(t, env, kv)
			wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer wcancel()
			op := waitOp(wctx, t, env, opID, upTo(seq))
			if op.Query != "q" || op.Attempts != 1 {
				t.Errorf("operation after the restart: %+v", op)
			}
		})
	}
}
