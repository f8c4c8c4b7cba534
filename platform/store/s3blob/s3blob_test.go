package s3blob_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net/http"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/butakero/butakero/platform/blob"
	"github.com/butakero/butakero/platform/runtime/config"
	"github.com/butakero/butakero/platform/store/awsconfig"
	"github.com/butakero/butakero/platform/store/s3blob"
	"github.com/butakero/butakero/platform/testkit/awstest"
	"github.com/butakero/butakero/platform/testkit/blobtest"
)

func TestMain(m *testing.M) { awstest.Main(m) }

// newStore returns a store on a fresh bucket of the test's versitygw.
func newStore(t *testing.T) *s3blob.Store {
	t.Helper()
	srv := awstest.S3(t)
	s, err := s3blob.New(t.Context(), srv.AWS(), s3blob.Options{Bucket: awstest.Name("blobs"), Endpoint: srv.Endpoint, AutoCreate: true})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestContract(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blob.Store { return newStore(t) })
}

func TestKeysComeOnlyFromIDs(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	cases := []struct {
		key string
		ok  bool
	}{
		{"audio/dQw4w9WgXcQ.dca", true},
		{"audio/url-0123abcd.dca", true},
		{"staging/3f6c0e1f9b0a4c7e.m4a", true},
		{"staging/op_1.webm", true},
		{"audio/x.mp3", false},
		{"audio/../secret.dca", false},
		{"audio/a/b.dca", false},
		{"staging/op.M4A", false},
		{"staging/op.m4a.exe", false},
		{"staging/op", false},
		{"other/x.dca", false},
		{"/audio/x.dca", false},
		{"audio/.dca", false},
		{"audio/sp ace.dca", false},
		{"", false},
	}
	for _, tc := range cases {
		t.Run(tc.key, func(t *testing.T) {
			err := s3blob.ValidKey(tc.key)
			if (err == nil) != tc.ok {
				t.Fatalf("ValidKey(%q) = %v, want ok=%v", tc.key, err, tc.ok)
			}
			if tc.ok {
				return
			}
			if _, err := s.Put(ctx, tc.key, "", nil, strings.NewReader("x")); !errors.Is(err, s3blob.ErrInvalidKey) {
				t.Errorf("Put: %v, want ErrInvalidKey", err)
			}
			if _, _, err := s.Open(ctx, tc.key); !errors.Is(err, s3blob.ErrInvalidKey) {
				t.Errorf("Open: %v, want ErrInvalidKey", err)
			}
			if _, err := s.Stat(ctx, tc.key); !errors.Is(err, s3blob.ErrInvalidKey) {
				t.Errorf("Stat: %v, want ErrInvalidKey", err)
			}
			if err := s.Delete(ctx, tc.key); !errors.Is(err, s3blob.ErrInvalidKey) {
				t.Errorf("Delete: %v, want ErrInvalidKey", err)
			}
			if _, err := s.PresignGet(ctx, tc.key, time.Minute); !errors.Is(err, s3blob.ErrInvalidKey) {
				t.Errorf("PresignGet: %v, want ErrInvalidKey", err)
			}
		})
	}
}

// TestStreamsInParts checks, through the plain S3 API, that a large blob
// went up as a multipart upload of 5 MiB parts (never whole), that a failed
// one left no upload behind, and that content type and metadata are kept.
func TestStreamsInParts(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	const key = "audio/big-song.dca"
	meta := map[string]string{"title": "Canción número 1 — ☃", "duration_ms": "180000", "song_id": "big-song"}
	if _, err := s.Put(ctx, key, "audio/x-dca", meta, &zeros{n: blobtest.BigSize}); err != nil {
		t.Fatal(err)
	}
	head, err := s.Client().HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.Bucket()), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	if tag := strings.Trim(aws.ToString(head.ETag), `"`); !strings.HasSuffix(tag, "-3") {
		t.Errorf("ETag %q: want a multipart object of 3 parts", tag)
	}
	if aws.ToInt64(head.ContentLength) != blobtest.BigSize || aws.ToString(head.ContentType) != "audio/x-dca" {
		t.Errorf("HeadObject: %d bytes of %q", aws.ToInt64(head.ContentLength), aws.ToString(head.ContentType))
	}
	got, err := s.Metadata(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range meta {
		if got[k] != v {
			t.Errorf("metadata %s = %q, want %q", k, got[k], v)
		}
	}

	failed := &zeros{n: blobtest.BigSize, failAt: 11 << 20}
	if _, err := s.Put(ctx, "staging/failed.webm", "audio/webm", nil, failed); err == nil {
		t.Fatal("a failing reader's Put succeeded")
	}
	ups, err := s.Client().ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(s.Bucket())})
	if err != nil {
		t.Fatal(err)
	}
	if len(ups.Uploads) != 0 {
		t.Errorf("%d multipart uploads left after a failed Put", len(ups.Uploads))
	}
}

// TestSpoolsItsParts checks that a Put sends its parts from a spool file,
// never from memory: a 40 MiB blob goes up allocating less than one part
// (the SDK's uploader kept three 5 MiB parts and the first one), is read
// back byte for byte, and leaves nothing in the spool's directory; and
// that a failed upload stops the read of its blob.
func TestSpoolsItsParts(t *testing.T) {
	srv := awstest.S3(t)
	dir := t.TempDir()
	s, err := s3blob.New(t.Context(), srv.AWS(), s3blob.Options{Bucket: awstest.Name("blobs"), Endpoint: srv.Endpoint, AutoCreate: true, SpoolDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	const size = 40<<20 + 12345
	want := sha256.New()
	src := io.TeeReader(io.LimitReader(&pattern{}, size), want)

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	info, err := s.Put(ctx, "audio/spooled.dca", "audio/x-dca", nil, src)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != size {
		t.Fatalf("Put stored %d bytes, want %d", info.Size, size)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc >= s3blob.MinPartSize {
		t.Errorf("Put of %d bytes allocated %d bytes: a part's worth or more", size, alloc)
	}
	rc, _, err := s.Open(ctx, "audio/spooled.dca")
	if err != nil {
		t.Fatal(err)
	}
	got := sha256.New()
	n, err := io.Copy(got, rc)
	rc.Close()
	if err != nil || n != size || !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		t.Fatalf("read back %d bytes (%v), want the %d put, byte for byte", n, err, size)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("the spool directory holds %d files after the Put", len(left))
	}

	// A bucket that does not exist: the upload fails, and Put returns
	// instead of reading an endless blob forever.
	missing, err := s3blob.New(ctx, srv.AWS(), s3blob.Options{Bucket: awstest.Name("missing"), Endpoint: srv.Endpoint, SpoolDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	endless := &zeros{n: 1 << 50}
	if _, err := missing.Put(ctx, "audio/never.dca", "audio/x-dca", nil, endless); err == nil {
		t.Fatal("Put into a missing bucket succeeded")
	} else if !strings.Contains(err.Error(), "multipart") {
		t.Errorf("Put into a missing bucket: %v, want the multipart upload's failure", err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("the spool directory holds %d files after a failed Put", len(left))
	}

	// A ctx that ends once the whole blob is read, parts still to send:
	// nothing is completed, and the multipart upload is aborted.
	cctx, cancel := context.WithCancel(ctx)
	late := &cancelAtEOF{r: io.LimitReader(&pattern{}, 3*s3blob.MinPartSize+99), cancel: cancel}
	if _, err := s.Put(cctx, "audio/cancelled.dca", "audio/x-dca", nil, late); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put whose ctx ended after the last read: %v, want context.Canceled", err)
	}
	if _, err := s.Stat(ctx, "audio/cancelled.dca"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Stat of the cancelled blob: %v, want not found", err)
	}
	ups, err := s.Client().ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(s.Bucket())})
	if err != nil {
		t.Fatal(err)
	}
	if len(ups.Uploads) != 0 {
		t.Errorf("%d multipart uploads left after a cancelled Put", len(ups.Uploads))
	}
}

// cancelAtEOF reads r and cancels its context as it returns r's end.
type cancelAtEOF struct {
	r      io.Reader
	cancel context.CancelFunc
}

func (c *cancelAtEOF) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err == io.EOF {
		c.cancel()
	}
	return n, err
}

// pattern is an endless reader of bytes that are not all alike.
type pattern struct{ off int64 }

func (p *pattern) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = byte(p.off*7 + p.off>>11)
		p.off++
	}
	return len(b), nil
}

func TestPresignGet(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	body := []byte("a DCA anyone with the URL may fetch")
	if _, err := s.Put(ctx, "audio/shared.dca", "audio/x-dca", nil, bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	get := func(t *testing.T, url string) (int, []byte) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	url, err := s.PresignGet(ctx, "audio/shared.dca", 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		url  string
		want int
	}{
		{"the presigned URL", url, http.StatusOK},
		{"the URL without its signature", strings.Split(url, "?")[0], http.StatusForbidden},
		{"a tampered URL", strings.Replace(url, "audio/shared.dca", "audio/other.dca", 1), http.StatusForbidden},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, got := get(t, tc.url)
			if code != tc.want {
				t.Fatalf("HTTP %d, want %d (%s)", code, tc.want, got)
			}
			if tc.want == http.StatusOK && !bytes.Equal(got, body) {
				t.Errorf("got %q, want %q", got, body)
			}
		})
	}
	for _, ttl := range []time.Duration{0, -time.Second, 8 * 24 * time.Hour} {
		if _, err := s.PresignGet(ctx, "audio/shared.dca", ttl); err == nil {
			t.Errorf("PresignGet with ttl %s succeeded", ttl)
		}
	}
}

// TestPing checks that Ping names what an operator must fix.
func TestPing(t *testing.T) {
	srv := awstest.S3(t)
	ctx := t.Context()
	existing := newStore(t).Bucket()
	cases := []struct {
		name   string
		aws    aws.Config
		bucket string
		want   string // in the error; "" means no error
	}{
		{"reachable", srv.AWS(), existing, ""},
		{"wrong secret", awsconfig.Static(awstest.Region, awstest.AccessKey, "not-the-secret"), existing, "credentials rejected"},
		{"unknown access key", awsconfig.Static(awstest.Region, "nosuchkey", awstest.SecretKey), existing, "credentials rejected"},
		{"missing bucket", srv.AWS(), awstest.Name("missing"), "does not exist"},
		{"no credentials", aws.Config{Region: awstest.Region}, existing, "no AWS credentials"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := s3blob.New(ctx, tc.aws, s3blob.Options{Bucket: tc.bucket, Endpoint: srv.Endpoint})
			if err != nil {
				t.Fatalf("New without AutoCreate sends nothing, yet: %v", err)
			}
			err = s.Ping(ctx)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Ping: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.bucket)):
				t.Fatalf("Ping: %v, want an error naming the bucket and %q", err, tc.want)
			}
		})
	}
}

// TestOpenFromConfig opens the store as the services do, from the seed's
// variables plus the SDK's AWS_ENDPOINT_URL_S3, and auto-creates the bucket.
func TestOpenFromConfig(t *testing.T) {
	srv := awstest.S3(t)
	t.Setenv("AWS_ENDPOINT_URL_S3", srv.Endpoint)
	bucket := awstest.Name("config")
	cfg, err := config.Load(config.FromMap(map[string]string{
		"BUCKET_NAME": bucket, "REGION": awstest.Region,
		"ACCESS_KEY": awstest.AccessKey, "SECRET_KEY": awstest.SecretKey,
		"AWS_AUTO_CREATE": "true",
	}))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 { // the second finds the bucket there
		s, err := s3blob.Open(t.Context(), cfg)
		if err != nil {
			t.Fatalf("Open #%d: %v", i+1, err)
		}
		if err := s.Ping(t.Context()); err != nil {
			t.Fatalf("Ping #%d: %v", i+1, err)
		}
		if got := s.Location("audio/x.dca"); got != "s3://"+bucket+"/audio/x.dca" {
			t.Errorf("Location = %q", got)
		}
	}
	if _, err := s3blob.Open(context.Background(), config.Config{BucketName: bucket}); err == nil {
		t.Error("Open without a region succeeded")
	}
	if _, _, err := newStore(t).Open(t.Context(), "audio/none.dca"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Open of a missing key: %v", err)
	}
}

// zeros yields n zero bytes, failing at failAt when it is positive.
type zeros struct{ n, off, failAt int64 }

func (z *zeros) Read(p []byte) (int, error) {
	if z.failAt > 0 && z.off >= z.failAt {
		return 0, errors.New("broken source")
	}
	if z.off >= z.n {
		return 0, io.EOF
	}
	m := min(int64(len(p)), z.n-z.off)
	clear(p[:m])
	z.off += m
	return int(m), nil
}
