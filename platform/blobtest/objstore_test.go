package blobtest_test

import (
	"context"
	"io"
	"testing"

	"github.com/butakero/butakero/platform/blobtest"
	"github.com/butakero/butakero/platform/natstest"
	"github.com/butakero/butakero/platform/objstore"
)

// TestObjectStore runs the contract against the JetStream Object Store,
// one embedded server per case.
func TestObjectStore(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blobtest.Store {
		env := natstest.Start(t)
		s, err := objstore.Open(context.Background(), env.JS, 1)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// BenchmarkObjectStoreRange reads the last 100 bytes of a DCA-sized blob
// (about ten minutes at 96 kbit/s): by a ranged open, and by reading from
// the start as the gateway did before OpenRange.
func BenchmarkObjectStoreRange(b *testing.B) {
	const size = 7 << 20
	env := natstest.Start(b)
	s, err := objstore.Open(context.Background(), env.JS, 1)
	if err != nil {
		b.Fatal(err)
	}
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
