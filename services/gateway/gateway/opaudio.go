package gateway

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/blob"
	"github.com/butakero/butakero/platform/media/framestream"
	"github.com/butakero/butakero/platform/media/oggopus"
	"github.com/butakero/butakero/platform/projection"
	"github.com/gofiber/fiber/v2"
)

// Waits of GET /v1/operations/{id}/dca and /ogg. A follower looks at the
// operation's state and the blob store only when the frame stream has been
// silent for idleCheck; audioWait bounds the wait for a song's first frame
// (an operation stays in progress at most MAX_ATTEMPTS × STAGE_TIMEOUT per
// stage), songPoll paces the wait for the operation to name its song (from
// an eighth of it, doubling).
const (
	idleCheck = time.Second
	audioWait = 30 * time.Minute
	songPoll  = 100 * time.Millisecond
)

// errAudioWait ends a follow that waited audioWait for a first frame.
var errAudioWait = errors.New("gateway: no frame came")

// operationDCA handles GET /v1/operations/{id}/dca: the operation's song as
// a DCA, from its first frames (see operationAudio).
func (s *server) operationDCA(c *fiber.Ctx) error { return s.operationAudio(c, false) }

// operationOgg handles GET /v1/operations/{id}/ogg: the same, muxed to Ogg
// Opus on the fly as /v1/songs/{id}/ogg is.
func (s *server) operationOgg(c *fiber.Ctx) error { return s.operationAudio(c, true) }

// operationAudio streams an operation's song. Once the operation knows its
// song (it waits for that), a song already stored is answered as
// /v1/songs/{id}/dca (or /ogg) answers it: whole, with Range and ETag.
// Otherwise it follows the song's DCA in the making on BUTAKERO_FRAMES
// (package framestream): the answer, 200 with a chunked body, starts with
// the run's first chunk (the header and the first frame) and goes on as
// the encoder makes the frames, until the DCA is stored. The song is
// followed, not the operation: an operation that waits for another's
// encode of the same song (one song, one encode) gets that encode's
// frames.
//
// An operation that fails (or fails to name a song) before the first
// frame answers 409 operation_failed with its reason; one whose encode
// fails mid-way ends the body without its last chunk, which a client sees
// as a broken transfer. A follower whose chunks were purged (the DCA got
// stored meanwhile) reads the rest from the stored DCA, from where it was,
// once it checked the stored DCA is the one its run made (the header names
// the run).
func (s *server) operationAudio(c *fiber.Ctx, ogg bool) error {
	opID := c.Params("id")
	if events.ValidOperationID(opID) != nil {
		return errorf(CodeBadRequest, "operation id must be 1 to 64 letters, digits, '-' or '_'")
	}
	c.Locals(localOperationID, opID)
	// The follow outlives the handler (fasthttp writes the body after it
	// returns) and ends when fasthttp closes the body.
	// A gateway that stops cuts its follows off, as a broken transfer the
	// client asks again for (another gateway, or this one restarted,
	// answers it).
	ctx, cancelCtx := context.WithTimeout(context.WithoutCancel(c.UserContext()), streamTimeout)
	stopOnExit := context.AfterFunc(s.life, cancelCtx)
	cancel := func() { stopOnExit(); cancelCtx() }
	keep := false
	defer func() {
		if !keep {
			cancel()
		}
	}()

	op, err := s.awaitSong(ctx, opID)
	if err != nil {
		return err
	}
	songID := op.SongID
	c.Locals(localSongID, songID)
	stored := func() error {
		if ogg {
			return s.storedOgg(c, songID)
		}
		return s.storedDCA(c, songID, false)
	}
	if ok, err := s.dcaStored(ctx, songID); err != nil {
		return err
	} else if ok {
		return stored()
	}

	f, err := framestream.Follow(ctx, s.js, songID)
	if err != nil {
		return internal(err)
	}
	s.metrics.Following(1)
	// A follow moves a song too: the budget is held until the body closes.
	release := s.memory.Hold(songID)
	first, isStored, err := s.firstChunk(ctx, f, opID, songID)
	if err != nil || isStored {
		f.Close()
		s.metrics.Following(-1)
		release()
		if isStored {
			return stored()
		}
		return err
	}
	body, err := newLiveBody(s, ctx, cancel, f, opID, songID, first)
	if err != nil {
		f.Close()
		s.metrics.Following(-1)
		release()
		return internal(err)
	}
	body.release = release
	keep = true
	c.Set(fiber.HeaderCacheControl, "no-store")
	if !ogg {
		c.Set(fiber.HeaderContentType, dcaContentType)
		return c.SendStream(body, -1)
	}
	c.Set(fiber.HeaderContentType, oggContentType)
	pr, pw := io.Pipe()
	muxed := make(chan struct{})
	go func() {
		defer close(muxed)
		pw.CloseWithError(oggopus.MuxDCA(pw, body, crc32.ChecksumIEEE([]byte(songID))))
	}()
	return c.SendStream(&oggBody{pr: pr, live: body, muxed: muxed}, -1)
}

// awaitSong returns the operation once it names its song. An unknown
// operation is 404; one that ended without a song, or failed, is 409.
func (s *server) awaitSong(ctx context.Context, opID string) (projection.Operation, error) {
	deadline := time.Now().Add(audioWait)
	// The recorder writes a URL's song into the operation a few
	// milliseconds after the request: look again soon, then every
	// songPoll (a search waits for the resolver).
	pause := songPoll / 8
	for {
		rctx, cancel := context.WithTimeout(ctx, storeTimeout)
		op, _, err := s.operation(rctx, opID, false)
		cancel()
		if err != nil {
			return projection.Operation{}, err
		}
		if failed := operationFailed(op); failed != nil {
			return projection.Operation{}, failed
		}
		if op.SongID != "" && events.ValidSongID(op.SongID) == nil {
			return op, nil
		}
		if op.Final() || time.Now().After(deadline) {
			return projection.Operation{}, errorf(CodeOperationFailed, "the operation names no song")
		}
		select {
		case <-ctx.Done():
			return projection.Operation{}, internal(ctx.Err())
		case <-time.After(pause):
		}
		pause = min(2*pause, songPoll)
	}
}

// operationFailed is the error of an operation that ended without its
// song stored, else nil.
func operationFailed(op projection.Operation) *Error {
	if !op.Final() || op.Status == projection.StatusSuccess {
		return nil
	}
	msg := op.Message
	if msg == "" {
		msg = "the operation ended without audio"
	}
	return errorf(CodeOperationFailed, "the operation "+op.Status+": "+msg)
}

// dcaStored reports whether song songID's DCA is in the blob store.
func (s *server) dcaStored(ctx context.Context, songID string) (bool, error) {
	sctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	_, err := s.blobs.Stat(sctx, blob.DCAKey(songID))
	if errors.Is(err, blob.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, internal(fmt.Errorf("stat DCA of %s: %w", songID, err))
	}
	return true, nil
}

// firstChunk waits for the start of a run of the song's DCA: a run's
// first chunk, or stored (the DCA got stored meanwhile), or the
// operation's failure. A run that fails is passed over: the operation
// may try again, with a new run, and its state says when it has failed
// for good. Chunks of a run whose start the stream no longer holds are
// passed over too.
func (s *server) firstChunk(ctx context.Context, f *framestream.Follower, opID, songID string) (framestream.Chunk, bool, error) {
	deadline := time.Now().Add(audioWait)
	for {
		ch, err := f.Next(ctx, idleCheck)
		switch {
		case errors.Is(err, framestream.ErrIdle):
			if ok, err := s.dcaStored(ctx, songID); err != nil || ok {
				return framestream.Chunk{}, ok, err
			}
			rctx, cancel := context.WithTimeout(ctx, storeTimeout)
			op, _, err := s.operation(rctx, opID, false)
			cancel()
			if err != nil {
				return framestream.Chunk{}, false, err
			}
			if failed := operationFailed(op); failed != nil {
				return framestream.Chunk{}, false, failed
			}
			if time.Now().After(deadline) {
				return framestream.Chunk{}, false, internal(errAudioWait)
			}
		case err != nil:
			return framestream.Chunk{}, false, internal(err)
		case ch.End == framestream.EndStored:
			return framestream.Chunk{}, true, nil
		case ch.End == "" && ch.Offset == 0:
			return ch, false, nil
		}
	}
}

// liveBody is the body of a followed DCA: the run's chunks as they come,
// then, should the run's chunks be purged under it (the DCA is stored),
// the stored DCA from where the run was. Its Read fails, ending the body
// abruptly, when the run fails, another run starts (the encode began
// again) or the operation fails.
type liveBody struct {
	s            *server
	ctx          context.Context
	cancel       context.CancelFunc
	f            *framestream.Follower
	release      func() // the memory budget's hold, once the body is returned
	opID, songID string
	run          string
	header       []byte // the DCA's header, as sent
	off          int64  // bytes of the DCA read out so far
	buf          []byte
	blob         io.ReadCloser
	err          error
	deadline     time.Time
}

func newLiveBody(s *server, ctx context.Context, cancel context.CancelFunc, f *framestream.Follower, opID, songID string, first framestream.Chunk) (*liveBody, error) {
	d := first.Data
	if len(d) < 8 || string(d[:4]) != "DCA1" {
		return nil, fmt.Errorf("run %s of %s does not start with a DCA1 header", first.Run, songID)
	}
	n := int64(binary.LittleEndian.Uint32(d[4:8]))
	if n <= 0 || 8+n > int64(len(d)) {
		return nil, fmt.Errorf("run %s of %s: the first chunk does not hold the header", first.Run, songID)
	}
	return &liveBody{
		s: s, ctx: ctx, cancel: cancel, f: f, opID: opID, songID: songID,
		run: first.Run, header: bytes.Clone(d[:8+n]), buf: d,
		deadline: time.Now().Add(audioWait),
	}, nil
}

func (b *liveBody) Read(p []byte) (int, error) {
	for len(b.buf) == 0 {
		if b.blob != nil {
			return b.blob.Read(p)
		}
		if b.err != nil {
			return 0, b.err
		}
		b.err = b.next()
		if b.err != nil && !errors.Is(b.err, io.EOF) && b.ctx.Err() == nil {
			// The client is told by the body's abrupt end (/dca or /ogg);
			// the operator is told why here.
			b.s.log.Warn("gateway: a followed song's body ended before the song did",
				"operation_id", b.opID, "song_id", b.songID, "run", b.run, "offset", b.off, "error", b.err)
		}
	}
	n := copy(p, b.buf)
	b.buf = b.buf[n:]
	b.off += int64(n)
	return n, nil
}

// next loads the run's next chunk into buf, or switches to the stored
// DCA, or says how the body ends (io.EOF when whole).
func (b *liveBody) next() error {
	for {
		ch, err := b.f.Next(b.ctx, idleCheck)
		switch {
		case errors.Is(err, framestream.ErrIdle):
			if done, err := b.idle(); done || err != nil {
				return err
			}
			continue
		case err != nil:
			return err
		case ch.Run != b.run:
			if ch.Offset == 0 && ch.End == "" {
				return errors.New("gateway: the song's encode started again")
			}
			continue // another encode's run, ending
		case ch.End == framestream.EndFailed:
			return fmt.Errorf("gateway: the song's encode failed: %s", ch.Message)
		case ch.End == framestream.EndStored:
			if ch.Size == b.off {
				return io.EOF
			}
			return b.fromStored()
		case ch.Offset+int64(len(ch.Data)) <= b.off:
			continue // had it
		case ch.Offset > b.off:
			// Chunks in between are gone (purged): the rest is stored.
			return b.fromStored()
		}
		b.buf = ch.Data[b.off-ch.Offset:]
		return nil
	}
}

// idle runs when the run has been silent for a while: the DCA may be
// stored (its chunks then purged before they were read), or the operation
// may have failed without a word on the run (its encoder died).
func (b *liveBody) idle() (bool, error) {
	ok, err := b.s.dcaStored(b.ctx, b.songID)
	if err != nil {
		return true, err
	}
	if ok {
		return true, b.fromStored()
	}
	rctx, cancel := context.WithTimeout(b.ctx, storeTimeout)
	op, _, err := b.s.current(rctx, b.opID, false)
	cancel()
	if err == nil {
		if failed := operationFailed(op); failed != nil {
			return true, failed
		}
	}
	if time.Now().After(b.deadline) {
		return true, errAudioWait
	}
	return false, nil
}

// fromStored goes on from the stored DCA at the run's offset, if the
// stored DCA is the run's.
func (b *liveBody) fromStored() error {
	key := blob.DCAKey(b.songID)
	rc, _, err := b.s.blobs.OpenRange(b.ctx, key, 0, int64(len(b.header)))
	if err != nil {
		return fmt.Errorf("gateway: open the stored DCA: %w", err)
	}
	hdr, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return fmt.Errorf("gateway: read the stored DCA: %w", err)
	}
	if !bytes.Equal(hdr, b.header) {
		return errors.New("gateway: the stored DCA is another encode's")
	}
	rc, _, err = b.s.blobs.OpenRange(b.ctx, key, b.off, -1)
	if err != nil {
		return fmt.Errorf("gateway: open the stored DCA at %d: %w", b.off, err)
	}
	b.blob = rc
	return nil
}

// Close ends the follow; fasthttp calls it once the body is written or the
// client is gone.
func (b *liveBody) Close() error {
	b.f.Close()
	b.s.metrics.Following(-1)
	if b.release != nil {
		b.release()
	}
	if b.blob != nil {
		b.blob.Close()
	}
	b.cancel()
	return nil
}

// oggBody is a followed DCA muxed to Ogg Opus by a goroutine into pr,
// which closes muxed when it ends.
type oggBody struct {
	pr    *io.PipeReader
	live  *liveBody
	muxed chan struct{}
}

func (o *oggBody) Read(p []byte) (int, error) { return o.pr.Read(p) }

func (o *oggBody) Close() error {
	// The mux's next write fails, or its wait for a chunk ends: then the
	// follow is closed, by the mux's goroutine no longer reading it.
	o.pr.Close()
	o.live.cancel()
	<-o.muxed
	return o.live.Close()
}
