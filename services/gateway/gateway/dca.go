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
	"github.com/butakero/butakero/platform/projection"
	"github.com/gofiber/fiber/v2"
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
// sent, as RFC 9110 allows. HEAD and 304 read no content at all.
func (s *server) dca(c *fiber.Ctx) error {
	id, err := songParam(c)
	if err != nil {
		return err
	}
	return s.storedDCA(c, id)
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
// DCA (Cache-Control, ETag etag when not empty, Accept-Ranges). It reports
// whether the client's If-None-Match already holds etag (answer 304), and
// the Range to honour: none when If-Range names another version.
//
// A song's DCA changes only if it is encoded again: caches may keep it a
// day and revalidate with the ETag. Behind API keys it is private.
func (s *server) cacheHeaders(c *fiber.Ctx, etag string) (rangeHeader string, notModified bool) {
	if s.keys.enabled() {
		c.Set(fiber.HeaderCacheControl, "private, max-age="+strconv.Itoa(dcaMaxAge))
	} else {
		c.Set(fiber.HeaderCacheControl, "public, max-age="+strconv.Itoa(dcaMaxAge))
	}
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
// headers (cacheHeaders), the ETag the DCA's digest after etagPrefix so
// that each form of the DCA has its own. It returns the DCA's key, what
// Stat said of it and the Range to honour; done reports that the answer
// is over, with err to return: the DCA is missing (a 404) or unreadable,
// or the client's copy is current (304 sent).
func (s *server) startStored(ctx context.Context, c *fiber.Ctx, id, etagPrefix string) (key string, info blob.Info, rangeHeader string, done bool, err error) {
	key, info, err = s.statDCA(ctx, id)
	if err != nil {
		return key, info, "", true, err
	}
	etag := ""
	if info.Digest != "" {
		etag = `"` + etagPrefix + info.Digest + `"`
	}
	rangeHeader, notModified := s.cacheHeaders(c, etag)
	if notModified {
		return key, info, "", true, c.SendStatus(fiber.StatusNotModified)
	}
	return key, info, rangeHeader, false, nil
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

// storedDCA answers song id's stored DCA, as /v1/songs/{id}/dca does.
func (s *server) storedDCA(c *fiber.Ctx, id string) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), storeTimeout)
	defer cancel()
	// The blob store is the truth of what is stored: a DCA is served as
	// soon as the encoder stored it, before the recorder has put it in the
	// catalog (the status already says success then, read from the
	// stream).
	key, info, rangeHeader, done, err := s.startStored(ctx, c, id, "")
	if done {
		return err
	}
	start, length, headOnly, err := rangeAnswer(c, rangeHeader, info.Size, dcaContentType, "the DCA")
	if err != nil || headOnly {
		return err
	}

	// The blob is read after this handler returns, while fasthttp writes
	// the body: its context ends when fasthttp closes the body.
	bctx, bcancel := context.WithTimeout(context.WithoutCancel(c.UserContext()), streamTimeout)
	rc, opened, err := s.blobs.OpenRange(bctx, key, start, length)
	if err != nil {
		bcancel()
		if errors.Is(err, blob.ErrNotFound) {
			return errorf(CodeNotFound, "the song's DCA is not stored")
		}
		return internal(fmt.Errorf("open DCA %s at %d: %w", key, start, err))
	}
	body := &blobBody{rc: rc, cancel: bcancel}
	if opened.Size != info.Size || opened.Digest != info.Digest {
		// Encoded again between Stat and OpenRange: these bytes do not
		// match the headers set above. The client's retry gets the new one.
		_ = body.Close()
		return internal(fmt.Errorf("DCA %s changed while being opened", key))
	}
	return c.SendStream(body, int(length))
}

// blobBody is a response body on a blob. fasthttp closes it once the body is
// written or the client is gone; closing ends the blob read and its context.
type blobBody struct {
	rc     io.ReadCloser
	cancel context.CancelFunc
}

func (b *blobBody) Read(p []byte) (int, error) { return b.rc.Read(p) }

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
