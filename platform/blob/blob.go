// Package blob is the blob store port: the files Butakero keeps (staged
// downloads, DCA files), the keys it keeps them under, what a store says
// of one (Info) and the interface every blob store implements
// (platform/store/objstore, the JetStream Object Store; platform/store/s3blob,
// S3). The services declare the smaller interfaces they need; the
// contract suite every implementation passes is platform/testkit/blobtest.
package blob

import (
	"context"
	"errors"
	"io"
	"strings"
	"time"
)

// ErrNotFound is wrapped by every store's error for a key it does not
// hold.
var ErrNotFound = errors.New("blob: not found")

// Info describes a stored blob.
type Info struct {
	Key         string
	Size        int64
	ContentType string
	// Location is a URL naming the blob in its store
	// ("nats://objects/<bucket>/<key>", "s3://<bucket>/<key>").
	Location string
	// Digest is the store's checksum of the content ("SHA-256=…" in the
	// Object Store, the ETag in S3).
	Digest string
	// Modified is when the blob was last written.
	Modified time.Time
}

// Store is a blob store. Implementations are safe for concurrent use.
type Store interface {
	// Put streams r into key, replacing any blob there. The blob becomes
	// visible only once r is read to its end without error: a failed or
	// cancelled Put leaves the previous blob (or none).
	Put(ctx context.Context, key, contentType string, meta map[string]string, r io.Reader) (Info, error)
	// Open returns a reader of blob key, which the caller closes, and its
	// Info. The reader streams under ctx: keep ctx alive until it is
	// closed.
	Open(ctx context.Context, key string) (io.ReadCloser, Info, error)
	// OpenRange is Open for the n bytes from byte off (to the end when
	// n < 0): it stops at the end, reads nothing from an off at or past
	// it, fetches nothing before off, and returns the whole blob's Info.
	OpenRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, Info, error)
	// Stat returns blob key's Info.
	Stat(ctx context.Context, key string) (Info, error)
	// Delete removes blob key; a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// List returns the Info of every blob whose key starts with prefix, in
	// no particular order.
	List(ctx context.Context, prefix string) ([]Info, error)
	// Ping checks that the store answers (/readyz).
	Ping(ctx context.Context) error
	// Location is the URL of blob key in the store.
	Location(key string) string
}

// DCAKey is the key of a song's DCA: "audio/<song_id>.dca". A song is
// stored when this blob is.
func DCAKey(songID string) string { return "audio/" + songID + ".dca" }

// StagingPrefix starts the key of every staged download.
const StagingPrefix = "staging/"

// StagingKey is the key of operation opID's staged download:
// "staging/<operation_id>.<ext>", ext naming the container.
func StagingKey(opID, ext string) string { return StagingPrefix + opID + "." + ext }

// StagedOperation is the operation id in a staged download's key.
func StagedOperation(key string) string {
	name := strings.TrimPrefix(key, StagingPrefix)
	if i := strings.IndexByte(name, '.'); i >= 0 {
		name = name[:i]
	}
	return name
}
