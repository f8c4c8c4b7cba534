package objstore

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/butakero/butakero/platform/testkit/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

// TestOpenExistingBucket: a bucket that nats.go's CreateObjectStore made
// (as Butakero did before it defined the stream itself) opens, keeps its
// blobs readable, and takes the stream's definition; opening it again
// changes nothing.
func TestOpenExistingBucket(t *testing.T) {
	env := natstest.Start(t)
	ctx := context.Background()
	obs, err := env.JS.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: Bucket, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	content := bytes.Repeat([]byte("0123456789"), 40_000) // 400 kB: several chunks
	if _, err := obs.Put(ctx, jetstream.ObjectMeta{Name: "audio/old.dca"}, bytes.NewReader(content)); err != nil {
		t.Fatal(err)
	}
	for round := 1; round <= 2; round++ {
		s, err := Open(ctx, env.JS, 1)
		if err != nil {
			t.Fatalf("open %d: %v", round, err)
		}
		if got := s.stream.CachedInfo().Config.MaxMsgsPerSubject; got != StreamConfig(1).MaxMsgsPerSubject {
			t.Fatalf("open %d: the stream's MaxMsgsPerSubject is %d, want %d", round, got, StreamConfig(1).MaxMsgsPerSubject)
		}
		r, info, err := s.Open(ctx, "audio/old.dca")
		if err != nil {
			t.Fatalf("open %d: %v", round, err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(got, content) || info.Size != int64(len(content)) {
			t.Fatalf("open %d: read %d bytes (Info %d), err %v; want the %d stored", round, len(got), info.Size, err, len(content))
		}
	}
}
