package objstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/butakero/butakero/platform/testkit/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

// TestLeaderGet: the stream leader's answer is the chunk a direct get
// gives, and one past the object's chunks is ErrMsgNotFound.
func TestLeaderGet(t *testing.T) {
	env := natstest.Start(t)
	ctx := context.Background()
	s := natstest.Open(ctx, t, Open, env.JS, 1)
	content := bytes.Repeat([]byte("0123456789"), 40_000) // 400 kB: several chunks
	if _, err := s.Put(ctx, "audio/leader.dca", "audio/x-dca", nil, bytes.NewReader(content)); err != nil {
		t.Fatal(err)
	}
	oi, err := s.obs.GetInfo(ctx, "audio/leader.dca")
	if err != nil {
		t.Fatal(err)
	}
	subject := chunkSubject(Bucket, oi)
	name := s.stream.CachedInfo().Config.Name
	var got []byte
	next := uint64(1)
	for range oi.Chunks {
		direct, err := s.stream.GetMsg(ctx, next, jetstream.WithGetMsgSubject(subject))
		if err != nil {
			t.Fatal(err)
		}
		seq, data, err := leaderGet(ctx, s.nc, name, next, subject)
		if err != nil {
			t.Fatal(err)
		}
		if seq != direct.Sequence || !bytes.Equal(data, direct.Data) {
			t.Fatalf("leader: chunk at %d, %d bytes; direct get: %d, %d bytes", seq, len(data), direct.Sequence, len(direct.Data))
		}
		got = append(got, data...)
		next = seq + 1
	}
	if !bytes.Equal(got, content) {
		t.Fatalf("the chunks hold %d bytes, want the %d put", len(got), len(content))
	}
	if _, _, err := leaderGet(ctx, s.nc, name, next, subject); !errors.Is(err, jetstream.ErrMsgNotFound) {
		t.Fatalf("past the last chunk: %v, want ErrMsgNotFound", err)
	}
	// A ranged read still starts where it should.
	r, _, err := s.OpenRange(ctx, "audio/leader.dca", 123_457, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil || !strings.EqualFold(string(b), string(content[123_457:123_467])) {
		t.Fatalf("range: %q, %v", b, err)
	}
}
