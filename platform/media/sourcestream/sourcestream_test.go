package sourcestream_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/butakero/butakero/platform/media/sourcestream"
	"github.com/butakero/butakero/platform/testkit/audiofixture"
	"github.com/butakero/butakero/platform/testkit/natstest"
)

// TestRuns writes runs of an operation's source and reads them back as a
// reader of each run would: a whole run is read byte for byte, even when
// the reader starts before the writer has written anything; a failed one
// ends in ErrRunFailed; and a reader of a run that a newer run replaced
// stops with ErrRunGone, never reading the newer run's bytes as its own.
func TestRuns(t *testing.T) {
	env := natstest.Start(t)
	ctx := context.Background()
	natstest.Open(ctx, t, sourcestream.Ensure, env.JS, 1)
	src := bytes.Repeat([]byte("0123456789abcdef"), 20000) // 320 KB: several chunks

	t.Run("a whole run reads back as written", func(t *testing.T) {
		r, err := sourcestream.NewReader(ctx, env.JS, "op1", "run1", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan []byte, 1)
		errc := make(chan error, 1)
		go func() {
			b, err := io.ReadAll(r)
			got <- b
			errc <- err
		}()
		w, err := sourcestream.Begin(ctx, env.JS, "op1", "run1")
		if err != nil {
			t.Fatal(err)
		}
		for off := 0; off < len(src); off += 1000 {
			if _, err := w.Write(src[off:min(off+1000, len(src))]); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Whole(int64(len(src))); err != nil {
			t.Fatal(err)
		}
		if b, err := <-got, <-errc; err != nil || !bytes.Equal(b, src) {
			t.Fatalf("read %d bytes (%v), want the %d written", len(b), err, len(src))
		}
		last, ok, err := sourcestream.Last(ctx, env.JS, "op1")
		if err != nil || !ok || last.Run != "run1" || last.End != sourcestream.EndWhole || last.Size != int64(len(src)) {
			t.Fatalf("Last = %+v %v %v, want run1 whole", last, ok, err)
		}
	})

	t.Run("a failed run fails its reader", func(t *testing.T) {
		w, err := sourcestream.Begin(ctx, env.JS, "op2", "run1")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write(src[:5000])
		if err := w.Failed("network_error", "the network failed"); err != nil {
			t.Fatal(err)
		}
		r, _ := sourcestream.NewReader(ctx, env.JS, "op2", "run1", time.Minute)
		b, err := io.ReadAll(r)
		if !errors.Is(err, sourcestream.ErrRunFailed) || len(b) != 5000 {
			t.Fatalf("read %d bytes, %v; want 5000 then ErrRunFailed", len(b), err)
		}
	})

	t.Run("a newer run ends the older run's reader", func(t *testing.T) {
		old, err := sourcestream.Begin(ctx, env.JS, "op3", "dead")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = old.Write(src[:100000])
		_ = old.Err()
		r, _ := sourcestream.NewReader(ctx, env.JS, "op3", "dead", time.Minute)
		head := make([]byte, 1000)
		if _, err := io.ReadFull(r, head); err != nil {
			t.Fatalf("the dead run's first bytes: %v", err)
		}
		// The dead run's writer never ends: its fetcher died. The retry
		// is a new run, which purges the old one.
		retry, err := sourcestream.Begin(ctx, env.JS, "op3", "retry")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = retry.Write(src)
		if err := retry.Whole(int64(len(src))); err != nil {
			t.Fatal(err)
		}
		rest, err := io.ReadAll(r)
		if !errors.Is(err, sourcestream.ErrRunGone) {
			t.Fatalf("the dead run's reader got %v after %d more bytes, want ErrRunGone", err, len(rest))
		}
		if int64(len(head)+len(rest)) > 100000 {
			t.Fatalf("the dead run's reader read %d bytes, more than its run held", len(head)+len(rest))
		}
	})
}

// TestStreamable tells the sources ffmpeg can decode as they arrive from
// those it cannot, on files ffmpeg makes: an M4A with its index first
// (faststart) and WebM are; an M4A with its index last, MP3 and WAV are
// not.
func TestStreamable(t *testing.T) {
	dir := t.TempDir()
	const d = 5 * time.Second
	cases := []struct {
		spec audiofixture.Spec
		want bool
	}{
		{audiofixture.M4A("fast.m4a", d), true},
		{audiofixture.Spec{Name: "late.m4a", Duration: d, Args: []string{"-c:a", "aac", "-b:a", "128k"}}, false},
		{audiofixture.Spec{Name: "song.webm", Duration: d, Args: []string{"-c:a", "libopus", "-b:a", "96k"}}, true},
		{audiofixture.Spec{Name: "song.mp3", Duration: d, Args: []string{"-c:a", "libmp3lame"}}, false},
		{audiofixture.Spec{Name: "song.wav", Duration: d, Args: []string{"-c:a", "pcm_s16le"}}, false},
	}
	for _, tc := range cases {
		t.Run(tc.spec.Name, func(t *testing.T) {
			b, err := os.ReadFile(audiofixture.Make(t, dir, tc.spec))
			if err != nil {
				t.Fatal(err)
			}
			// Feed it as it would arrive, a few bytes more each time.
			for n := 0; ; n = min(n+4096, len(b)) {
				decided, ok, need, reason := sourcestream.Streamable(b[:n])
				if decided && (!ok || n >= need) {
					if ok != tc.want {
						t.Fatalf("Streamable after %d bytes = %v (%s), want %v", n, ok, reason, tc.want)
					}
					t.Logf("decided after %d of %d bytes: %v (%s)", n, len(b), ok, reason)
					return
				}
				if n == len(b) {
					// The whole file is shorter than the header wanted:
					// decided on what there is.
					if decided && ok == tc.want {
						return
					}
					if tc.want {
						t.Fatalf("undecided on the whole file (need %d of %d)", need, len(b))
					}
					return
				}
			}
		})
	}
}
