package blobtest_test

import (
	"bytes"
	"context"
	"io"
	"strconv"
	"testing"

	"github.com/butakero/butakero/platform/blob"
	"github.com/butakero/butakero/platform/store/objstore"
	"github.com/butakero/butakero/platform/testkit/blobtest"
	"github.com/butakero/butakero/platform/testkit/natstest"
)

// TestObjectStore runs the contract against the JetStream Object Store,
// one embedded server per case.
func TestObjectStore(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blob.Store {
		_, s := openObjects(t)
		return s
	})
}

// openObjects starts a JetStream server for tb and opens the Object Store
// on it.
func openObjects(tb testing.TB) (*natstest.Env, *objstore.Store) {
	tb.Helper()
	env := natstest.Start(tb)
	s := natstest.Open(context.Background(), tb, objstore.Open, env.JS, 1)
	return env, s
}

// BenchmarkObjectStoreRange reads the last 100 bytes of a DCA-sized blob
// (about ten minutes at 96 kbit/s): by a ranged open, and by reading from
// the start as the gateway did before OpenRange.
func BenchmarkObjectStoreRange(b *testing.B) {
	const size = 7 << 20
	_, s := openObjects(b)
	ctx := context.Background()
	if _, err := s.Put(ctx, "audio/bench.dca", "audio/x-dca", nil, io.LimitReader(zeros{}, size)); err != nil {
		b.Fatal(err)
	}
	b.Run("OpenRange", func(b *testing.B) {
		for b.Loop() {
			rc, _, err := s.OpenRange(ctx, "audio/bench.dca", size-100, 100)
			if err != nil {
				b.Fatal(err)
			}
			if n, err := io.Copy(io.Discard, rc); err != nil || n != 100 {
				b.Fatalf("read %d bytes: %v", n, err)
			}
			rc.Close()
		}
	})
	b.Run("Open and skip", func(b *testing.B) {
		for b.Loop() {
			rc, _, err := s.Open(ctx, "audio/bench.dca")
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.CopyN(io.Discard, rc, size-100); err != nil {
				b.Fatal(err)
			}
			if n, err := io.Copy(io.Discard, rc); err != nil || n != 100 {
				b.Fatalf("read %d bytes: %v", n, err)
			}
			rc.Close()
		}
	})
}

// zeros reads as an endless run of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestObjectStoreChunksAreFull writes blobs the way the encoder does, one
// small write (a DCA frame) at a time through a pipe, and expects them
// stored in full 128 KiB chunks, not one chunk per write.
func TestObjectStoreChunksAreFull(t *testing.T) {
	env, s := openObjects(t)
	ctx := context.Background()
	obs, err := env.JS.ObjectStore(ctx, objstore.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	const chunk = 128 << 10
	cases := []struct {
		name       string
		write      int // bytes per write
		total      int
		wantChunks uint32
	}{
		{"under one chunk", 300, 100 * 300, 1},
		{"exactly two chunks", 256, 2 * chunk, 2},
		{"a 30-second DCA at 96 kbps, a frame per write", 242, 1500 * 242, 3},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pr, pw := io.Pipe()
			go func() {
				frame := make([]byte, tc.write)
				for sent := 0; sent < tc.total; sent += tc.write {
					if _, err := pw.Write(frame); err != nil {
						return
					}
				}
				pw.Close()
			}()
			key := "audio/chunks" + strconv.Itoa(i) + ".dca"
			info, err := s.Put(ctx, key, "audio/x-dca", nil, pr)
			if err != nil {
				t.Fatal(err)
			}
			if info.Size != int64(tc.total) {
				t.Fatalf("size %d, want %d", info.Size, tc.total)
			}
			oi, err := obs.GetInfo(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			if oi.Chunks != tc.wantChunks {
				t.Errorf("%d bytes in %d chunks, want %d", tc.total, oi.Chunks, tc.wantChunks)
			}
		})
	}
}

// TestObjectStoreRangeFarIn reads ranges of a blob of 100 chunks, more
// than one pass of the chunk index asks the server for, at offsets in the
// first, a middle and the last chunk, and across two chunks: each range
// holds the bytes written there.
func TestObjectStoreRangeFarIn(t *testing.T) {
	_, s := openObjects(t)
	ctx := context.Background()
	const chunk = 128 << 10
	data := make([]byte, 100*chunk-1000)
	for i := range data {
		data[i] = byte(i*7 + i>>17)
	}
	if _, err := s.Put(ctx, "audio/far.dca", "audio/x-dca", nil, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct{ off, n int64 }{
		{10, 100},
		{40*chunk + 5, 300},
		{70*chunk - 50, 100},
		{int64(len(data)) - 200, 200},
		{int64(len(data)) - 3*chunk, -1},
	} {
		rc, _, err := s.OpenRange(ctx, "audio/far.dca", r.off, r.n)
		if err != nil {
			t.Fatalf("range %d+%d: %v", r.off, r.n, err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("range %d+%d: %v", r.off, r.n, err)
		}
		want := data[r.off:]
		if r.n >= 0 {
			want = want[:r.n]
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("range %d+%d: got %d bytes, not those written there", r.off, r.n, len(got))
		}
	}
}
