// Package s3blob keeps blobs (downloaded audio, DCA files) in an S3 bucket:
// the AWS profile's counterpart of objstore, behind the same methods and
// the same blob.Info and blob.ErrNotFound.
//
// Uploads stream through a spool file: Put writes the blob to an unlinked
// temporary file as it reads it, and sends each part of PartSize bytes
// from that file as soon as it is written, at most Concurrency at a time
// (a blob of one part or less goes up in a single PutObject). So a Put
// holds no part in memory whatever the blob's size (the SDK's own
// uploader keeps Concurrency+1 part buffers and the first part: 20 MiB
// per upload), and a store slower than the reader does not hold the
// reader back: the spool takes up the difference, on disk. Downloads
// stream the response body. Keys are made only from ids (see ValidKey).
package s3blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/blob"
	"github.com/butakero/butakero/platform/runtime/config"
	"github.com/butakero/butakero/platform/runtime/workers"
	"github.com/butakero/butakero/platform/store/awsconfig"
)

// Defaults of Options.
const (
	// MinPartSize is S3's smallest part of a multipart upload (but the
	// last).
	MinPartSize = 5 << 20
	// DefaultPartSize is S3's smallest part: a part goes up as soon as
	// it is written, so the blob is stored soon after its last byte.
	DefaultPartSize = MinPartSize
	// DefaultConcurrency is how many parts of one upload are sent at once.
	DefaultConcurrency = 2
	// MaxPresignTTL is the longest a presigned URL may live (SigV4's limit).
	MaxPresignTTL = 7 * 24 * time.Hour
	// abortGrace is how long a Put whose ctx has ended may still take to
	// abort its multipart upload, so no parts are left behind.
	abortGrace = 30 * time.Second
)

// ErrInvalidKey is returned for a key that is not one Butakero makes.
var ErrInvalidKey = errors.New("s3blob: invalid key")

// Options configure a Store.
type Options struct {
	// Bucket is the bucket's name (BUCKET_NAME). Required.
	Bucket string
	// Endpoint, when set, replaces the SDK's endpoint resolution (tests and
	// tools that name the server themselves). With it, as with an endpoint
	// from AWS_ENDPOINT_URL_S3, the store uses path-style addressing.
	Endpoint string
	// AutoCreate creates the bucket at New when it is missing
	// (AWS_AUTO_CREATE).
	AutoCreate bool
	// PartSize and Concurrency shape an upload (see the package
	// comment). Zero means DefaultPartSize and DefaultConcurrency; a part
	// is at least 5 MiB.
	PartSize    int64
	Concurrency int
	// SpoolDir is where uploads are spooled; "" is os.TempDir() (TMPDIR).
	// A Put takes as much room there as its blob, while it runs.
	SpoolDir string
}

// Store is a blob store on one S3 bucket. It is safe for concurrent use.
type Store struct {
	aws         aws.Config
	client      *s3.Client
	presign     *s3.PresignClient
	bucket      string
	partSize    int64
	concurrency int
	spoolDir    string
}

var _ blob.Store = (*Store)(nil)

// Open returns the Store that cfg names: the bucket BUCKET_NAME with the
// credentials, region and endpoint of awsconfig.Load, created when missing
// if AWS_AUTO_CREATE is set.
func Open(ctx context.Context, cfg config.Config) (*Store, error) {
	ac, err := awsconfig.Load(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("s3blob: %w", err)
	}
	return New(ctx, ac, Options{Bucket: cfg.BucketName, AutoCreate: cfg.AWSAutoCreate})
}

// New returns a Store on o.Bucket through ac. Without AutoCreate it sends
// no request: a missing bucket or wrong credentials show in Ping, so a
// process starts and reports them on /readyz. With AutoCreate it creates a
// missing bucket and fails when it cannot.
func New(ctx context.Context, ac aws.Config, o Options) (*Store, error) {
	if o.Bucket == "" {
		return nil, errors.New("s3blob: no bucket name (BUCKET_NAME)")
	}
	if o.PartSize == 0 {
		o.PartSize = DefaultPartSize
	}
	if o.PartSize < MinPartSize {
		return nil, fmt.Errorf("s3blob: part size %d is below S3's minimum %d", o.PartSize, MinPartSize)
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	pathStyle := o.Endpoint != "" || awsconfig.CustomEndpoint(ctx, ac, s3.ServiceID)
	client := s3.NewFromConfig(ac, func(so *s3.Options) {
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
		}
		so.UsePathStyle = pathStyle
		// A ranged read (OpenRange: every /dca Range, every chunk a
		// reader pulls) has no checksum to validate, nor has a multipart
		// object's: the SDK would print "Response has no supported
		// checksum" to standard error, outside the service's log, on
		// every such read. Whole-object checksums are still validated
		// where the response has one.
		so.DisableLogOutputChecksumValidationSkipped = true
	})
	s := &Store{
		aws:         ac,
		client:      client,
		presign:     s3.NewPresignClient(client),
		bucket:      o.Bucket,
		partSize:    o.PartSize,
		concurrency: o.Concurrency,
		spoolDir:    o.SpoolDir,
	}
	if o.AutoCreate {
		if err := s.createBucket(ctx); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Client is the underlying S3 client, for tools and tests that check what
// the store wrote through the plain S3 API.
func (s *Store) Client() *s3.Client { return s.client }

// Bucket is the bucket's name.
func (s *Store) Bucket() string { return s.bucket }

// createBucket creates the bucket unless it exists and is ours.
func (s *Store) createBucket(ctx context.Context) error {
	_, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &s.bucket})
	if err == nil {
		return nil
	}
	if !isNotFound(err) {
		return fmt.Errorf("s3blob: bucket %q: %s: %w", s.bucket, awsconfig.Reason(err), err)
	}
	in := &s3.CreateBucketInput{Bucket: &s.bucket}
	if r := s.aws.Region; r != "" && r != "us-east-1" {
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraint(r)}
	}
	_, err = s.client.CreateBucket(ctx, in)
	var owned *types.BucketAlreadyOwnedByYou
	if err != nil && !errors.As(err, &owned) {
		return fmt.Errorf("s3blob: create bucket %q: %s: %w", s.bucket, awsconfig.Reason(err), err)
	}
	return nil
}

// Put streams r into blob key, replacing any blob there. The new blob
// becomes visible only once r is read to its end without error: a read
// error or an ended ctx aborts the upload, and the previous blob (or none)
// stays. meta is stored as user metadata (x-amz-meta-*); values outside
// printable ASCII are stored RFC 2047-encoded. Put reads r from one
// goroutine into its spool (see the package comment) and returns once the
// last part is stored; a failed upload stops the read.
func (s *Store) Put(ctx context.Context, key, contentType string, meta map[string]string, r io.Reader) (blob.Info, error) {
	if err := ValidKey(key); err != nil {
		return blob.Info{}, err
	}
	md, err := encodeMeta(meta)
	if err != nil {
		return blob.Info{}, fmt.Errorf("s3blob: put %s: %w", key, err)
	}
	sp, err := newSpool(s.spoolDir)
	if err != nil {
		return blob.Info{}, fmt.Errorf("s3blob: put %s: the upload's spool: %w", key, err)
	}
	defer sp.close()
	// An ended ctx fails the upload at once: no part is sent after it,
	// nor the completion. The parts in flight are let finish (for up to
	// abortGrace), since a part cut off mid-way may still be stored by
	// the server after the abort (S3 says so of AbortMultipartUpload),
	// and a started multipart upload is then aborted on a context of its
	// own, so that no parts are left behind.
	rctx, cancel := workers.Grace(ctx, abortGrace)
	defer cancel()
	u := &upload{s: s, ctx: rctx, abortCtx: ctx, key: key, contentType: contentType, meta: md, sp: sp}
	defer context.AfterFunc(ctx, func() { u.fail(ctx.Err()) })()
	sent := make(chan result, 1)
	go func() { sent <- u.run() }()
	// Should the read panic, the upload stops rather than wait for it.
	defer u.fail(errors.New("s3blob: Put ended before its blob"))

	body := &countingReader{ctx: ctx, r: r}
	_, err = io.CopyBuffer(sp, body, make([]byte, spoolBuffer))
	switch {
	case body.err != nil:
		u.fail(fmt.Errorf("reading the blob: %w", body.err))
	case err != nil && !errors.Is(err, errUploadFailed):
		u.fail(err) // the spool's own failure (sourceSpool.Write says so)
	case ctx.Err() != nil:
		u.fail(ctx.Err()) // ended with the blob's last read: nothing is completed
	default:
		sp.end(nil)
	}
	res := <-sent
	if res.err != nil {
		return blob.Info{}, fmt.Errorf("s3blob: put %s: %w", key, res.err)
	}
	return blob.Info{
		Key:         key,
		Size:        body.n,
		ContentType: contentType,
		Location:    s.Location(key),
		Digest:      res.etag,
		Modified:    time.Now().UTC(),
	}, nil
}

// spoolBuffer is how much of a blob Put reads at a time.
const spoolBuffer = 64 << 10

// List returns the Info of every blob whose key starts with prefix (a
// ListObjectsV2 per thousand keys). Content types are not listed.
func (s *Store) List(ctx context.Context, prefix string) ([]blob.Info, error) {
	var out []blob.Info
	pages := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: &prefix})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("s3blob: list %s: %s: %w", prefix, awsconfig.Reason(err), err)
		}
		for _, o := range page.Contents {
			out = append(out, s.info(aws.ToString(o.Key), o.Size, nil, o.ETag, o.LastModified))
		}
	}
	return out, nil
}

// Open returns a streaming reader of blob key and its Info, or an error
// wrapping blob.ErrNotFound. The caller closes the reader; it reads
// the response body under ctx, so ctx must outlive the read.
func (s *Store) Open(ctx context.Context, key string) (io.ReadCloser, blob.Info, error) {
	if err := ValidKey(key); err != nil {
		return nil, blob.Info{}, err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		if isNotFound(err) {
			return nil, blob.Info{}, fmt.Errorf("s3blob: %s: %w", key, blob.ErrNotFound)
		}
		return nil, blob.Info{}, fmt.Errorf("s3blob: get %s: %s: %w", key, awsconfig.Reason(err), err)
	}
	return out.Body, s.info(key, out.ContentLength, out.ContentType, out.ETag, out.LastModified), nil
}

// OpenRange is Open for the n bytes of blob key from byte off, or to its
// end when n < 0: one GetObject with a Range header, so the bytes before
// off are never sent. A range reaching past the end stops there, and an off
// at or past the end reads nothing; Info describes the whole blob.
func (s *Store) OpenRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, blob.Info, error) {
	if err := ValidKey(key); err != nil {
		return nil, blob.Info{}, err
	}
	if off < 0 {
		return nil, blob.Info{}, fmt.Errorf("s3blob: open %s at %d: negative offset", key, off)
	}
	if off == 0 && n < 0 {
		return s.Open(ctx, key)
	}
	if n == 0 {
		info, err := s.Stat(ctx, key)
		if err != nil {
			return nil, blob.Info{}, err
		}
		return io.NopCloser(strings.NewReader("")), info, nil
	}
	rng := fmt.Sprintf("bytes=%d-", off)
	if n > 0 && n <= math.MaxInt64-off {
		rng = fmt.Sprintf("bytes=%d-%d", off, off+n-1)
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key, Range: &rng})
	if err != nil {
		if isNotFound(err) {
			return nil, blob.Info{}, fmt.Errorf("s3blob: %s: %w", key, blob.ErrNotFound)
		}
		if !isInvalidRange(err) {
			return nil, blob.Info{}, fmt.Errorf("s3blob: get %s (%s): %s: %w", key, rng, awsconfig.Reason(err), err)
		}
		// S3 answers 416 for a range starting at or past the end (any
		// range of an empty blob): that reads nothing.
		info, serr := s.Stat(ctx, key)
		if serr != nil {
			return nil, blob.Info{}, serr
		}
		if off < info.Size {
			return nil, blob.Info{}, fmt.Errorf("s3blob: get %s (%s) of %d bytes: %s: %w", key, rng, info.Size, awsconfig.Reason(err), err)
		}
		return io.NopCloser(strings.NewReader("")), info, nil
	}
	size, ok := rangeTotal(aws.ToString(out.ContentRange))
	if !ok {
		out.Body.Close()
		return nil, blob.Info{}, fmt.Errorf("s3blob: get %s (%s): the answer's Content-Range %q names no size", key, rng, aws.ToString(out.ContentRange))
	}
	return out.Body, s.info(key, &size, out.ContentType, out.ETag, out.LastModified), nil
}

// rangeTotal is the complete length in a Content-Range header such as
// "bytes 0-99/1234".
func rangeTotal(h string) (int64, bool) {
	_, total, ok := strings.Cut(h, "/")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(total, 10, 64)
	return n, err == nil && n >= 0
}

// isInvalidRange reports whether err is S3's 416 for a Range outside the
// object.
func isInvalidRange(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "InvalidRange" {
		return true
	}
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusRequestedRangeNotSatisfiable
}

// Stat returns blob key's Info, or an error wrapping blob.ErrNotFound.
func (s *Store) Stat(ctx context.Context, key string) (blob.Info, error) {
	if err := ValidKey(key); err != nil {
		return blob.Info{}, err
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		if isNotFound(err) {
			return blob.Info{}, fmt.Errorf("s3blob: %s: %w", key, blob.ErrNotFound)
		}
		return blob.Info{}, fmt.Errorf("s3blob: stat %s: %s: %w", key, awsconfig.Reason(err), err)
	}
	return s.info(key, out.ContentLength, out.ContentType, out.ETag, out.LastModified), nil
}

// Metadata returns blob key's user metadata, decoded as Put stored it, or
// an error wrapping blob.ErrNotFound.
func (s *Store) Metadata(ctx context.Context, key string) (map[string]string, error) {
	if err := ValidKey(key); err != nil {
		return nil, err
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("s3blob: %s: %w", key, blob.ErrNotFound)
		}
		return nil, fmt.Errorf("s3blob: stat %s: %s: %w", key, awsconfig.Reason(err), err)
	}
	return decodeMeta(out.Metadata), nil
}

// Delete removes blob key. Deleting a missing blob is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := ValidKey(key); err != nil {
		return err
	}
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &key}); err != nil && !isNotFound(err) {
		return fmt.Errorf("s3blob: delete %s: %s: %w", key, awsconfig.Reason(err), err)
	}
	return nil
}

// PresignGet returns a URL that lets its holder GET blob key, without
// credentials, for ttl (at most MaxPresignTTL). It signs locally: it does
// not check that the blob exists.
func (s *Store) PresignGet(ctx context.Context, key string, ttl time.Duration) (string, error) {
	if err := ValidKey(key); err != nil {
		return "", err
	}
	if ttl <= 0 || ttl > MaxPresignTTL {
		return "", fmt.Errorf("s3blob: presign %s: ttl %s outside (0, %s]", key, ttl, MaxPresignTTL)
	}
	req, err := s.presign.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key}, s3.WithPresignExpires(ttl))
	if err != nil {
		return "", fmt.Errorf("s3blob: presign %s: %w", key, err)
	}
	return req.URL, nil
}

// Ping checks that the credentials are usable and the bucket exists and is
// readable with them (HeadBucket). Its error starts with the bucket and a
// reason an operator can act on (awsconfig.Reason).
func (s *Store) Ping(ctx context.Context) error {
	what := fmt.Sprintf("s3 bucket %q", s.bucket)
	if err := awsconfig.CheckCredentials(ctx, s.aws); err != nil {
		return awsconfig.NotReady(what, err)
	}
	_, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &s.bucket})
	if err == nil {
		return nil
	}
	// A HEAD answer has no body, so a 403 cannot tell wrong credentials
	// from a missing permission (and some servers answer an unknown key
	// with 404). A listing of at most one key, which needs the same
	// permission, gets the error's code.
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		_, lerr := s.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &s.bucket, MaxKeys: aws.Int32(1)})
		if lerr != nil {
			err = lerr
		}
	}
	reason := awsconfig.Reason(err)
	var nsb *types.NoSuchBucket
	if errors.As(err, &nsb) || isNotFound(err) || strings.HasPrefix(reason, "not found") {
		reason = "the bucket does not exist"
	}
	return &awsconfig.Unready{Reason: what + ": " + reason, Err: err}
}

// Location is the URL of blob key: "s3://<bucket>/<key>".
func (s *Store) Location(key string) string { return "s3://" + s.bucket + "/" + key }

func (s *Store) info(key string, size *int64, contentType, tag *string, modified *time.Time) blob.Info {
	return blob.Info{
		Key:         key,
		Size:        aws.ToInt64(size),
		ContentType: aws.ToString(contentType),
		Location:    s.Location(key),
		Digest:      etag(tag),
		Modified:    aws.ToTime(modified),
	}
}

// etag is S3's entity tag without its quotes: the MD5 of a single-part
// object, "<md5 of the parts' md5s>-<parts>" of a multipart one. It changes
// whenever the content does, which is what blob.Info.Digest promises
// its readers (the gateway's ETag).
func etag(t *string) string { return strings.Trim(aws.ToString(t), `"`) }

// isNotFound reports whether err says the key (or, for HeadObject, which
// has no error body, possibly the bucket) does not exist.
func isNotFound(err error) bool {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	if errors.As(err, &nsk) || errors.As(err, &nf) {
		return true
	}
	var ae smithy.APIError
	return errors.As(err, &ae) && (ae.ErrorCode() == "NoSuchKey" || ae.ErrorCode() == "NotFound")
}

// ValidKey accepts the keys Butakero makes, and only those:
// "audio/<song_id>.dca" and "staging/<operation_id>.<ext>", ids of 1 to
// 128 letters, digits, '-' or '_', ext of 1 to 10 lower-case letters or
// digits. Anything else wraps ErrInvalidKey.
func ValidKey(key string) error {
	prefix, rest, ok := strings.Cut(key, "/")
	if !ok {
		return fmt.Errorf("%w %q", ErrInvalidKey, key)
	}
	id, ext, ok := strings.Cut(rest, ".")
	switch {
	case !ok || events.ValidSongID(id) != nil || !validExt(ext):
	case prefix == "audio" && ext == "dca":
		return nil
	case prefix == "staging":
		return nil
	}
	return fmt.Errorf("%w %q", ErrInvalidKey, key)
}

func validExt(s string) bool {
	if s == "" || len(s) > 10 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// encodeMeta checks the metadata names (lower-case letters, digits, '-'
// and '_': S3 lower-cases names anyway) and encodes values outside
// printable ASCII, which an HTTP header cannot carry, as RFC 2047 words.
func encodeMeta(meta map[string]string) (map[string]string, error) {
	if len(meta) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(meta))
	for k, v := range meta {
		if !validMetaName(k) {
			return nil, fmt.Errorf("metadata name %q: want lower-case letters, digits, '-' or '_'", k)
		}
		if !printableASCII(v) {
			v = mime.BEncoding.Encode("utf-8", v)
		}
		out[k] = v
	}
	return out, nil
}

func decodeMeta(md map[string]string) map[string]string {
	out := make(map[string]string, len(md))
	var dec mime.WordDecoder
	for k, v := range md {
		if d, err := dec.DecodeHeader(v); err == nil {
			v = d
		}
		out[strings.ToLower(k)] = v
	}
	return out
}

func validMetaName(k string) bool {
	if k == "" || len(k) > 64 {
		return false
	}
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

func printableASCII(s string) bool {
	for _, r := range s {
		if r > unicode.MaxASCII || !unicode.IsPrint(r) {
			return false
		}
	}
	// A value that already looks like an encoded word is encoded again,
	// so that decoding gives it back unchanged.
	return !strings.Contains(s, "=?")
}

// countingReader counts what the upload read, and turns the end of ctx and
// any read error into a failure the upload cannot mistake for the end of
// the blob. err is the first such failure.
type countingReader struct {
	ctx context.Context
	r   io.Reader
	n   int64
	err error
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if err := c.ctx.Err(); err != nil {
		c.err = err
		return 0, err
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}
