package sourcestream

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/butakero/butakero/platform/media/framestream"
	"github.com/nats-io/nats.go/jetstream"
)

const (
	// chunkBytes is the most one chunk holds; a chunk goes out once it
	// is full, or chunkDelay after its first byte when the source comes
	// slowly.
	chunkBytes = 64 << 10
	chunkDelay = 100 * time.Millisecond
	// window is how many chunks may await the server's answer at once:
	// at most window × chunkBytes of the source are held.
	window = 8
	// publishTimeout bounds the wait for one answer.
	publishTimeout = 10 * time.Second
)

// Writer publishes one run of an operation's source. Publishing never fails
// the download: the source is staged whatever becomes of its run, and an
// encoder that cannot read the run to its end encodes the staged blob. The
// first publish error stops the run's publishing and is kept (Err); Write
// always succeeds. A Writer is safe for concurrent use (its own timer
// flushes).
type Writer struct {
	js   jetstream.JetStream
	opID string
	run  string

	mu      sync.Mutex
	pending []byte
	offset  int64 // of pending's first byte
	timer   *time.Timer
	futures []jetstream.PubAckFuture
	err     error
	closed  bool
}

// Begin starts run run (an id no other run of the operation has) of
// operation opID's source: the subject is purged first, so that what an
// earlier attempt left is gone and its readers stop.
func Begin(ctx context.Context, js jetstream.JetStream, opID, run string) (*Writer, error) {
	w := &Writer{js: js, opID: opID, run: run}
	if err := Purge(ctx, js, opID); err != nil {
		return nil, err
	}
	return w, nil
}

// Run is the run's id.
func (w *Writer) Run() string { return w.run }

// Write adds the source's next bytes.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	total := len(p)
	if w.closed || w.err != nil {
		w.offset += int64(total)
		return total, nil
	}
	for len(p) > 0 {
		n := min(len(p), chunkBytes-len(w.pending))
		w.pending = append(w.pending, p[:n]...)
		p = p[n:]
		if len(w.pending) >= chunkBytes {
			w.flushLocked()
		}
	}
	if len(w.pending) > 0 && w.timer == nil {
		w.timer = time.AfterFunc(chunkDelay, w.flushLate)
	}
	return total, nil
}

func (w *Writer) flushLate() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.timer = nil
	if !w.closed {
		w.flushLocked()
	}
}

// flushLocked publishes pending as a chunk; w.mu is held.
func (w *Writer) flushLocked() {
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
	if len(w.pending) == 0 || w.err != nil {
		return
	}
	data := w.pending
	w.pending = make([]byte, 0, chunkBytes)
	off := w.offset
	w.offset += int64(len(data))
	w.publishLocked(framestream.Chunk{Run: w.run, Offset: off, Data: data})
}

func (w *Writer) publishLocked(c framestream.Chunk) {
	for len(w.futures) >= window && w.err == nil {
		w.err = wait(w.futures[0])
		w.futures = w.futures[1:]
	}
	if w.err != nil {
		return
	}
	f, err := w.js.PublishMsgAsync(message(w.opID, c))
	if err != nil {
		w.err = fmt.Errorf("sourcestream: publish %s at %d: %w", Subject(w.opID), c.Offset, err)
		return
	}
	w.futures = append(w.futures, f)
}

func wait(f jetstream.PubAckFuture) error {
	select {
	case <-f.Ok():
		return nil
	case err := <-f.Err():
		return fmt.Errorf("sourcestream: publish: %w", err)
	case <-time.After(publishTimeout):
		return errors.New("sourcestream: publish: no answer")
	}
}

// Whole ends the run: the source, size bytes, is staged. It returns the
// run's publish error, if any (the run's readers then stop on their own).
func (w *Writer) Whole(size int64) error {
	return w.end(framestream.Chunk{End: EndWhole, Size: size})
}

// Failed ends the run with a failure: its readers stop.
func (w *Writer) Failed(code, message string) error {
	return w.end(framestream.Chunk{End: EndFailed, Code: code, Message: message})
}

func (w *Writer) end(c framestream.Chunk) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return w.err
	}
	w.flushLocked()
	w.closed = true
	if c.End == EndWhole && c.Size != w.offset {
		// Not all of it went out: say failed rather than whole.
		c = framestream.Chunk{End: EndFailed, Code: "internal", Message: "the source's chunks are incomplete"}
	}
	c.Run, c.Offset = w.run, w.offset
	w.publishLocked(c)
	for _, f := range w.futures {
		if w.err == nil {
			w.err = wait(f)
		}
	}
	w.futures = nil
	return w.err
}

// Err is the first publish error, if any.
func (w *Writer) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}
