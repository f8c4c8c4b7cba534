package blobtest_test

import (
	"context"
	"io"
	"strconv"
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

// TestObjectStoreChunksAreFull writes blobs the way the encoder does, one
// small write (a DCA frame) at a time through a pipe, and expects them
// stored in full 128 KiB chunks, not one chunk per write.
func TestObjectStoreChunksAreFull(t *testing.T) {
	env := natstest.Start(t)
	ctx := context.Background()
	s, err := objstore.Open(ctx, env.JS, 1)
	if err != nil {
		t.Fatal(err)
	}
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
