package framestream

import (
	"context"
	"time"

	"github.com/butakero/butakero/platform/media/chunkstream"
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
	w *chunkstream.Writer
}

// NewWriter starts run run (an id no other run of the song has) of song
// songID's DCA on js.
func NewWriter(js jetstream.JetStream, songID, run string) *Writer {
	return &Writer{w: chunkstream.NewWriter(js, chunkstream.Config{
		Subject: Subject(songID),
		// Run ids (the encoder's nuids) are unique across songs: the
		// message ids need no prefix.
		IDPrefix: "",
		// The header and the first frame.
		FirstWrites: 2,
		MaxWrites:   chunkFrames,
		Delay:       chunkDelay,
		Window:      window,
	}, run)}
}

// Run is the run's id.
func (w *Writer) Run() string { return w.w.Run() }

// Write adds the DCA's header or one frame.
func (w *Writer) Write(p []byte) (int, error) { return w.w.Write(p) }

// Flush publishes what is pending and waits for every chunk's answer.
func (w *Writer) Flush(ctx context.Context) error { return w.w.Flush() }

// Stored ends the run: its DCA, size bytes, is in the blob store. It
// returns the run's publish error, if any.
func (w *Writer) Stored(ctx context.Context, size int64) error {
	return w.w.End(func(int64) chunkstream.Chunk { return chunkstream.Chunk{End: EndStored, Size: size} })
}

// Failed ends the run with a failure: its readers stop, the DCA is not
// stored. code and message are the failure's (an events code and what the
// user reads).
func (w *Writer) Failed(ctx context.Context, code, message string) error {
	return w.w.Failed(code, message)
}

// Err is the first publish error, if any.
func (w *Writer) Err() error { return w.w.Err() }
