package framestream

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Chunking: the first chunk goes out with the first frame, the next ones
// every chunkFrames frames (about a second of audio), or chunkDelay after
// the oldest frame not yet sent when frames come slowly (a source that
// downloads slower than it plays).
const (
	chunkFrames = 50
	chunkDelay  = 250 * time.Millisecond
	// window is how many chunks may await the server's answer at once.
	window = 16
	// publishTimeout bounds the wait for one answer.
	publishTimeout = 10 * time.Second
)

// Writer publishes one run of a song's DCA. Each Write must be the DCA's
// header or one whole frame, as dcafile.Writer makes them; the writes are
// gathered into chunks.
//
// Publishing never fails the encode: the DCA is stored whatever becomes of
// its run, and a reader that loses the run reads the stored DCA. Write
// always succeeds; the first publish error stops the run's publishing and
// is kept (Err). A Writer is safe for concurrent use (its own timer
// flushes).
type Writer struct {
	js     jetstream.JetStream
	songID string
	run    string

	mu      sync.Mutex
	pending []byte
	frames  int       // frames in pending
	since   time.Time // when pending's first frame came
	offset  int64     // of pending's first byte
	writes  int
	sent    bool // a chunk went out
	timer   *time.Timer
	futures []jetstream.PubAckFuture
	err     error
	closed  bool
}

// NewWriter starts run run (an id no other run of the song has) of song
// songID's DCA on js.
func NewWriter(js jetstream.JetStream, songID, run string) *Writer {
	return &Writer{js: js, songID: songID, run: run}
}

// Run is the run's id.
func (w *Writer) Run() string { return w.run }

// Write adds the DCA's header or one frame.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || w.err != nil {
		w.offset += int64(len(p))
		return len(p), nil
	}
	if len(w.pending) == 0 {
		w.since = time.Now()
	}
	w.pending = append(w.pending, p...)
	w.writes++
	if w.writes > 1 {
		w.frames++
	}
	switch {
	case !w.sent && w.frames >= 1, w.frames >= chunkFrames:
		w.flushLocked()
	case w.timer == nil:
		w.timer = time.AfterFunc(chunkDelay, w.flushLate)
	}
	return len(p), nil
}

// flushLate sends what waited chunkDelay.
func (w *Writer) flushLate() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.timer = nil
	if !w.closed && w.frames > 0 {
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
	w.pending = make([]byte, 0, len(data))
	off := w.offset
	w.offset += int64(len(data))
	w.frames = 0
	w.sent = true
	w.publishLocked(Chunk{Run: w.run, Offset: off, Data: data})
}

// publishLocked sends c, first waiting for the oldest answer when window
// chunks await theirs.
func (w *Writer) publishLocked(c Chunk) {
	for len(w.futures) >= window && w.err == nil {
		w.err = wait(w.futures[0])
		w.futures = w.futures[1:]
	}
	if w.err != nil {
		return
	}
	f, err := w.js.PublishMsgAsync(message(w.songID, c))
	if err != nil {
		w.err = fmt.Errorf("framestream: publish %s at %d: %w", Subject(w.songID), c.Offset, err)
		return
	}
	w.futures = append(w.futures, f)
}

func wait(f jetstream.PubAckFuture) error {
	select {
	case <-f.Ok():
		return nil
	case err := <-f.Err():
		return fmt.Errorf("framestream: publish: %w", err)
	case <-time.After(publishTimeout):
		return errors.New("framestream: publish: no answer")
	}
}

// Flush publishes what is pending and waits for every chunk's answer.
func (w *Writer) Flush(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.flushLocked()
	return w.drainLocked()
}

func (w *Writer) drainLocked() error {
	for _, f := range w.futures {
		if w.err == nil {
			w.err = wait(f)
		}
	}
	w.futures = nil
	return w.err
}

// Stored ends the run: its DCA, size bytes, is in the blob store. It
// returns the run's publish error, if any.
func (w *Writer) Stored(ctx context.Context, size int64) error {
	return w.end(Chunk{End: EndStored, Size: size})
}

// Failed ends the run with a failure: its readers stop, the DCA is not
// stored. code and message are the failure's (an events code and what the
// user reads).
func (w *Writer) Failed(ctx context.Context, code, message string) error {
	return w.end(Chunk{End: EndFailed, Code: code, Message: message})
}

func (w *Writer) end(c Chunk) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return w.err
	}
	w.flushLocked()
	w.closed = true
	c.Run, c.Offset = w.run, w.offset
	w.publishLocked(c)
	return w.drainLocked()
}

// Err is the first publish error, if any.
func (w *Writer) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}
