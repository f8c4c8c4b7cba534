package objstore

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// chunkReader reads an object one chunk at a time with a request per
// chunk, so that at most one chunk (128 KiB) is held in memory whatever the
// object's size or the reader's pace.
//
// nats.go's ObjectStore.Get pushes every chunk to the client as fast as the
// server can, and the client queues them until the reader catches up: a
// slow or late reader of a 60-minute song held tens of MiB.
type chunkReader struct {
	ctx     context.Context
	stream  jetstream.Stream
	nc      *nats.Conn // for leaderGet
	subject string
	info    *jetstream.ObjectInfo

	next   uint64    // stream sequence to look from for the next chunk
	chunks uint32    // chunks read (or skipped) so far
	read   uint64    // bytes read (or skipped) so far
	skip   uint64    // bytes of the next chunk to drop: where a ranged read starts in it
	buf    []byte    // rest of the current chunk
	sum    hash.Hash // nil when the read started past byte 0: no digest to check
	err    error
}

func newChunkReader(ctx context.Context, stream jetstream.Stream, nc *nats.Conn, bucket string, info *jetstream.ObjectInfo) *chunkReader {
	return &chunkReader{
		ctx:     ctx,
		stream:  stream,
		nc:      nc,
		subject: chunkSubject(bucket, info),
		info:    info,
		next:    1,
		sum:     sha256.New(),
	}
}

// chunkSubject is the subject of an object's chunks (nats.go's layout).
func chunkSubject(bucket string, info *jetstream.ObjectInfo) string {
	return fmt.Sprintf("$O.%s.C.%s", bucket, info.NUID)
}

// seekChunkReader is a chunkReader that starts at byte off of the object
// (off < its size), without the digest check.
//
// nats.go cuts an object into chunks as its writer's Reads return, so
// chunks differ in size, and other objects' chunks written at the same time
// sit between them in the stream: neither the offset nor the sequence of a
// chunk follows from its index. What does tell is the size of every chunk
// before off, which an ephemeral consumer on the object's chunks that
// delivers headers only (each with Nats-Msg-Size, and the message's stream
// sequence) gives in a few small messages per thousand chunks.
func seekChunkReader(ctx context.Context, stream jetstream.Stream, nc *nats.Conn, bucket string, info *jetstream.ObjectInfo, off uint64) (*chunkReader, error) {
	subject := chunkSubject(bucket, info)
	var seq, start uint64
	var index uint32
	err := catchUp(ctx, func() (err error) {
		attempt, cancel := context.WithTimeout(ctx, locateTimeout)
		defer cancel()
		seq, index, start, err = locateChunk(attempt, stream, nc, subject, info, off)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("objstore: %s: find the chunk at byte %d: %w", info.Name, off, err)
	}
	return &chunkReader{
		ctx:     ctx,
		stream:  stream,
		nc:      nc,
		subject: subject,
		info:    info,
		next:    seq,
		chunks:  index,
		read:    start,
		skip:    off - start,
	}, nil
}

// locateBatch is how many chunk headers one pull asks for. It is small
// because the server holds the whole of every chunk it has gathered for a
// pull until the client has taken them (a headers-only message is cut from
// its copy of the chunk): a pull of 1024 chunks of 128 KiB held an
// object's whole size, about 30 MiB for a 60-minute DCA, per reader, and
// 32 held 4 MiB per reader, which every client that follows a song pays
// at once when its chunks are purged and the followers go on from the
// stored DCA. 8 hold 1 MiB at most, for one request per MiB of the object
// before the offset (about 60 for the end of a 60-minute DCA).
const locateBatch = 8

// locateChunk returns the stream sequence and index of the chunk holding
// byte off of the object, and the offset its data starts at. The consumer
// reads the replica it is placed on; should that one lack the object's
// last chunks (it lags the committed stream), the rest are asked of the
// stream's leader one by one (leaderGet).
func locateChunk(ctx context.Context, stream jetstream.Stream, nc *nats.Conn, subject string, info *jetstream.ObjectInfo, off uint64) (seq uint64, index uint32, start uint64, err error) {
	cons, err := stream.CreateConsumer(ctx, jetstream.ConsumerConfig{
		FilterSubject: subject,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckNonePolicy,
		HeadersOnly:   true,
		MemoryStorage: true,
		Replicas:      1,
		// The server removes it after this should the delete below fail.
		InactiveThreshold: time.Minute,
	})
	if err != nil {
		return 0, 0, 0, err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = stream.DeleteConsumer(dctx, cons.CachedInfo().Name)
	}()
	found := false
	var last uint64 // stream sequence of the last chunk counted
	for !found && index < info.Chunks {
		if err := ctx.Err(); err != nil {
			return 0, 0, 0, err
		}
		batch, err := cons.FetchNoWait(int(min(info.Chunks-index, locateBatch)))
		if err != nil {
			return 0, 0, 0, err
		}
		got := 0
		for msg := range batch.Messages() {
			got++
			if found {
				continue // drain the batch
			}
			size, err := strconv.ParseUint(msg.Headers().Get(nats.MsgSize), 10, 64)
			if err != nil {
				return 0, 0, 0, fmt.Errorf("chunk %d: no size header: %w", index+1, err)
			}
			md, err := msg.Metadata()
			if err != nil {
				return 0, 0, 0, fmt.Errorf("chunk %d: %w", index+1, err)
			}
			if off < start+size {
				seq, found = md.Sequence.Stream, true
				continue
			}
			start += size
			index++
			last = md.Sequence.Stream
		}
		if err := batch.Error(); err != nil {
			return 0, 0, 0, err
		}
		if got == 0 {
			break
		}
	}
	for next := last + 1; !found && index < info.Chunks; index++ {
		s, data, err := leaderGet(ctx, nc, stream.CachedInfo().Config.Name, next, subject)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return 0, 0, 0, err
		}
		if off < start+uint64(len(data)) {
			seq, found = s, true
			break
		}
		start += uint64(len(data))
		next = s + 1
	}
	if !found {
		return 0, 0, 0, fmt.Errorf("%w: %d chunks hold %d bytes, the object has %d", errBehind, index, start, info.Size)
	}
	return seq, index, start, nil
}

// errBehind marks a read that found fewer chunks than the object's meta
// says it has.
var errBehind = errors.New("the replica read is behind the object")

// catchUpTimeout bounds how long a read waits for the stream to answer
// again; attemptTimeout bounds one chunk request and locateTimeout one
// pass of the chunk index (one request per locateBatch chunks).
const (
	catchUpTimeout = 10 * time.Second
	attemptTimeout = 5 * time.Second
	locateTimeout  = 30 * time.Second
)

// catchUp runs read until it succeeds or fails for good, for at most
// catchUpTimeout, while the object's stream is only passing through the
// loss of a node:
//
//   - a chunk read or the consumer that indexes chunks may be served by any
//     replica, and the object's meta (which names the chunks, and is written
//     last) by a more recent one: a follower that had not yet received the
//     last committed chunks lacks them for a moment (errBehind). They are
//     committed, so waiting for them is right;
//   - while the stream elects a new leader, or this connection moves to
//     another server, requests go unanswered or find no responder.
//
// A chunk still missing, or a stream still silent, after catchUpTimeout is
// reported; ctx's end stops the wait at once.
func catchUp(ctx context.Context, read func() error) error {
	deadline := time.Now().Add(catchUpTimeout)
	pause := 20 * time.Millisecond
	for {
		err := read()
		if err == nil || ctx.Err() != nil || !passing(err) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(pause):
		}
		pause = min(2*pause, 500*time.Millisecond)
	}
}

// passing reports whether err is one catchUp waits out: a replica behind,
// or a stream that does not answer for now.
func passing(err error) bool {
	if errors.Is(err, errBehind) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, jetstream.ErrNoHeartbeat) {
		return true
	}
	var api *jetstream.APIError
	return errors.As(err, &api) && api.Code == 503
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		r.err = r.fetch()
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// fetch loads the next chunk into buf, or returns io.EOF after the last
// one once size and digest check out.
func (r *chunkReader) fetch() error {
	if r.chunks == r.info.Chunks {
		if r.read != r.info.Size {
			return fmt.Errorf("objstore: %s: read %d bytes, object has %d", r.info.Name, r.read, r.info.Size)
		}
		if want := r.info.Digest; r.sum != nil && want != "" && want != jetstream.GetObjectDigestValue(r.sum) {
			return fmt.Errorf("objstore: %s: digest mismatch", r.info.Name)
		}
		return io.EOF
	}
	if err := r.ctx.Err(); err != nil {
		return err
	}
	var seq uint64
	var data []byte
	err := catchUp(r.ctx, func() error {
		attempt, cancel := context.WithTimeout(r.ctx, attemptTimeout)
		defer cancel()
		msg, err := r.stream.GetMsg(attempt, r.next, jetstream.WithGetMsgSubject(r.subject))
		if err == nil {
			seq, data = msg.Sequence, msg.Data
			return nil
		}
		if !errors.Is(err, jetstream.ErrMsgNotFound) {
			return err
		}
		// The meta names this chunk: a replica that lacks it lags; the
		// leader has it.
		seq, data, err = leaderGet(attempt, r.nc, r.stream.CachedInfo().Config.Name, r.next, r.subject)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return fmt.Errorf("%w: chunk %d of %d is missing", errBehind, r.chunks+1, r.info.Chunks)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("objstore: %s: chunk %d: %w", r.info.Name, r.chunks+1, err)
	}
	r.next = seq + 1
	r.chunks++
	r.read += uint64(len(data))
	if r.sum != nil {
		r.sum.Write(data)
	}
	r.buf = data[min(r.skip, uint64(len(data))):]
	r.skip = 0
	return nil
}

// Close ends the read; the reader holds no server resources.
func (r *chunkReader) Close() error {
	r.err = errors.New("objstore: reader closed")
	r.buf = nil
	return nil
}
