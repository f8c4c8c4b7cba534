// Package blobtest is the contract every blob store of Butakero passes:
// objstore (the JetStream Object Store) and s3blob (S3). A store's own
// tests call Run with a constructor of fresh, empty stores.
package blobtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/butakero/butakero/platform/blob"
)

// BigSize is the size of the large blob the suite streams: more than two
// 5 MiB parts, and not a multiple of any chunk or part size.
const BigSize = 12<<20 + 4099

// timeout bounds each case's store calls.
const timeout = 3 * time.Minute

// Run runs the contract against stores made by newStore, which returns a
// fresh, empty store for each case and cleans it up with t.
func Run(t *testing.T, newStore func(t *testing.T) blob.Store) {
	cases := []struct {
		name string
		run  func(t *testing.T, ctx context.Context, s blob.Store)
	}{
		{"small blob round trip", testSmall},
		{"multi-MB blob streamed both ways", testBig},
		{"ranges of a blob written in uneven reads", testRanges},
		{"ranges of blobs written at the same time", testRangesInterleaved},
		{"empty blob", testEmpty},
		{"missing key is not found", testMissing},
		{"overwrite replaces the blob", testOverwrite},
		{"failed reader leaves nothing new", testFailedReader},
		{"cancelled put leaves nothing new", testCancelled},
		{"delete", testDelete},
		{"list by prefix", testList},
		{"location names the key", testLocation},
		{"ping", func(t *testing.T, ctx context.Context, s blob.Store) {
			if err := s.Ping(ctx); err != nil {
				t.Fatalf("Ping: %v", err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			tc.run(t, ctx, newStore(t))
		})
	}
}

func testSmall(t *testing.T, ctx context.Context, s blob.Store) {
	const key = "audio/small-song_1.dca"
	body := bytes.Repeat([]byte("DCA1 frame "), 100)
	meta := map[string]string{"title": "A small song", "duration_ms": "1234", "song_id": "small-song_1"}
	info, err := s.Put(ctx, key, "audio/x-dca", meta, onlyReader{bytes.NewReader(body)})
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	checkInfo(t, "Put", info, key, int64(len(body)), "audio/x-dca", s.Location(key))
	st, err := s.Stat(ctx, key)
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	checkInfo(t, "Stat", st, key, int64(len(body)), "audio/x-dca", s.Location(key))
	if st.Digest != info.Digest {
		t.Errorf("Stat digest %q, Put digest %q", st.Digest, info.Digest)
	}
	got, oi := read(t, ctx, s, key)
	checkInfo(t, "Open", oi, key, int64(len(body)), "audio/x-dca", s.Location(key))
	if !bytes.Equal(got, body) {
		t.Errorf("read back %d bytes that differ from the %d put", len(got), len(body))
	}
}

func testBig(t *testing.T, ctx context.Context, s blob.Store) {
	const key = "staging/op-big_1.webm"
	info, err := s.Put(ctx, key, "audio/webm", nil, &patternReader{size: BigSize})
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if info.Size != BigSize {
		t.Errorf("Put says %d bytes, want %d", info.Size, BigSize)
	}
	rc, oi, err := s.Open(ctx, key)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer rc.Close()
	if oi.Size != BigSize {
		t.Errorf("Open says %d bytes, want %d", oi.Size, BigSize)
	}
	// Compare as a stream, through a small buffer: the test holds no copy.
	h := sha256.New()
	n, err := io.CopyBuffer(h, rc, make([]byte, 32<<10))
	if err != nil {
		t.Fatalf("read after %d bytes: %v", n, err)
	}
	want := sha256.New()
	_, _ = io.Copy(want, &patternReader{size: BigSize})
	if n != BigSize || !bytes.Equal(h.Sum(nil), want.Sum(nil)) {
		t.Errorf("read back %d bytes (want %d) with a different content", n, BigSize)
	}
}

// rangeSize is the size of the blob the range cases read: a few of the
// object store's 128 KiB chunks and a remainder.
const rangeSize = 3<<17 + 12345

// unevenPieces are the sizes of the Reads a writer returns in the range
// cases, over and over: the object store then makes chunks of those sizes.
var unevenPieces = []int{1, 1000, 70001, 131072, 200000, 4096}

func testRanges(t *testing.T, ctx context.Context, s blob.Store) {
	const key = "audio/ranges.dca"
	if _, err := s.Put(ctx, key, "audio/x-dca", nil, &unevenReader{r: &patternReader{size: rangeSize}}); err != nil {
		t.Fatalf("Put: %v", err)
	}
	checkRanges(t, ctx, s, key, rangeSize)
	t.Run("missing key", func(t *testing.T) {
		if rc, _, err := s.OpenRange(ctx, "audio/never-stored.dca", 10, 10); !errors.Is(err, blob.ErrNotFound) {
			if rc != nil {
				rc.Close()
			}
			t.Errorf("OpenRange of a missing key: %v, want blob.ErrNotFound", err)
		}
	})
	t.Run("suffix of a multi-MB blob", func(t *testing.T) {
		const big = "staging/op-big-range.webm"
		if _, err := s.Put(ctx, big, "audio/webm", nil, &patternReader{size: BigSize}); err != nil {
			t.Fatalf("Put: %v", err)
		}
		checkRange(t, ctx, s, big, BigSize, BigSize-100, 100)
		checkRange(t, ctx, s, big, BigSize, BigSize/2, 300_000)
	})
}

func testRangesInterleaved(t *testing.T, ctx context.Context, s blob.Store) {
	// Each writer gives a piece, then waits for the other to give one, so
	// the two Puts are in flight together all along.
	keys := []string{"audio/interleaved-a.dca", "audio/interleaved-b.dca"}
	readers := turnReaders(ctx, rangeSize)
	errs := make(chan error, len(keys))
	for i, key := range keys {
		r := readers[i]
		go func() {
			_, err := s.Put(ctx, key, "audio/x-dca", nil, r)
			errs <- err
		}()
	}
	for range keys {
		if err := <-errs; err != nil {
			t.Fatalf("Put: %v", err)
		}
	}
	for _, key := range keys {
		t.Run(key, func(t *testing.T) { checkRanges(t, ctx, s, key, rangeSize) })
	}
}

// checkRanges reads ranges of key, a patternReader blob of size bytes.
func checkRanges(t *testing.T, ctx context.Context, s blob.Store, key string, size int64) {
	t.Helper()
	cases := []struct {
		name   string
		off, n int64
	}{
		{"prefix", 0, 100},
		{"whole", 0, -1},
		{"from 0, longer than the blob", 0, size + 10},
		{"inside the first piece", 1, 500},
		{"across chunks", 1<<17 - 50, 100},
		{"mid, long", 70_000, 250_000},
		{"suffix", size - 100, 100},
		{"to the end", size - 1000, -1},
		{"last byte", size - 1, 1},
		{"past the end is cut", size - 10, 100},
		{"at the end", size, 10},
		{"beyond the end", size + 5, -1},
		{"empty range", 500, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { checkRange(t, ctx, s, key, size, tc.off, tc.n) })
	}
}

// checkRange reads n bytes of key from off and compares them with the
// pattern the blob of size bytes was written with.
func checkRange(t *testing.T, ctx context.Context, s blob.Store, key string, size, off, n int64) {
	t.Helper()
	rc, info, err := s.OpenRange(ctx, key, off, n)
	if err != nil {
		t.Fatalf("OpenRange(%d, %d): %v", off, n, err)
	}
	defer rc.Close()
	if info.Key != key || info.Size != size {
		t.Errorf("OpenRange(%d, %d) Info = %+v, want key %q and the whole size %d", off, n, info, key, size)
	}
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("OpenRange(%d, %d): read: %v", off, n, err)
	}
	end := size
	if n >= 0 && off+n < size {
		end = off + n
	}
	var want []byte
	if off < end {
		want = make([]byte, end-off)
		p := &patternReader{size: end, off: off}
		if _, err := io.ReadFull(p, want); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, want) {
		t.Errorf("OpenRange(%d, %d) read %d bytes, want %d (equal: %v)", off, n, len(got), len(want), bytes.Equal(got, want))
	}
}

func testEmpty(t *testing.T, ctx context.Context, s blob.Store) {
	const key = "staging/op-empty.m4a"
	info, err := s.Put(ctx, key, "audio/mp4", nil, onlyReader{strings.NewReader("")})
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if info.Size != 0 {
		t.Errorf("size %d, want 0", info.Size)
	}
	got, _ := read(t, ctx, s, key)
	if len(got) != 0 {
		t.Errorf("read back %d bytes, want none", len(got))
	}
	checkRange(t, ctx, s, key, 0, 0, -1)
	checkRange(t, ctx, s, key, 0, 0, 10)
}

func testMissing(t *testing.T, ctx context.Context, s blob.Store) {
	const key = "audio/never-stored.dca"
	if rc, _, err := s.Open(ctx, key); !errors.Is(err, blob.ErrNotFound) {
		if rc != nil {
			rc.Close()
		}
		t.Errorf("Open of a missing key: %v, want blob.ErrNotFound", err)
	}
	if _, err := s.Stat(ctx, key); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Stat of a missing key: %v, want blob.ErrNotFound", err)
	}
}

func testOverwrite(t *testing.T, ctx context.Context, s blob.Store) {
	const key = "audio/overwritten.dca"
	put(t, ctx, s, key, []byte("the first version, which is longer"))
	second := []byte("second")
	info := put(t, ctx, s, key, second)
	if info.Size != int64(len(second)) {
		t.Errorf("Put says %d bytes, want %d", info.Size, len(second))
	}
	if got, _ := read(t, ctx, s, key); !bytes.Equal(got, second) {
		t.Errorf("read back %q, want %q", got, second)
	}
}

func testFailedReader(t *testing.T, ctx context.Context, s blob.Store) {
	boom := errors.New("the source broke")
	cases := []struct {
		name     string
		key      string
		previous []byte // stored before the failed Put, nil for none
		failAt   int64
	}{
		{"new key, fails at once", "staging/fail-at-once.m4a", nil, 0},
		{"new key, fails within the first part", "staging/fail-early.m4a", nil, 64 << 10},
		{"new key, fails after several parts", "staging/fail-late.m4a", nil, 11 << 20},
		{"existing key keeps its blob", "audio/kept.dca", []byte("the good DCA"), 6 << 20},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.previous != nil {
				put(t, ctx, s, tc.key, tc.previous)
			}
			r := &failingReader{r: &patternReader{size: BigSize}, after: tc.failAt, err: boom}
			if _, err := s.Put(ctx, tc.key, "audio/mp4", nil, r); err == nil {
				t.Fatal("Put of a failing reader succeeded")
			} else if !errors.Is(err, boom) {
				t.Errorf("Put error %v does not wrap the reader's", err)
			}
			checkUnchanged(t, ctx, s, tc.key, tc.previous)
		})
	}
}

func testCancelled(t *testing.T, ctx context.Context, s blob.Store) {
	cases := []struct {
		name     string
		key      string
		previous []byte
	}{
		{"new key", "staging/cancelled.webm", nil},
		{"existing key keeps its blob", "audio/cancelled-kept.dca", []byte("still here")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.previous != nil {
				put(t, ctx, s, tc.key, tc.previous)
			}
			pctx, cancel := context.WithCancel(ctx)
			defer cancel()
			// The reader cancels the Put's context mid-stream, past the
			// first 5 MiB part, then keeps giving data.
			r := &failingReader{r: &patternReader{size: BigSize}, after: 7 << 20, cancel: cancel}
			if _, err := s.Put(pctx, tc.key, "audio/webm", nil, r); err == nil {
				t.Fatal("Put whose context was cancelled succeeded")
			}
			checkUnchanged(t, ctx, s, tc.key, tc.previous)
		})
	}
}

func testDelete(t *testing.T, ctx context.Context, s blob.Store) {
	const key = "staging/deleted.ogg"
	put(t, ctx, s, key, []byte("staged audio"))
	if err := s.Delete(ctx, key); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.Stat(ctx, key); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Stat after Delete: %v, want blob.ErrNotFound", err)
	}
	if err := s.Delete(ctx, key); err != nil {
		t.Errorf("Delete of a missing key: %v, want nil", err)
	}
}

func testList(t *testing.T, ctx context.Context, s blob.Store) {
	if got, err := s.List(ctx, "staging/"); err != nil || len(got) != 0 {
		t.Fatalf("List of an empty store: %v, %v; want nothing", got, err)
	}
	before := time.Now().Add(-time.Minute)
	put(t, ctx, s, "staging/a.m4a", []byte("staged a"))
	put(t, ctx, s, "staging/b.webm", []byte("staged bb"))
	put(t, ctx, s, "audio/a.dca", []byte("a dca"))
	got, err := s.List(ctx, "staging/")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	sizes := map[string]int64{}
	for _, info := range got {
		sizes[info.Key] = info.Size
		if info.Modified.Before(before) || info.Modified.After(time.Now().Add(time.Minute)) {
			t.Errorf("%s modified %s, want about now", info.Key, info.Modified)
		}
	}
	if want := map[string]int64{"staging/a.m4a": 8, "staging/b.webm": 9}; fmt.Sprint(sizes) != fmt.Sprint(want) {
		t.Errorf("List(staging/) = %v, want %v", sizes, want)
	}
	if err := s.Delete(ctx, "staging/a.m4a"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.List(ctx, "staging/"); err != nil || len(got) != 1 || got[0].Key != "staging/b.webm" {
		t.Errorf("List after a delete: %v, %v; want staging/b.webm only", got, err)
	}
}

func testLocation(t *testing.T, ctx context.Context, s blob.Store) {
	const key = "audio/located.dca"
	loc := s.Location(key)
	if !strings.HasSuffix(loc, "/"+key) || !strings.Contains(loc, "://") {
		t.Errorf("Location(%q) = %q: want a URL ending in the key", key, loc)
	}
	if s.Location("audio/other.dca") == loc {
		t.Error("two keys have one location")
	}
	if info := put(t, ctx, s, key, []byte("x")); info.Location != loc {
		t.Errorf("Put's Info.Location %q, Location %q", info.Location, loc)
	}
}

func put(t *testing.T, ctx context.Context, s blob.Store, key string, body []byte) blob.Info {
	t.Helper()
	info, err := s.Put(ctx, key, "application/octet-stream", nil, onlyReader{bytes.NewReader(body)})
	if err != nil {
		t.Fatalf("Put %s: %v", key, err)
	}
	return info
}

func read(t *testing.T, ctx context.Context, s blob.Store, key string) ([]byte, blob.Info) {
	t.Helper()
	rc, info, err := s.Open(ctx, key)
	if err != nil {
		t.Fatalf("Open %s: %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return b, info
}

// checkUnchanged checks that key holds previous, or nothing when nil.
func checkUnchanged(t *testing.T, ctx context.Context, s blob.Store, key string, previous []byte) {
	t.Helper()
	if previous == nil {
		if info, err := s.Stat(ctx, key); !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("after the failed Put, Stat gives %+v, %v: want blob.ErrNotFound", info, err)
		}
		if rc, _, err := s.Open(ctx, key); !errors.Is(err, blob.ErrNotFound) {
			if rc != nil {
				rc.Close()
			}
			t.Errorf("after the failed Put, Open gives %v: want blob.ErrNotFound", err)
		}
		return
	}
	if got, info := read(t, ctx, s, key); !bytes.Equal(got, previous) || info.Size != int64(len(previous)) {
		t.Errorf("after the failed Put the key holds %d bytes %.40q, want the previous %q", len(got), got, previous)
	}
}

func checkInfo(t *testing.T, what string, info blob.Info, key string, size int64, ct, loc string) {
	t.Helper()
	if info.Key != key || info.Size != size || info.ContentType != ct || info.Location != loc {
		t.Errorf("%s Info = %+v, want key %q, size %d, content type %q, location %q", what, info, key, size, ct, loc)
	}
	if info.Digest == "" {
		t.Errorf("%s Info has no digest", what)
	}
}

// onlyReader hides every method but Read (a bytes.Reader's Seek and
// WriteTo included), so the store sees a plain stream.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// patternReader yields size bytes of a fixed pattern, made as it is read.
type patternReader struct {
	size, off int64
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.off >= p.size {
		return 0, io.EOF
	}
	n := int64(len(b))
	if rest := p.size - p.off; n > rest {
		n = rest
	}
	for i := range n {
		x := p.off + i
		b[i] = byte(x*31 + x>>9 + x>>17)
	}
	p.off += n
	return int(n), nil
}

// unevenReader passes r through in Reads of unevenPieces' sizes.
type unevenReader struct {
	r io.Reader
	i int
}

func (u *unevenReader) Read(p []byte) (int, error) {
	piece := unevenPieces[u.i%len(unevenPieces)]
	u.i++
	return u.r.Read(p[:min(len(p), piece)])
}

// turnReaders are two readers of size pattern bytes each that take turns:
// one Read of at most 50 000 bytes, then the other's, until either reaches
// its end, after which the other reads on alone.
func turnReaders(ctx context.Context, size int64) [2]*turnReader {
	var rs [2]*turnReader
	for i := range rs {
		rs[i] = &turnReader{ctx: ctx, r: &patternReader{size: size}, mine: make(chan struct{}, 1), done: make(chan struct{})}
	}
	for i, r := range rs {
		r.theirs, r.otherDone = rs[1-i].mine, rs[1-i].done
	}
	rs[0].mine <- struct{}{}
	return rs
}

type turnReader struct {
	ctx          context.Context
	r            io.Reader
	mine, theirs chan struct{} // the one turn, held by one reader at a time
	done         chan struct{} // closed at this reader's end
	otherDone    chan struct{}
	ended        bool
}

func (t *turnReader) Read(p []byte) (int, error) {
	select {
	case <-t.mine:
	case <-t.otherDone:
	case <-t.ctx.Done():
		return 0, t.ctx.Err()
	}
	n, err := t.r.Read(p[:min(len(p), 50_000)])
	if err != nil && !t.ended {
		t.ended = true
		close(t.done)
	}
	select {
	case t.theirs <- struct{}{}:
	default: // the other has ended and left the turn there
	}
	return n, err
}

// failingReader passes r through until after bytes, then fails with err,
// or calls cancel and keeps passing r through.
type failingReader struct {
	r      io.Reader
	after  int64
	n      int64
	err    error
	cancel context.CancelFunc
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n >= f.after {
		if f.cancel != nil {
			f.cancel()
		} else {
			return 0, fmt.Errorf("after %d bytes: %w", f.n, f.err)
		}
	}
	if rest := f.after - f.n; rest > 0 && int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := f.r.Read(p)
	f.n += int64(n)
	return n, err
}
