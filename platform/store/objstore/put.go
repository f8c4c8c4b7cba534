package objstore

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// chunkSize is the size of every chunk but an object's last, nats.go's
// default.
const chunkSize = 128 << 10

// put writes an object in nats.go's layout (ADR-20), which nats.go's
// ObjectStore reads: its chunks on $O.<bucket>.C.<nuid>, then its meta,
// an ObjectInfo in JSON, on $O.<bucket>.M.<base64url name> with a subject
// rollup that replaces the previous meta, then the previous version's
// chunks purged. The object becomes visible only with its meta, once every
// chunk is stored; a failed put purges the chunks it stored.
//
// nats.go's own Put cannot be used in a cluster: it publishes every chunk
// asynchronously from one reused buffer and one reused message, and a
// publish the stream answers with "no responders" (for a moment while its
// leader changes, as when a node stops) is sent again 250 ms later with
// whatever that buffer holds by then. The object's meta, whose digest is
// of the bytes read, then names chunks that hold other bytes: a DCA that
// fails its digest check, or opens with another chunk's bytes. Here each
// chunk is its own message, published and acknowledged before the next is
// read, so the stream holds the chunks in order, and a publish whose
// answer was lost is sent again with the same message id and the same
// bytes, which the stream keeps once.
//
// One buffer serves every chunk: a publish copies the message into the
// connection's buffer before it waits for the answer, and the next chunk
// is read into it only once the stream has acknowledged this one (or the
// put has failed), so no retry ever sends a later chunk's bytes. A 58 MB
// source written with a buffer per chunk allocated as much again, which
// the garbage collector let the heap grow by.
func (s *Store) put(ctx context.Context, meta jetstream.ObjectMeta, r fullReader) (*jetstream.ObjectInfo, error) {
	if meta.Name == "" {
		return nil, jetstream.ErrBadObjectMeta
	}
	old, err := s.getInfo(ctx, meta.Name)
	if err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, err
	}
	meta.Opts = &jetstream.ObjectMetaOptions{ChunkSize: chunkSize}
	id := nuid.Next()
	subject := fmt.Sprintf("$O.%s.C.%s", Bucket, id)
	info := &jetstream.ObjectInfo{Bucket: Bucket, NUID: id, ObjectMeta: meta}

	// fail purges what was stored of this version, on a live context.
	fail := func(err error) (*jetstream.ObjectInfo, error) {
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), attemptTimeout)
		defer cancel()
		_ = s.stream.Purge(pctx, jetstream.WithPurgeSubject(subject))
		return nil, err
	}

	sum := sha256.New()
	buf := make([]byte, chunkSize)
	for done := false; !done; {
		// r fills every read (fullReader): a short one is the last.
		n, err := r.Read(buf)
		switch {
		case errors.Is(err, io.EOF):
			done = true
		case err != nil:
			return fail(err)
		}
		if n == 0 {
			break
		}
		msg := &nats.Msg{Subject: subject, Data: buf[:n], Header: nats.Header{}}
		msgID := id + "." + strconv.FormatUint(uint64(info.Chunks), 10)
		if err := s.publish(ctx, msg, msgID); err != nil {
			return fail(fmt.Errorf("chunk %d: %w", info.Chunks+1, err))
		}
		sum.Write(buf[:n])
		info.Chunks++
		info.Size += uint64(n)
	}
	info.Digest = jetstream.GetObjectDigestValue(sum)

	data, err := json.Marshal(info)
	if err != nil {
		return fail(err)
	}
	mm := &nats.Msg{
		Subject: metaSubject(meta.Name),
		Data:    data,
		Header:  nats.Header{jetstream.MsgRollup: []string{jetstream.MsgRollupSubject}},
	}
	if err := s.publish(ctx, mm, id+".meta"); err != nil {
		return fail(fmt.Errorf("meta: %w", err))
	}
	info.ModTime = time.Now().UTC()
	if old != nil && old.NUID != id {
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), attemptTimeout)
		defer cancel()
		_ = s.stream.Purge(pctx, jetstream.WithPurgeSubject(fmt.Sprintf("$O.%s.C.%s", Bucket, old.NUID)))
	}
	return info, nil
}

// publish publishes msg and waits for the stream's acknowledgement,
// through a leader change: an attempt that goes unanswered or finds no
// leader is made again with the same message id (the stream stores one
// copy), for up to catchUpTimeout.
func (s *Store) publish(ctx context.Context, msg *nats.Msg, msgID string) error {
	return catchUp(ctx, func() error {
		attempt, cancel := context.WithTimeout(ctx, attemptTimeout)
		defer cancel()
		_, err := s.js.PublishMsg(attempt, msg, jetstream.WithMsgID(msgID))
		if errors.Is(err, jetstream.ErrNoStreamResponse) {
			return fmt.Errorf("%w: %w", nats.ErrNoResponders, err)
		}
		return err
	})
}
