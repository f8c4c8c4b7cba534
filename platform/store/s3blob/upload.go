package s3blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/butakero/butakero/platform/store/awsconfig"
)

// spool is the file a Put writes its blob into as it reads it, and that
// its parts are sent from: what is read waits on disk, not in memory, for
// the part that holds it to go up. The file is removed as soon as it is
// made, so that nothing is left behind by a crash; it is read with ReadAt
// while it grows.
type spool struct {
	f *os.File

	mu   sync.Mutex
	cond *sync.Cond
	n    int64 // bytes written
	done bool  // the blob was read to its end, or failed (err)
	err  error // why the read failed (or the upload, which stops it)
}

func newSpool(dir string) (*spool, error) {
	f, err := os.CreateTemp(dir, "butakero-s3put-*")
	if err != nil {
		return nil, err
	}
	// Unlinked at once: the open file keeps the data for as long as the
	// Put needs it, and a crash leaves nothing on disk.
	_ = os.Remove(f.Name())
	sp := &spool{f: f}
	sp.cond = sync.NewCond(&sp.mu)
	return sp, nil
}

// Write appends b to the spool. It fails once the spool was stopped, so
// that a failed upload stops the read of its blob.
func (sp *spool) Write(b []byte) (int, error) {
	sp.mu.Lock()
	err := sp.err
	sp.mu.Unlock()
	if err != nil {
		return 0, err
	}
	n, err := sp.f.Write(b)
	if err != nil {
		err = fmt.Errorf("spooling the blob: %w", err)
	}
	sp.mu.Lock()
	sp.n += int64(n)
	sp.cond.Broadcast()
	sp.mu.Unlock()
	return n, err
}

// end marks the blob read to its end (err nil) or failed, once: a spool
// that has ended stays as it ended.
func (sp *spool) end(err error) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.done {
		return
	}
	sp.done = true
	if sp.err == nil {
		sp.err = err
	}
	sp.cond.Broadcast()
}

// wait returns once the spool holds at least want bytes or has ended: how
// many bytes it holds, whether the blob ended there, and why it failed.
func (sp *spool) wait(want int64) (n int64, done bool, err error) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	for sp.n < want && !sp.done && sp.err == nil {
		sp.cond.Wait()
	}
	return sp.n, sp.done, sp.err
}

// section is the n bytes of the spool from off, as a part's body: seekable,
// so that the SDK can sign and checksum it and send it again on a retry.
func (sp *spool) section(off, n int64) *io.SectionReader { return io.NewSectionReader(sp.f, off, n) }

func (sp *spool) close() { _ = sp.f.Close() }

// upload sends a spool to blob key as it fills: one PutObject when the
// whole blob fits in a part, else a multipart upload whose parts go up as
// soon as each is written, at most s.concurrency at a time. A failure
// stops the spool (and so the read), and a started multipart upload is
// aborted.
type upload struct {
	s   *Store
	ctx context.Context // the requests' (it outlives Put's ctx by abortGrace)
	// abortCtx is Put's, which an abort outlives by abortGrace.
	abortCtx    context.Context
	key         string
	contentType string
	meta        map[string]string
	sp          *spool

	id    *string // the multipart upload's, once created
	mu    sync.Mutex
	parts []types.CompletedPart
	err   error
}

// result is what an upload made.
type result struct {
	etag string
	err  error
}

// checksum is the algorithm the parts are checksummed with (the SDK's
// default, CRC32), or none when the client computes checksums only where
// they are required.
func (u *upload) checksum() types.ChecksumAlgorithm {
	if u.s.aws.RequestChecksumCalculation == aws.RequestChecksumCalculationWhenRequired {
		return ""
	}
	return types.ChecksumAlgorithmCrc32
}

// run sends the spool and returns the blob's ETag, or why it was not
// stored.
func (u *upload) run() result {
	ps := u.s.partSize
	var off int64
	var num int32
	var wg sync.WaitGroup
	slots := make(chan struct{}, u.s.concurrency)
	for {
		// The first wait is for more than a part: a blob of exactly one
		// part is then known whole, and goes up in one PutObject.
		want := off + ps
		if u.id == nil {
			want = ps + 1
		}
		n, done, err := u.sp.wait(want)
		if err == nil {
			err = u.failed()
		}
		if err != nil {
			break
		}
		if u.id == nil && done && n <= ps {
			return u.single(n)
		}
		if u.id == nil {
			if err := u.create(); err != nil {
				u.fail(err)
				break
			}
		}
		// wait returned a whole part, or the blob's end.
		size := min(ps, n-off)
		if size == 0 {
			break // done: every byte is in a part
		}
		if num == maxParts {
			u.fail(fmt.Errorf("the blob needs more than %d parts of %d bytes", maxParts, ps))
			break
		}
		num++
		slots <- struct{}{}
		wg.Add(1)
		go func(num int32, off, size int64) {
			defer func() { <-slots; wg.Done() }()
			u.part(num, off, size)
		}(num, off, size)
		off += size
		if done && off == n {
			break
		}
	}
	wg.Wait()
	if err := u.failed(); err != nil {
		return result{err: u.abort(err)}
	}
	if _, _, err := u.sp.wait(off); err != nil {
		return result{err: u.abort(err)}
	}
	return u.complete()
}

// single puts a blob of n bytes in one request.
func (u *upload) single(n int64) result {
	in := &s3.PutObjectInput{
		Bucket: &u.s.bucket, Key: &u.key, Body: u.sp.section(0, n), ContentLength: aws.Int64(n),
		Metadata: u.meta, ChecksumAlgorithm: u.checksum(),
	}
	if u.contentType != "" {
		in.ContentType = &u.contentType
	}
	out, err := u.s.client.PutObject(u.ctx, in)
	if err != nil {
		return result{err: fmt.Errorf("%s: %w", awsconfig.Reason(err), err)}
	}
	return result{etag: etag(out.ETag)}
}

func (u *upload) create() error {
	in := &s3.CreateMultipartUploadInput{Bucket: &u.s.bucket, Key: &u.key, Metadata: u.meta, ChecksumAlgorithm: u.checksum()}
	if u.contentType != "" {
		in.ContentType = &u.contentType
	}
	out, err := u.s.client.CreateMultipartUpload(u.ctx, in)
	if err != nil {
		return fmt.Errorf("start a multipart upload: %s: %w", awsconfig.Reason(err), err)
	}
	u.id = out.UploadId
	return nil
}

// part sends part num, the size bytes of the spool from off.
func (u *upload) part(num int32, off, size int64) {
	if u.failed() != nil {
		return
	}
	out, err := u.s.client.UploadPart(u.ctx, &s3.UploadPartInput{
		Bucket: &u.s.bucket, Key: &u.key, UploadId: u.id, PartNumber: aws.Int32(num),
		Body: u.sp.section(off, size), ContentLength: aws.Int64(size), ChecksumAlgorithm: u.checksum(),
	})
	if err != nil {
		u.fail(fmt.Errorf("send part %d: %s: %w", num, awsconfig.Reason(err), err))
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	for int(num) > len(u.parts) {
		u.parts = append(u.parts, types.CompletedPart{})
	}
	u.parts[num-1] = types.CompletedPart{
		PartNumber: aws.Int32(num), ETag: out.ETag,
		ChecksumCRC32: out.ChecksumCRC32, ChecksumCRC32C: out.ChecksumCRC32C,
		ChecksumSHA1: out.ChecksumSHA1, ChecksumSHA256: out.ChecksumSHA256,
	}
}

func (u *upload) complete() result {
	out, err := u.s.client.CompleteMultipartUpload(u.ctx, &s3.CompleteMultipartUploadInput{
		Bucket: &u.s.bucket, Key: &u.key, UploadId: u.id,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: u.parts},
	})
	if err != nil {
		return result{err: u.abort(fmt.Errorf("complete the multipart upload: %s: %w", awsconfig.Reason(err), err))}
	}
	return result{etag: etag(out.ETag)}
}

// abort drops a started multipart upload's parts, on a context that
// outlives Put's by abortGrace, and returns err, with the abort's own
// failure if it failed (the parts are then left to the bucket's lifecycle
// rule for incomplete uploads).
func (u *upload) abort(err error) error {
	if u.id == nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(u.abortCtx), abortGrace)
	defer cancel()
	_, aerr := u.s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &u.s.bucket, Key: &u.key, UploadId: u.id})
	if aerr != nil {
		return fmt.Errorf("%w (and the multipart upload could not be aborted: %s: %w)", err, awsconfig.Reason(aerr), aerr)
	}
	return err
}

// fail records the upload's first failure and stops the spool's read: no
// part is sent after it.
func (u *upload) fail(err error) {
	u.mu.Lock()
	if u.err == nil {
		u.err = err
	}
	u.mu.Unlock()
	u.sp.end(errUploadFailed)
}

func (u *upload) failed() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.err
}

// errUploadFailed stops the read of a blob whose upload failed; Put
// reports the upload's own error.
var errUploadFailed = errors.New("s3blob: the upload failed")

// maxParts is S3's limit of parts in one multipart upload.
const maxParts = 10000
