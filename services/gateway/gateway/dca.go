package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/blob"
	"github.com/butakero/butakero/platform/media/dcahead"
	"github.com/butakero/butakero/platform/projection"
	"github.com/gofiber/fiber/v2"
	lru "github.com/hashicorp/golang-lru/v2"
)

// dcaContentType is the media type the DCA is served as.
const dcaContentType = "audio/x-dca"

// dcaMaxAge is the DCA's Cache-Control max-age in seconds: one day.
const dcaMaxAge = 86400

// dca handles GET (and HEAD) /v1/songs/:id/dca: the song's DCA streamed
// from the blob store, never held in memory. One "Range: bytes=…" is
// honoured with 206, read from the blob store from its first byte on (no
// byte before it is fetched); a Range the blob cannot satisfy gets 416;
// several ranges, or a malformed one, are ignored and the whole blob is
// sent, as RFC 9110 allows. HEAD and 304 read no audio (the header, to
// complete it with the loudness, once per song: completedHead).
func (s *server) dca(c *fiber.Ctx) error {
	id, err := songParam(c)
	if err != nil {
		return err
	}
	return s.storedDCA(c, id, true)
}

// songParam is the route's song id, checked (events.ValidSongID) and named
// on the request's log line.
func songParam(c *fiber.Ctx) (string, error) {
	id := c.Params("id")
	if events.ValidSongID(id) != nil {
		return "", errorf(CodeBadRequest, "song id must be 1 to 128 letters, digits, '-' or '_'")
	}
	c.Locals(localSongID, id)
	return id, nil
}

// statDCA stats song id's stored DCA under its key. A missing DCA is a
// 404 that says whether the song is known at all.
func (s *server) statDCA(ctx context.Context, id string) (string, blob.Info, error) {
	key := blob.DCAKey(id)
	info, err := s.blobs.Stat(ctx, key)
	if errors.Is(err, blob.ErrNotFound) {
		if _, serr := s.store.Song(ctx, id); errors.Is(serr, projection.ErrNotFound) {
			return key, info, errorf(CodeNotFound, "unknown song")
		}
		return key, info, errorf(CodeNotFound, "the song has no DCA yet")
	}
	if err != nil {
		return key, info, internal(fmt.Errorf("stat DCA %s: %w", key, err))
	}
	return key, info, nil
}

// cacheHeaders sets the caching headers of an answer made from a stored
// DCA (Cache-Control with maxAge, ETag etag when not empty,
// Accept-Ranges). It reports
// whether the client's If-None-Match already holds etag (answer 304), and
// the Range to honour: none when If-Range names another version.
//
// A song's DCA changes only if it is encoded again: caches may keep it a
// day and revalidate with the ETag. Behind API keys it is private.
func (s *server) cacheHeaders(c *fiber.Ctx, etag string, maxAge int) (rangeHeader string, notModified bool) {
	scope, age := "public", "max-age="+strconv.Itoa(maxAge)
	if s.keys.enabled() {
		scope = "private"
	}
	if maxAge == 0 {
		age = "no-cache"
	}
	c.Set(fiber.HeaderCacheControl, scope+", "+age)
	if etag != "" {
		c.Set(fiber.HeaderETag, etag)
	}
	c.Set(fiber.HeaderAcceptRanges, "bytes")
	if etag != "" && etagMatch(c.Get(fiber.HeaderIfNoneMatch), etag) {
		return "", true
	}
	rangeHeader = c.Get(fiber.HeaderRange)
	if ir := c.Get(fiber.HeaderIfRange); ir != "" && (etag == "" || ir != etag) {
		rangeHeader = "" // the client's copy is stale: send it all
	}
	return rangeHeader, false
}

// startStored starts an answer made from song id's stored DCA, as /dca
// and /ogg give it: it stats the DCA (statDCA) and sets the caching
// headers (revalidate). It returns the DCA's key, what Stat said of it and
// the Range to honour; done reports that the answer is over, with err to
// return: the DCA is missing (a 404) or unreadable, or the client's copy
// is current (304 sent).
func (s *server) startStored(ctx context.Context, c *fiber.Ctx, id, etagPrefix string) (key string, info blob.Info, rangeHeader string, done bool, err error) {
	key, info, err = s.statDCA(ctx, id)
	if err != nil {
		return key, info, "", true, err
	}
	rangeHeader, done, err = s.revalidate(c, info, etagPrefix, dcaMaxAge)
	return key, info, rangeHeader, done, err
}

// revalidate sets the caching headers of an answer made from the stored
// DCA info (cacheHeaders): the ETag the DCA's digest after etagPrefix so
// that each form of the DCA has its own, a Cache-Control max-age of
// maxAge seconds (0: no-cache, caches ask every time). It answers 304
// when the client's copy is current (done).
func (s *server) revalidate(c *fiber.Ctx, info blob.Info, etagPrefix string, maxAge int) (rangeHeader string, done bool, err error) {
	etag := ""
	if info.Digest != "" {
		etag = `"` + etagPrefix + info.Digest + `"`
	}
	rangeHeader, notModified := s.cacheHeaders(c, etag, maxAge)
	if notModified {
		return "", true, c.SendStatus(fiber.StatusNotModified)
	}
	return rangeHeader, false, nil
}

// rangeAnswer starts the answer of a stored body of size bytes, called
// what in an error: 416 for a Range past its end; else its Content-Type,
// and 206 with Content-Range for a range. It returns the bytes to send,
// and headOnly for a HEAD, whose answer is then complete.
func rangeAnswer(c *fiber.Ctx, rangeHeader string, size int64, contentType, what string) (start, length int64, headOnly bool, err error) {
	start, length, partial, err := parseRange(rangeHeader, size)
	if err != nil {
		c.Set(fiber.HeaderContentRange, "bytes */"+strconv.FormatInt(size, 10))
		return 0, 0, false, errorf(CodeRangeNotSatisfiable, fmt.Sprintf("range not satisfiable: %s has %d bytes", what, size))
	}
	c.Set(fiber.HeaderContentType, contentType)
	if partial {
		c.Status(fiber.StatusPartialContent)
		c.Set(fiber.HeaderContentRange, fmt.Sprintf("bytes %d-%d/%d", start, start+length-1, size))
	}
	if c.Method() == fiber.MethodHead {
		c.Response().Header.SetContentLength(int(length))
		return start, length, true, nil
	}
	return start, length, false, nil
}

// storedDCA answers song id's stored DCA: the stored bytes, and with
// complete (/v1/songs/{id}/dca) the header's metadata completed with the
// catalog's loudness when the stored header has none (completedHead).
// Without it (/v1/operations/{id}/dca, whose followers read the stored
// bytes as they were made and resume on them) the stored bytes as they
// are.
func (s *server) storedDCA(c *fiber.Ctx, id string, complete bool) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), storeTimeout)
	defer cancel()
	// The blob store is the truth of what is stored: a DCA is served as
	// soon as the encoder stored it, before the recorder has put it in the
	// catalog (the status already says success then, read from the
	// stream).
	key, info, err := s.statDCA(ctx, id)
	if err != nil {
		return err
	}
	var head *completed
	maxAge := dcaMaxAge
	if complete {
		var final bool
		if head, final, err = s.completedHead(ctx, id, key, info); err != nil {
			return err
		}
		if !final {
			// The header may gain the loudness soon: caches ask again
			// (a 304 while it has not).
			maxAge = 0
		}
	}
	prefix, size := "", info.Size
	if head != nil {
		// Another form of the DCA than the stored bytes: its own ETag.
		prefix, size = headETagPrefix, info.Size-head.stored+int64(len(head.header))
	}
	rangeHeader, done, err := s.revalidate(c, info, prefix, maxAge)
	if done {
		return err
	}
	start, length, headOnly, err := rangeAnswer(c, rangeHeader, size, dcaContentType, "the DCA")
	if err != nil || headOnly {
		return err
	}

	// The part of the answer in the completed header, then the stored
	// bytes from the first frame on.
	var front []byte
	off := start
	if head != nil {
		if start < int64(len(head.header)) {
			front = head.header[start:min(int64(len(head.header)), start+length)]
		}
		off = head.stored + max(0, start-int64(len(head.header)))
	}
	rest := length - int64(len(front))
	if rest == 0 {
		return c.Send(front)
	}
	// The blob is read after this handler returns, while fasthttp writes
	// the body: its context ends when fasthttp closes the body.
	bctx, bcancel := context.WithTimeout(context.WithoutCancel(c.UserContext()), streamTimeout)
	rc, opened, err := s.blobs.OpenRange(bctx, key, off, rest)
	if err != nil {
		bcancel()
		if errors.Is(err, blob.ErrNotFound) {
			return errorf(CodeNotFound, "the song's DCA is not stored")
		}
		return internal(fmt.Errorf("open DCA %s at %d: %w", key, off, err))
	}
	body := &blobBody{front: front, rc: rc, cancel: bcancel}
	if opened.Size != info.Size || opened.Digest != info.Digest {
		// Encoded again between Stat and OpenRange: these bytes do not
		// match the headers set above. The client's retry gets the new one.
		_ = body.Close()
		return internal(fmt.Errorf("DCA %s changed while being opened", key))
	}
	return c.SendStream(body, int(length))
}

// headETagPrefix marks the ETag of a DCA served with its header completed
// (completedHead): the same stored bytes with and without the loudness
// are two versions to a cache.
const headETagPrefix = "l-"

// completed is a stored DCA's header completed with the song's loudness:
// header replaces the stored one's first stored bytes.
type completed struct {
	header []byte
	stored int64
}

// completedHead returns the header song id's stored DCA (key, info) is
// served with when it is not the stored one: the encoder streams a DCA
// header first and cannot know the song's loudness then, so the header of
// a streamed DCA has none; the catalog has it once measured
// (dca.encoded, loudness.measured), and the answer's metadata carries it
// (package dcahead). It returns nil when the stored header is served as
// it is: the catalog has no loudness yet (or cannot be read now: the
// stored bytes are still the song), the stored header has one, or it is
// not one dcahead can complete (logged). final reports that the answer
// is the DCA's for good: false while the catalog has no loudness. A
// final answer is remembered by the song and the DCA's digest, which
// names the stored bytes: a loudness, once measured, is the DCA's for
// good.
func (s *server) completedHead(ctx context.Context, id, key string, info blob.Info) (h *completed, final bool, err error) {
	// The loudness is the song's: two songs of the same bytes are two
	// entries.
	cacheKey := id + " " + info.Digest
	if info.Digest != "" {
		if h, ok := s.heads.Get(cacheKey); ok {
			return h, true, nil
		}
	}
	song, err := s.store.Song(ctx, id)
	if errors.Is(err, projection.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		s.log.Warn("the catalog did not answer: the DCA is served with its stored header", "song_id", id, "error", err)
		return nil, false, nil
	}
	l := dcahead.Loudness{LUFS: song.LoudnessLUFS, TruePeakDB: song.TruePeakDB}
	if l.LUFS == nil && l.TruePeakDB == nil {
		return nil, false, nil
	}
	stored, err := s.readHead(ctx, key, info)
	var header []byte
	changed := false
	if err == nil {
		header, changed, err = dcahead.WithLoudness(stored, l)
	}
	var e *Error
	if errors.As(err, &e) {
		return nil, false, err // the store: a 404 or a 500 the client retries
	}
	if err != nil {
		// The stored bytes are still the song's DCA: served as they are.
		s.log.Warn("the DCA's header cannot carry the loudness: served as stored", "song_id", id, "dca_key", key, "error", err)
	}
	if changed {
		h = &completed{header: header, stored: int64(len(stored))}
	}
	if info.Digest != "" {
		s.heads.Add(cacheKey, h)
	}
	return h, true, nil
}

// newHeads makes server.heads: 1024 headers of a few hundred bytes.
func newHeads() *lru.Cache[string, *completed] {
	c, _ := lru.New[string, *completed](1024) // fails only for size <= 0
	return c
}

// headProbe is how much of a stored DCA readHead reads first: a
// Butakero header is a few hundred bytes.
const headProbe = 4096

// readHead reads the header of the stored DCA key (info): its first
// headProbe bytes, then the whole header if it is longer. A store that
// fails is an *Error; a header that is none wraps dcahead.ErrFormat.
func (s *server) readHead(ctx context.Context, key string, info blob.Info) ([]byte, error) {
	read := func(n int64) ([]byte, error) {
		rc, opened, err := s.blobs.OpenRange(ctx, key, 0, n)
		if err != nil {
			if errors.Is(err, blob.ErrNotFound) {
				return nil, errorf(CodeNotFound, "the song's DCA is not stored")
			}
			return nil, internal(fmt.Errorf("open DCA %s: %w", key, err))
		}
		defer rc.Close()
		if opened.Digest != info.Digest {
			return nil, internal(fmt.Errorf("DCA %s changed while being opened", key))
		}
		b, err := io.ReadAll(rc)
		if err != nil {
			return nil, internal(fmt.Errorf("read DCA %s: %w", key, err))
		}
		return b, nil
	}
	b, err := read(min(info.Size, headProbe))
	if err != nil {
		return nil, err
	}
	n, err := dcahead.Len(b)
	if err != nil {
		return nil, err
	}
	if n > int64(len(b)) {
		if n > info.Size {
			return nil, fmt.Errorf("%w: a header of %d bytes in a file of %d", dcahead.ErrFormat, n, info.Size)
		}
		if b, err = read(n); err != nil {
			return nil, err
		}
	}
	return b[:n], nil
}

// blobBody is a response body on a blob. fasthttp closes it once the body is
// written or the client is gone; closing ends the blob read and its context.
type blobBody struct {
	front  []byte // sent before rc
	rc     io.ReadCloser
	cancel context.CancelFunc
}

func (b *blobBody) Read(p []byte) (int, error) {
	if len(b.front) > 0 {
		n := copy(p, b.front)
		b.front = b.front[n:]
		return n, nil
	}
	return b.rc.Read(p)
}

func (b *blobBody) Close() error {
	err := b.rc.Close()
	b.cancel()
	return err
}

// errUnsatisfiable is parseRange's answer to a range outside the blob.
var errUnsatisfiable = errors.New("range not satisfiable")

// parseRange reads a Range header against a blob of size bytes and returns
// the part to send. partial is false when the whole blob is to be sent: no
// header, another unit, several ranges or a malformed one.
func parseRange(h string, size int64) (start, length int64, partial bool, err error) {
	full := func() (int64, int64, bool, error) { return 0, size, false, nil }
	unit, spec, ok := strings.Cut(strings.TrimSpace(h), "=")
	if !ok || !strings.EqualFold(strings.TrimSpace(unit), "bytes") || strings.Contains(spec, ",") {
		return full()
	}
	first, last, ok := strings.Cut(strings.TrimSpace(spec), "-")
	if !ok {
		return full()
	}
	first, last = strings.TrimSpace(first), strings.TrimSpace(last)
	if first == "" {
		// Suffix range: the last n bytes.
		n, ok := digits(last)
		if !ok {
			return full()
		}
		if n == 0 || size == 0 {
			return 0, 0, false, errUnsatisfiable
		}
		n = min(n, size)
		return size - n, n, true, nil
	}
	from, ok := digits(first)
	if !ok {
		return full()
	}
	to := size - 1
	if last != "" {
		if to, ok = digits(last); !ok || to < from {
			return full()
		}
	}
	if from >= size {
		return 0, 0, false, errUnsatisfiable
	}
	to = min(to, size-1)
	return from, to - from + 1, true, nil
}

// digits parses a non-negative decimal made of ASCII digits only.
func digits(s string) (int64, bool) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// etagMatch reports whether an If-None-Match header names etag (weak
// comparison, as RFC 9110 asks for If-None-Match).
func etagMatch(header, etag string) bool {
	if header == "" {
		return false
	}
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}
