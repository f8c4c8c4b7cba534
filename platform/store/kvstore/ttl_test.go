package kvstore_test

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/butakero/butakero/platform/projection"
	"github.com/butakero/butakero/platform/store/kvstore"
	"github.com/butakero/butakero/platform/testkit/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

// TestFinishedOperationsExpire checks OPERATION_TTL in JetStream KV: a
// finished operation's entry carries a per-key TTL counted from its last
// event, one in progress carries none, and the bucket has no bucket-wide
// age limit. An entry whose TTL runs out is gone, which the test sees as
// the expiry marker JetStream leaves on the key.
func TestFinishedOperationsExpire(t *testing.T) {
	env, ctx := natstest.StartWithin(t, 30*time.Second)
	const ttl = 48 * time.Hour
	now := time.Now()
	s, err := kvstore.New(ctx, env.JS, kvstore.Options{Replicas: 1, OperationTTL: ttl, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	stream, err := env.JS.Stream(ctx, "KV_"+kvstore.OperationsBucket)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !info.Config.AllowMsgTTL || info.Config.MaxAge != 0 {
		t.Fatalf("operations bucket: AllowMsgTTL %v, MaxAge %s; want per-key TTLs and no bucket-wide age", info.Config.AllowMsgTTL, info.Config.MaxAge)
	}
	at := func(d time.Duration) string { return now.Add(-d).UTC().Format(time.RFC3339Nano) }
	cases := []struct {
		name    string
		op      projection.Operation
		wantTTL string // the entry's Nats-TTL header, "" for none
	}{
		{"finished just now", projection.Operation{ID: "op-new", Status: projection.StatusSuccess, UpdatedAt: at(0), LastSeq: 5}, strconv.Itoa(int(ttl.Seconds()))},
		{"failed a day ago", projection.Operation{ID: "op-day", Status: projection.StatusFailed, UpdatedAt: at(24 * time.Hour), LastSeq: 5}, strconv.Itoa(int((ttl - 24*time.Hour).Seconds()))},
		{"finished longer ago than the TTL", projection.Operation{ID: "op-old", Status: projection.StatusSuccess, UpdatedAt: at(3 * ttl), LastSeq: 5}, "1"},
		{"in progress since long ago", projection.Operation{ID: "op-stuck", Status: projection.StatusInProgress, UpdatedAt: at(3 * ttl), LastSeq: 5}, ""},
		{"in progress", projection.Operation{ID: "op-running", Status: projection.StatusInProgress, UpdatedAt: at(0), LastSeq: 5}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.PutOperation(ctx, tc.op); err != nil {
				t.Fatal(err)
			}
			msg, err := stream.GetLastMsgForSubject(ctx, "$KV."+kvstore.OperationsBucket+"."+tc.op.ID)
			if err != nil {
				t.Fatal(err)
			}
			got := msg.Header.Get(jetstream.MsgTTLHeader)
			// WithMsgTTL writes a Go duration; the server counts whole seconds.
			if got != "" {
				d, err := time.ParseDuration(got)
				if err != nil {
					t.Fatalf("Nats-TTL %q: %v", got, err)
				}
				got = strconv.Itoa(int(d.Seconds()))
			}
			if got != tc.wantTTL {
				t.Errorf("Nats-TTL %q, want %q", got, tc.wantTTL)
			}
		})
	}

	t.Run("an entry past its TTL is gone", func(t *testing.T) {
		kv, err := env.JS.KeyValue(ctx, kvstore.OperationsBucket)
		if err != nil {
			t.Fatal(err)
		}
		w, err := kv.Watch(ctx, "op-old")
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
		for gone := false; !gone; {
			select {
			case e := <-w.Updates():
				gone = e != nil && e.Operation() != jetstream.KeyValuePut
			case <-ctx.Done():
				t.Fatal("op-old never expired")
			}
		}
		if _, err := s.Operation(ctx, "op-old"); !errors.Is(err, projection.ErrNotFound) {
			t.Errorf("Operation(op-old) after its TTL: %v, want projection.ErrNotFound", err)
		}
		for _, id := range []string{"op-new", "op-day", "op-stuck", "op-running"} {
			if _, err := s.Operation(ctx, id); err != nil {
				t.Errorf("Operation(%s): %v, want it kept", id, err)
			}
		}
	})
}

// TestOpenUpgradesAnOperationsBucketWithoutTTLs opens the store on an
// operations bucket made before per-key TTLs: the bucket is updated in
// place (entries kept) and finished operations get their TTL.
func TestOpenUpgradesAnOperationsBucketWithoutTTLs(t *testing.T) {
	env, ctx := natstest.StartWithin(t, 30*time.Second)
	old, err := env.JS.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: kvstore.OperationsBucket, History: 1, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.Put(ctx, "op-before", []byte(`{"id":"op-before","status":"success","last_seq":3}`)); err != nil {
		t.Fatal(err)
	}
	s := natstest.Open(ctx, t, kvstore.Open, env.JS, 1)
	if op, err := s.Operation(ctx, "op-before"); err != nil || op.LastSeq != 3 {
		t.Fatalf("entry written before the upgrade: %+v, %v", op, err)
	}
	if err := s.PutOperation(ctx, projection.Operation{ID: "op-after", Status: projection.StatusSuccess, LastSeq: 4}); err != nil {
		t.Fatalf("a finished operation after the upgrade: %v", err)
	}
	// A second process opening the same buckets finds them as they are.
	natstest.Open(ctx, t, kvstore.Open, env.JS, 1)
}
