package gateway

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/butakero/butakero/platform/blob"
	"github.com/butakero/butakero/platform/media/oggopus"
	"github.com/gofiber/fiber/v2"
	lru "github.com/hashicorp/golang-lru/v2"
)

// oggContentType is the media type the Ogg Opus stream is served as.
const oggContentType = "audio/ogg; codecs=opus"

// oggSizes remembers the Ogg length of DCAs already served, by the DCA's
// digest: a length is a pass over the whole DCA, and a player asks for
// ranges of one song many times. 4096 entries are about 400 KB.
type oggSizes struct{ c *lru.Cache[string, int64] }

func newOggSizes() *oggSizes {
	c, _ := lru.New[string, int64](4096) // fails only for size <= 0
	return &oggSizes{c}
}

// ogg handles GET (and HEAD) /v1/songs/:id/ogg: the song's stored DCA as
// an Ogg Opus stream (package oggopus), built on the fly from the DCA's
// packets, never stored and never held in memory. It answers as /dca does:
// one Range (206, 416 past the end), an ETag derived from the DCA's (with
// If-None-Match and If-Range) and the same Cache-Control. Its length is
// known by muxing the DCA once into a counter (remembered per DCA digest);
// a range is muxed from the start, the bytes before it dropped.
func (s *server) ogg(c *fiber.Ctx) error {
	id, err := songParam(c)
	if err != nil {
		return err
	}
	return s.storedOgg(c, id)
}

// storedOgg answers song id's stored DCA as Ogg Opus, as
// /v1/songs/{id}/ogg does.
func (s *server) storedOgg(c *fiber.Ctx, id string) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), storeTimeout)
	defer cancel()
	key, info, rangeHeader, done, err := s.startStored(ctx, c, id, "ogg-")
	if done {
		return err
	}

	// The serial number is the song's, so the same DCA is always the
	// same bytes (ranges of two requests fit together).
	serial := crc32.ChecksumIEEE([]byte(id))
	size, ok := int64(0), false
	if info.Digest != "" {
		size, ok = s.oggSizes.c.Get(info.Digest)
	}
	if !ok {
		rc, opened, err := s.blobs.OpenRange(ctx, key, 0, -1)
		if err != nil {
			return internal(fmt.Errorf("open DCA %s: %w", key, err))
		}
		var n countWriter
		err = oggopus.MuxDCA(&n, rc, serial)
		rc.Close()
		if err != nil {
			return internal(fmt.Errorf("mux DCA %s: %w", key, err))
		}
		if opened.Digest != info.Digest {
			return internal(fmt.Errorf("DCA %s changed while being read", key))
		}
		size = int64(n)
		if info.Digest != "" {
			s.oggSizes.c.Add(info.Digest, size)
		}
	}

	start, length, headOnly, err := rangeAnswer(c, rangeHeader, size, oggContentType, "the Ogg stream")
	if err != nil || headOnly {
		return err
	}

	// As for /dca, the body is written after this handler returns.
	bctx, bcancel := context.WithTimeout(context.WithoutCancel(c.UserContext()), streamTimeout)
	rc, opened, err := s.blobs.OpenRange(bctx, key, 0, -1)
	if err != nil {
		bcancel()
		if errors.Is(err, blob.ErrNotFound) {
			return errorf(CodeNotFound, "the song's DCA is not stored")
		}
		return internal(fmt.Errorf("open DCA %s: %w", key, err))
	}
	if opened.Digest != info.Digest {
		rc.Close()
		bcancel()
		return internal(fmt.Errorf("DCA %s changed while being opened", key))
	}
	pr, pw := io.Pipe()
	go func() {
		defer rc.Close()
		err := oggopus.MuxDCA(&window{w: pw, skip: start, left: length}, rc, serial)
		if errors.Is(err, errWindowFull) {
			err = nil
		}
		pw.CloseWithError(err)
	}()
	return c.SendStream(&blobBody{rc: pr, cancel: bcancel}, int(length))
}

// countWriter counts the bytes written to it.
type countWriter int64

func (n *countWriter) Write(p []byte) (int, error) { *n += countWriter(len(p)); return len(p), nil }

// errWindowFull stops a mux once the range is written.
var errWindowFull = errors.New("gateway: range written")

// window passes on the bytes of [skip, skip+left) of what is written to it.
type window struct {
	w          io.Writer
	skip, left int64
}

func (x *window) Write(p []byte) (int, error) {
	n := len(p)
	if x.skip >= int64(len(p)) {
		x.skip -= int64(len(p))
		return n, nil
	}
	p = p[x.skip:]
	x.skip = 0
	if int64(len(p)) > x.left {
		p = p[:x.left]
	}
	if _, err := x.w.Write(p); err != nil {
		return 0, err
	}
	x.left -= int64(len(p))
	if x.left == 0 {
		return n, errWindowFull
	}
	return n, nil
}
