package chunkstream_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/butakero/butakero/platform/media/chunkstream"
	"github.com/butakero/butakero/platform/testkit/natstest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const stream = "TEST_RUNS"

func ensure(t *testing.T, js jetstream.JetStream) jetstream.Stream {
	t.Helper()
	s, err := chunkstream.Ensure(context.Background(), js, chunkstream.StreamConfig(stream, "test runs", "runs.*", time.Hour, 1))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestWriterCuts writes runs cut by each of the Config's rules and follows
// them back: every chunk is where the rules put it, with its run and
// offset, the end message says how the run ended at its length, and the
// message ids are IDPrefix, the run and the offset.
func TestWriterCuts(t *testing.T) {
	env := natstest.Start(t)
	ctx := context.Background()
	s := ensure(t, env.JS)
	// Delay is out of reach: only the other rules cut.
	const never = time.Hour
	cases := []struct {
		name   string
		cfg    chunkstream.Config
		writes []string
		want   []string // the chunks' data
	}{
		{
			name:   "at most MaxBytes, a write split across chunks",
			cfg:    chunkstream.Config{MaxBytes: 10, Delay: never, Window: 2},
			writes: []string{"aaaa", "bbbb", "cccc", "ddddddddddddddd"},
			want:   []string{"aaaabbbbcc", "ccdddddddd", "ddddddd"},
		},
		{
			name:   "the first chunk at FirstWrites, then every MaxWrites",
			cfg:    chunkstream.Config{FirstWrites: 2, MaxWrites: 3, Delay: never},
			writes: []string{"H", "a", "b", "c", "d", "e", "f", "g"},
			want:   []string{"Ha", "bcd", "efg"},
		},
		{
			name:   "what is pending goes out at the end",
			cfg:    chunkstream.Config{MaxWrites: 3, Delay: never},
			writes: []string{"a", "b", "c", "d"},
			want:   []string{"abc", "d"},
		},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			subject := fmt.Sprintf("runs.%d", i)
			// The runs are all "r": only the prefix keeps their ids
			// apart in the stream.
			tc.cfg.Subject, tc.cfg.IDPrefix = subject, subject+"."
			w := chunkstream.NewWriter(env.JS, tc.cfg, "r")
			for _, p := range tc.writes {
				if n, err := w.Write([]byte(p)); n != len(p) || err != nil {
					t.Fatalf("Write(%q) = %d, %v", p, n, err)
				}
			}
			length := int64(len(strings.Join(tc.writes, "")))
			if err := w.End(func(n int64) chunkstream.Chunk {
				if n != length {
					t.Errorf("End was given the length %d, want %d", n, length)
				}
				return chunkstream.Chunk{End: "done", Size: 7}
			}); err != nil {
				t.Fatal(err)
			}

			f, err := chunkstream.Follow(ctx, env.JS, stream, subject)
			if err != nil {
				t.Fatal(err)
			}
			var off int64
			for _, want := range tc.want {
				c, err := f.Next(ctx, 0)
				if err != nil || c.Run != "r" || c.Offset != off || string(c.Data) != want || c.End != "" {
					t.Fatalf("chunk at %d: %+v, %v; want %q", off, c, err, want)
				}
				off += int64(len(c.Data))
			}
			c, err := f.Next(ctx, 0)
			if err != nil || c.Run != "r" || c.Offset != length || c.End != "done" || c.Size != 7 || len(c.Data) != 0 {
				t.Fatalf("end message: %+v, %v; want done at %d", c, err, length)
			}
			if c, err := f.Next(ctx, 0); !errors.Is(err, chunkstream.ErrIdle) {
				t.Fatalf("after the end: %+v, %v; want ErrIdle", c, err)
			}

			last, err := s.GetLastMsgForSubject(ctx, subject)
			if err != nil {
				t.Fatal(err)
			}
			if id, want := last.Header.Get(nats.MsgIdHdr), fmt.Sprintf("%s.r.%d.end", subject, length); id != want {
				t.Fatalf("the end message's id is %q, want %q", id, want)
			}
		})
	}
}

// TestWriterDelay: a chunk that no other rule sends goes out Delay after
// its first byte, with nobody flushing.
func TestWriterDelay(t *testing.T) {
	env := natstest.Start(t)
	ctx := context.Background()
	ensure(t, env.JS)
	w := chunkstream.NewWriter(env.JS, chunkstream.Config{Subject: "runs.slow", FirstWrites: 2, MaxWrites: 100, Delay: time.Millisecond}, "r")
	f, err := chunkstream.Follow(ctx, env.JS, stream, "runs.slow")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write([]byte("H"))
	_, _ = w.Write([]byte("a"))
	// The first chunk went out on its second write; the third waits for
	// Delay.
	_, _ = w.Write([]byte("b"))
	for _, want := range []string{"Ha", "b"} {
		c, err := f.Next(ctx, 10*time.Second)
		if err != nil || string(c.Data) != want {
			t.Fatalf("chunk %+v, %v; want %q", c, err, want)
		}
	}
	if err := w.Failed("c", "m"); err != nil {
		t.Fatal(err)
	}
	c, err := f.Next(ctx, 10*time.Second)
	if err != nil || c.End != chunkstream.EndFailed || c.Code != "c" || c.Message != "m" || c.Offset != 3 {
		t.Fatalf("end message %+v, %v; want failed at 3", c, err)
	}
}

// TestWriterPublishFails: once publishing fails, Write still succeeds at
// once, even a write longer than a chunk, and End returns the failure.
func TestWriterPublishFails(t *testing.T) {
	env := natstest.Start(t)
	ensure(t, env.JS)
	nc, err := env.Server.Connect("lost")
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
	w := chunkstream.NewWriter(js, chunkstream.Config{Subject: "runs.lost", MaxBytes: 10, Delay: time.Hour}, "r")
	done := make(chan error, 1)
	go func() {
		_, _ = w.Write(bytes.Repeat([]byte("x"), 35))
		_, _ = w.Write([]byte("y"))
		done <- w.Err()
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Err is nil after publishing on a closed connection")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Write did not return once publishing failed")
	}
	if err := w.End(func(int64) chunkstream.Chunk { return chunkstream.Chunk{End: "done"} }); err == nil {
		t.Fatal("End returned nil after publishing failed")
	}
}

// TestFollower: Next says ErrIdle when nothing comes in its wait, ctx's
// error once ctx ends, and reads on from where it was once messages come.
func TestFollower(t *testing.T) {
	env := natstest.Start(t)
	ctx := context.Background()
	ensure(t, env.JS)
	f, err := chunkstream.Follow(ctx, env.JS, stream, "runs.f")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Next(ctx, 50*time.Millisecond); !errors.Is(err, chunkstream.ErrIdle) {
		t.Fatalf("Next on an empty subject: %v, want ErrIdle", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := f.Next(cctx, time.Minute); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next with an ended ctx: %v, want context.Canceled", err)
	}
	w := chunkstream.NewWriter(env.JS, chunkstream.Config{Subject: "runs.f", Delay: time.Hour}, "r")
	_, _ = w.Write([]byte("abc"))
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if c, err := f.Next(ctx, 10*time.Second); err != nil || string(c.Data) != "abc" {
		t.Fatalf("Next after a flush: %+v, %v; want abc", c, err)
	}
	if _, err := chunkstream.Follow(ctx, env.JS, "NO_SUCH_STREAM", "x"); err == nil {
		t.Fatal("Follow of a stream that does not exist: no error")
	}
}

// TestLast: the subject's last message, and ok false on an empty subject.
func TestLast(t *testing.T) {
	env := natstest.Start(t)
	ctx := context.Background()
	ensure(t, env.JS)
	if _, ok, err := chunkstream.Last(ctx, env.JS, stream, "runs.l"); ok || err != nil {
		t.Fatalf("Last of an empty subject: ok %v, %v", ok, err)
	}
	w := chunkstream.NewWriter(env.JS, chunkstream.Config{Subject: "runs.l", Delay: time.Hour}, "r")
	_, _ = w.Write([]byte("abc"))
	if err := w.Failed("c", "m"); err != nil {
		t.Fatal(err)
	}
	c, ok, err := chunkstream.Last(ctx, env.JS, stream, "runs.l")
	if !ok || err != nil || c.Run != "r" || c.End != chunkstream.EndFailed || c.Offset != 3 {
		t.Fatalf("Last = %+v, %v, %v; want r failed at 3", c, ok, err)
	}
	if err := chunkstream.Purge(ctx, env.JS, stream, "runs.l"); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := chunkstream.Last(ctx, env.JS, stream, "runs.l"); ok || err != nil {
		t.Fatalf("Last after Purge: ok %v, %v", ok, err)
	}
}
