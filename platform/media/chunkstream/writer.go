package chunkstream

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// publishTimeout bounds the wait for one publish's answer.
const publishTimeout = 10 * time.Second

// Config says where a Writer publishes its run and how it cuts the run's
// bytes into chunks. A chunk goes out as soon as one of its rules says so.
type Config struct {
	// Subject is the subject of the run's messages.
	Subject string
	// IDPrefix comes first in every message's Nats-Msg-Id, before
	// "<run>.<offset>": the stream keeps one message of an id it has seen
	// within its Duplicates window, stream-wide, so runs of different
	// subjects whose ids may be the same need different prefixes.
	IDPrefix string

	// MaxBytes, when above 0, is the most a chunk holds: a chunk goes out
	// once full, and a Write that would overfill it is split across
	// chunks.
	MaxBytes int
	// MaxWrites, when above 0: a chunk goes out once it holds MaxWrites
	// writes.
	MaxWrites int
	// FirstWrites, when above 0: the run's first chunk goes out once it
	// holds FirstWrites writes, and not on Delay before (a header that is
	// only useful with what follows it).
	FirstWrites int
	// Delay is how long after its first byte a chunk that no other rule
	// sent goes out: a run whose bytes come slowly still moves.
	Delay time.Duration

	// Window is how many chunks may await the server's answer at once (at
	// least 1): a Write waits for the oldest answer beyond that.
	Window int
}

// Writer publishes one run. Publishing never fails the writer's user: what
// the run carries is kept elsewhere too, and a reader that loses the run
// reads that. Write always succeeds; the first publish error stops the
// run's publishing and is kept (Err). A Writer is safe for concurrent use
// (its own timer flushes).
type Writer struct {
	js  jetstream.JetStream
	cfg Config
	run string

	mu      sync.Mutex
	pending []byte
	writes  int   // writes in pending
	offset  int64 // of pending's first byte
	sent    bool  // a chunk went out
	timer   *time.Timer
	futures []jetstream.PubAckFuture
	err     error
	closed  bool
}

// NewWriter starts run run (an id no other run of the subject has) on js,
// as cfg says.
func NewWriter(js jetstream.JetStream, cfg Config, run string) *Writer {
	cfg.Window = max(cfg.Window, 1)
	return &Writer{js: js, cfg: cfg, run: run}
}

// Run is the run's id.
func (w *Writer) Run() string { return w.run }

// Write adds the run's next bytes. It never fails (see Writer).
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	total := len(p)
	if w.closed || w.err != nil {
		w.offset += int64(total)
		return total, nil
	}
	w.writes++
	for len(p) > 0 {
		n := len(p)
		if w.cfg.MaxBytes > 0 {
			n = min(n, w.cfg.MaxBytes-len(w.pending))
		}
		w.pending = append(w.pending, p[:n]...)
		p = p[n:]
		if w.cfg.MaxBytes > 0 && len(w.pending) >= w.cfg.MaxBytes {
			w.flushLocked()
			if w.err != nil {
				// The full chunk stays pending, never to go out: the
				// rest is dropped as a write after the error is.
				w.offset += int64(len(p))
				return total, nil
			}
		}
	}
	first := w.cfg.FirstWrites > 0 && !w.sent
	switch {
	case first && w.writes >= w.cfg.FirstWrites,
		!first && w.cfg.MaxWrites > 0 && w.writes >= w.cfg.MaxWrites:
		w.flushLocked()
	case len(w.pending) > 0 && w.timer == nil:
		w.timer = time.AfterFunc(w.cfg.Delay, w.flushLate)
	}
	return total, nil
}

// flushLate sends what waited Delay.
func (w *Writer) flushLate() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.timer = nil
	if w.closed || w.cfg.FirstWrites > 0 && !w.sent {
		return
	}
	w.flushLocked()
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
	w.pending = make([]byte, 0, max(w.cfg.MaxBytes, len(data)))
	off := w.offset
	w.offset += int64(len(data))
	w.writes = 0
	w.sent = true
	w.publishLocked(Chunk{Run: w.run, Offset: off, Data: data})
}

// publishLocked sends c, first waiting for the oldest answer when Window
// chunks await theirs.
func (w *Writer) publishLocked(c Chunk) {
	for len(w.futures) >= w.cfg.Window && w.err == nil {
		w.err = w.wait(w.futures[0])
		w.futures = w.futures[1:]
	}
	if w.err != nil {
		return
	}
	f, err := w.js.PublishMsgAsync(message(w.cfg.Subject, w.cfg.IDPrefix, c))
	if err != nil {
		w.err = fmt.Errorf("chunkstream: publish %s at %d: %w", w.cfg.Subject, c.Offset, err)
		return
	}
	w.futures = append(w.futures, f)
}

func (w *Writer) wait(f jetstream.PubAckFuture) error {
	select {
	case <-f.Ok():
		return nil
	case err := <-f.Err():
		return fmt.Errorf("chunkstream: publish %s: %w", w.cfg.Subject, err)
	case <-time.After(publishTimeout):
		return errors.New("chunkstream: publish " + w.cfg.Subject + ": no answer")
	}
}

// Flush publishes what is pending and waits for every chunk's answer. It
// returns the run's publish error, if any.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.flushLocked()
	return w.drainLocked()
}

// drainLocked waits for every answer still awaited; w.mu is held.
func (w *Writer) drainLocked() error {
	for _, f := range w.futures {
		if w.err == nil {
			w.err = w.wait(f)
		}
	}
	w.futures = nil
	return w.err
}

// End ends the run: what is pending goes out, then the end message that
// end makes, given the run's length (the bytes that went out), and End
// waits for every answer. Its Run and Offset are the writer's; End must
// be set. It returns the run's publish error, if any. Writes after End
// are dropped, and so is an End after the first.
func (w *Writer) End(end func(length int64) Chunk) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return w.err
	}
	w.flushLocked()
	w.closed = true
	c := end(w.offset)
	c.Run, c.Offset = w.run, w.offset
	w.publishLocked(c)
	return w.drainLocked()
}

// Failed ends the run with a failure (EndFailed): its readers stop. code
// and message are the failure's.
func (w *Writer) Failed(code, message string) error {
	return w.End(func(int64) Chunk { return Chunk{End: EndFailed, Code: code, Message: message} })
}

// Err is the first publish error, if any.
func (w *Writer) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}
