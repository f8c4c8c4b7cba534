package sourcestream

import (
	"context"
	"time"

	"github.com/butakero/butakero/platform/media/chunkstream"
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
)

// Writer publishes one run of an operation's source. Publishing never fails
// the download: the source is staged whatever becomes of its run, and an
// encoder that cannot read the run to its end encodes the staged blob. The
// first publish error stops the run's publishing and is kept (Err); Write
// always succeeds. A Writer is safe for concurrent use (its own timer
// flushes).
type Writer struct {
	w *chunkstream.Writer
}

// Begin starts run run (an id no other run of the operation has) of
// operation opID's source: the subject is purged first, so that what an
// earlier attempt left is gone and its readers stop.
func Begin(ctx context.Context, js jetstream.JetStream, opID, run string) (*Writer, error) {
	if err := Purge(ctx, js, opID); err != nil {
		return nil, err
	}
	return &Writer{w: chunkstream.NewWriter(js, chunkstream.Config{
		Subject: Subject(opID),
		// The operation's id leads the message ids, so that they stay
		// unique in the stream whatever the runs are named.
		IDPrefix: opID + ".",
		MaxBytes: chunkBytes,
		Delay:    chunkDelay,
		Window:   window,
	}, run)}, nil
}

// Run is the run's id.
func (w *Writer) Run() string { return w.w.Run() }

// Write adds the source's next bytes.
func (w *Writer) Write(p []byte) (int, error) { return w.w.Write(p) }

// Whole ends the run: the source, size bytes, is staged. It returns the
// run's publish error, if any (the run's readers then stop on their own).
func (w *Writer) Whole(size int64) error {
	return w.w.End(func(sent int64) chunkstream.Chunk {
		if sent != size {
			// Not all of it went out: say failed rather than whole.
			return chunkstream.Chunk{End: EndFailed, Code: "internal", Message: "the source's chunks are incomplete"}
		}
		return chunkstream.Chunk{End: EndWhole, Size: size}
	})
}

// Failed ends the run with a failure: its readers stop.
func (w *Writer) Failed(code, message string) error { return w.w.Failed(code, message) }

// Err is the first publish error, if any.
func (w *Writer) Err() error { return w.w.Err() }
