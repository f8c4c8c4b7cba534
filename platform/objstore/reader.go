package objstore

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"

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
	subject string
	info    *jetstream.ObjectInfo

	next   uint64 // stream sequence to look from for the next chunk
	chunks uint32 // chunks read so far
	read   uint64 // bytes read so far
	buf    []byte // rest of the current chunk
	sum    hash.Hash
	err    error
}

func newChunkReader(ctx context.Context, stream jetstream.Stream, bucket string, info *jetstream.ObjectInfo) *chunkReader {
	return &chunkReader{
		ctx:     ctx,
		stream:  stream,
		subject: fmt.Sprintf("$O.%s.C.%s", bucket, info.NUID),
		info:    info,
		next:    1,
		sum:     sha256.New(),
	}
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
		if want := r.info.Digest; want != "" && want != jetstream.GetObjectDigestValue(r.sum) {
			return fmt.Errorf("objstore: %s: digest mismatch", r.info.Name)
		}
		return io.EOF
	}
	if err := r.ctx.Err(); err != nil {
		return err
	}
	msg, err := r.stream.GetMsg(r.ctx, r.next, jetstream.WithGetMsgSubject(r.subject))
	if err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return fmt.Errorf("objstore: %s: chunk %d of %d is missing", r.info.Name, r.chunks+1, r.info.Chunks)
		}
		return fmt.Errorf("objstore: %s: chunk %d: %w", r.info.Name, r.chunks+1, err)
	}
	r.next = msg.Sequence + 1
	r.chunks++
	r.read += uint64(len(msg.Data))
	r.sum.Write(msg.Data)
	r.buf = msg.Data
	return nil
}

// Close ends the read; the reader holds no server resources.
func (r *chunkReader) Close() error {
	r.err = errors.New("objstore: reader closed")
	r.buf = nil
	return nil
}
