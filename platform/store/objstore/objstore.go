// Package objstore keeps blobs (downloaded audio, DCA files) in a JetStream
// Object Store. Objects are written and read in chunks: a blob is never held
// whole in memory.
package objstore

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/butakero/butakero/platform/blob"
	"github.com/butakero/butakero/platform/jsbucket"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Bucket is the object store's name.
const Bucket = "butakero-blobs"

// Store is a blob store (blob.Store) in a JetStream Object Store. It is
// safe for concurrent use.
type Store struct {
	js     jetstream.JetStream
	obs    jetstream.ObjectStore
	stream jetstream.Stream // the object store's stream, for chunk reads
	nc     *nats.Conn       // for chunk reads from the stream's leader
}

var _ blob.Store = (*Store)(nil)

// Open creates the object store if missing and returns a Store on it.
func Open(ctx context.Context, js jetstream.JetStream, replicas int) (*Store, error) {
	// The bucket's stream is created here, not by nats.go's
	// CreateObjectStore, for one setting nats.go does not offer (see
	// StreamConfig), through jsbucket: the create goes first, an update is
	// sent only for an existing stream whose definition differs, and a
	// request never answered is made again.
	cfg := StreamConfig(replicas)
	_, err := jsbucket.Stream(ctx, js, cfg)
	if err != nil {
		return nil, fmt.Errorf("objstore: open %s: %w", Bucket, err)
	}
	// In a cluster the bucket's stream may not be known to the node that
	// answers yet, just after another process created it: look again for
	// a while.
	var stream jetstream.Stream
	for try := 0; ; try++ {
		stream, err = js.Stream(ctx, cfg.Name)
		if !errors.Is(err, jetstream.ErrStreamNotFound) || try == 20 || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
	if err != nil {
		return nil, fmt.Errorf("objstore: stream of %s: %w", Bucket, err)
	}
	obs, err := js.ObjectStore(ctx, Bucket)
	if err != nil {
		return nil, fmt.Errorf("objstore: open %s: %w", Bucket, err)
	}
	return &Store{js: js, obs: obs, stream: stream, nc: js.Conn()}, nil
}

// StreamConfig is the definition of the bucket's stream, "OBJ_" + Bucket:
// nats.go's for an object store (file storage, the chunk and meta
// subjects, no size limit, rollups and direct gets), with a limit of
// messages per subject no object reaches (a chunk subject holds one
// object's chunks, at most a uint32 of them; a meta subject one message).
//
// That limit is there for what it makes nats-server do: a stream with a
// per-subject limit and no size or message limit gets 4 MiB blocks, not 8
// MiB. The server keeps in memory the whole block it is writing (until it
// is idle for 10 s) and every block it reads from, so the blocks are most
// of what a long song costs the embedded server: the staged source being
// written and read back, the DCA being written, and BUTAKERO_FRAMES being
// written and followed, each up to a block. A block's size is fixed when
// its stream is created: a stream created before this setting keeps 8 MiB
// blocks until it is recreated.
func StreamConfig(replicas int) jetstream.StreamConfig {
	if replicas < 1 {
		replicas = 1
	}
	return jetstream.StreamConfig{
		Name:              "OBJ_" + Bucket,
		Description:       "Butakero audio and DCA files",
		Subjects:          []string{"$O." + Bucket + ".C.>", "$O." + Bucket + ".M.>"},
		MaxBytes:          -1,
		MaxMsgsPerSubject: math.MaxUint32 + 1,
		Storage:           jetstream.FileStorage,
		Replicas:          replicas,
		Discard:           jetstream.DiscardNew,
		AllowRollup:       true,
		AllowDirect:       true,
	}
}

// getInfo is the meta of blob key. It is read with a direct get, which any
// replica may answer; one that has not yet received a meta the stream has
// committed (for a moment after the write, or after a node is lost) says
// the blob does not exist. So that answer is checked with the stream's
// leader, which holds every committed message; a leader that does not
// answer in time leaves the replica's answer.
func (s *Store) getInfo(ctx context.Context, key string) (*jetstream.ObjectInfo, error) {
	// A direct get that finds no replica to answer (the stream just
	// created, or electing a leader) is waited out (catchUp).
	var oi *jetstream.ObjectInfo
	err := catchUp(ctx, func() (err error) {
		oi, err = s.obs.GetInfo(ctx, key)
		return err
	})
	if !errors.Is(err, jetstream.ErrObjectNotFound) {
		return oi, err
	}
	attempt, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	m, lerr := leaderLast(attempt, s.nc, s.stream.CachedInfo().Config.Name, metaSubject(key))
	if lerr != nil {
		return nil, err
	}
	var info jetstream.ObjectInfo
	if json.Unmarshal(m.Data, &info) != nil || info.Deleted || info.Name != key {
		return nil, err
	}
	info.ModTime = m.Time
	return &info, nil
}

// metaSubject is the subject of blob key's meta (nats.go's layout).
func metaSubject(key string) string {
	return fmt.Sprintf("$O.%s.M.%s", Bucket, base64.URLEncoding.EncodeToString([]byte(key)))
}

// Put streams r into the blob key, replacing any blob there. The new blob
// becomes visible only once r is read to its end without error; a read error
// or a cancelled ctx leaves the previous blob (or none) in place.
func (s *Store) Put(ctx context.Context, key, contentType string, meta map[string]string, r io.Reader) (blob.Info, error) {
	headers := map[string][]string{}
	if contentType != "" {
		headers["Content-Type"] = []string{contentType}
	}
	// Not nats.go's Put, which can store the wrong bytes in a cluster (see
	// put). A cancelled ctx fails the next read or publish, and put purges
	// what it stored on a live context.
	oi, err := s.put(ctx, jetstream.ObjectMeta{Name: key, Headers: headers, Metadata: meta}, fullReader{blob.ContextReader(ctx, r)})
	if err != nil {
		return blob.Info{}, fmt.Errorf("objstore: put %s: %w", key, err)
	}
	return s.info(oi), nil
}

// Open returns a reader of blob key and its Info. The caller closes it.
// The reader fetches one chunk at a time under ctx (keep ctx alive until the
// reader is closed) and fails at the end if the content does not match the
// stored size and digest.
func (s *Store) Open(ctx context.Context, key string) (io.ReadCloser, blob.Info, error) {
	oi, err := s.getInfo(ctx, key)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, blob.Info{}, blob.ErrNotFound
	}
	if err != nil {
		return nil, blob.Info{}, fmt.Errorf("objstore: get %s: %w", key, err)
	}
	return newChunkReader(ctx, s.stream, s.nc, Bucket, oi), s.info(oi), nil
}

// OpenRange is Open for the n bytes of blob key from byte off, or to its
// end when n < 0. A range reaching past the end stops there, and an off at
// or past the end reads nothing; Info describes the whole blob. It starts
// at the chunk holding off, which it finds from the chunks' sizes (a
// consumer on the object's chunks that delivers headers only), so a read
// near the end of a long blob fetches none of the chunks before it. Only a
// read from byte 0 to the end is checked against the stored digest, which
// covers the whole blob.
func (s *Store) OpenRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, blob.Info, error) {
	if off < 0 {
		return nil, blob.Info{}, fmt.Errorf("objstore: open %s at %d: negative offset", key, off)
	}
	oi, err := s.getInfo(ctx, key)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, blob.Info{}, blob.ErrNotFound
	}
	if err != nil {
		return nil, blob.Info{}, fmt.Errorf("objstore: get %s: %w", key, err)
	}
	info := s.info(oi)
	if n < 0 || n > info.Size-off {
		n = info.Size - off
	}
	if off >= info.Size || n <= 0 {
		return io.NopCloser(strings.NewReader("")), info, nil
	}
	if off == 0 && n == info.Size {
		// The whole blob: read to the reader's end, which checks it.
		return newChunkReader(ctx, s.stream, s.nc, Bucket, oi), info, nil
	}
	if off == 0 {
		// The head of the blob (a DCA's header): the first chunk is where
		// it starts, nothing to look for. Part of the blob only: no digest.
		r := newChunkReader(ctx, s.stream, s.nc, Bucket, oi)
		r.sum = nil
		return limitedReader{io.LimitReader(r, n), r}, info, nil
	}
	r, err := seekChunkReader(ctx, s.stream, s.nc, Bucket, oi, uint64(off))
	if err != nil {
		return nil, blob.Info{}, err
	}
	return limitedReader{io.LimitReader(r, n), r}, info, nil
}

// limitedReader is a read of part of a blob; closing it closes the blob's
// reader.
type limitedReader struct {
	io.Reader
	io.Closer
}

// Stat returns blob key's Info, or blob.ErrNotFound.
func (s *Store) Stat(ctx context.Context, key string) (blob.Info, error) {
	oi, err := s.getInfo(ctx, key)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return blob.Info{}, blob.ErrNotFound
	}
	if err != nil {
		return blob.Info{}, fmt.Errorf("objstore: stat %s: %w", key, err)
	}
	return s.info(oi), nil
}

// List returns the Info of every blob whose key starts with prefix, in no
// particular order. It reads the store's whole index (one message per
// blob), not the content.
func (s *Store) List(ctx context.Context, prefix string) ([]blob.Info, error) {
	all, err := s.obs.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("objstore: list %s: %w", prefix, err)
	}
	var out []blob.Info
	for _, oi := range all {
		if strings.HasPrefix(oi.Name, prefix) {
			out = append(out, s.info(oi))
		}
	}
	return out, nil
}

// Delete removes blob key. Deleting a missing blob is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	err := s.obs.Delete(ctx, key)
	if err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("objstore: delete %s: %w", key, err)
	}
	return nil
}

// Ping checks that the store answers.
func (s *Store) Ping(ctx context.Context) error {
	if _, err := s.obs.Status(ctx); err != nil {
		return fmt.Errorf("objstore: %w", err)
	}
	return nil
}

// Location is the URL of blob key in this store.
func (s *Store) Location(key string) string { return "nats://objects/" + Bucket + "/" + key }

func (s *Store) info(oi *jetstream.ObjectInfo) blob.Info {
	ct := ""
	if oi.Headers != nil {
		ct = oi.Headers.Get("Content-Type")
	}
	return blob.Info{Key: oi.Name, Size: int64(oi.Size), ContentType: ct, Location: s.Location(oi.Name), Digest: oi.Digest, Modified: oi.ModTime}
}

// fullReader fills every read whole, short only at the end. put stores
// each Read as one chunk: fed by a pipe that carries one DCA frame per
// write, a plain reader made a chunk (a JetStream message, about 100 bytes
// of overhead) per 20 ms frame, half as much again as the audio and 75
// messages a second. Full reads make 128 KiB chunks, as the chunk reader
// expects.
// A read error of r is passed on as it is: io.ReadFull would report an
// io.ErrUnexpectedEOF of r's own (a truncated HTTP body) as a short last
// chunk.
type fullReader struct{ r io.Reader }

func (f fullReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := f.r.Read(p[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
