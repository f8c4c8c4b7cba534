package client

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// PlayDCA streams an operation's song into w as a DCA from its first
// frames, while the operation still works on it (GET
// /v1/operations/{id}/dca): the bytes reach w as the encoder makes them,
// so a player reading what w wrote (a file as it grows, a pipe) can start
// a long song about a second after asking for it. A song already stored
// comes whole. It returns once the whole DCA is written, byte for byte the
// stored file, and the bytes written.
//
// An operation that fails before the first frame is an *APIError
// "operation_failed" (its Message says why). When the body breaks
// (the connection, or the encode failing mid-way), PlayDCA asks again, a
// few times, and skips what w already holds, provided the new answer is
// the same DCA (its header, which names the encode, is the same);
// otherwise, or when the operation has failed meanwhile, it stops with an
// error and w holds a partial DCA.
func (c *Client) PlayDCA(ctx context.Context, opID string, w io.Writer) (int64, error) {
	var written int64
	var header []byte // the DCA's header, as written to w
	for resume := 0; ; resume++ {
		n, err := c.playOnce(ctx, "dca", opID, written, &header, w)
		written += n
		if err == nil {
			return written, nil
		}
		var ae *APIError
		var we errWrite
		if errors.As(err, &ae) || errors.As(err, &we) || errors.Is(err, errChanged) || ctx.Err() != nil || resume >= maxResumes {
			return written, fmt.Errorf("butakero: play the DCA of operation %s: %w", opID, err)
		}
		t := time.NewTimer(time.Duration(resume+1) * 250 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return written, fmt.Errorf("butakero: play the DCA of operation %s: %w", opID, ctx.Err())
		case <-t.C:
		}
	}
}

// PlayOgg streams an operation's song as Ogg Opus (GET
// /v1/operations/{id}/ogg: what a discord.js bot plays) into w from its
// first frames, as PlayDCA does the DCA, but without resuming: a broken
// body is an error, and w holds a partial stream.
func (c *Client) PlayOgg(ctx context.Context, opID string, w io.Writer) (int64, error) {
	var header []byte
	n, err := c.playOnce(ctx, "ogg", opID, 0, &header, w)
	if err != nil {
		return n, fmt.Errorf("butakero: play the Ogg of operation %s: %w", opID, err)
	}
	return n, nil
}

// playOnce makes one request for the operation's song in format and
// copies its body to w, dropping its first skip bytes (which w holds
// already). For a DCA, *header keeps the DCA's header as first written,
// and a later answer must start with the same.
func (c *Client) playOnce(ctx context.Context, format, opID string, skip int64, header *[]byte, w io.Writer) (int64, error) {
	req, err := c.newRequest(ctx, http.MethodGet, "/v1/operations/"+url.PathEscape(opID)+"/"+format, nil, nil)
	if err != nil {
		return 0, err
	}
	if format == "ogg" {
		req.Header.Set("Accept", "audio/ogg, application/json")
	} else {
		req.Header.Set("Accept", "audio/x-dca, application/json")
	}
	res, err := c.httpClient().Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return 0, apiError(res)
	}
	body := io.Reader(res.Body)
	if format == "dca" {
		h, err := readDCAHeader(res.Body)
		if err != nil {
			return 0, err
		}
		if *header != nil && !bytes.Equal(h, *header) {
			return 0, errChanged
		}
		body = io.MultiReader(bytes.NewReader(h), res.Body)
		if *header == nil {
			*header = h
		}
	}
	if skip > 0 {
		if _, err := io.CopyN(io.Discard, body, skip); err != nil {
			return 0, err
		}
	}
	n, err := io.Copy(writerOnly{w}, body)
	if err == nil && res.ContentLength >= 0 && skip+n != res.ContentLength {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// readDCAHeader reads a DCA1 header: magic, length, metadata.
func readDCAHeader(r io.Reader) ([]byte, error) {
	h := make([]byte, 8)
	if _, err := io.ReadFull(r, h); err != nil {
		return nil, err
	}
	if string(h[:4]) != "DCA1" {
		return nil, errors.New("the answer is not a DCA1 file")
	}
	n := binary.LittleEndian.Uint32(h[4:])
	if n == 0 || n > 16<<20 {
		return nil, fmt.Errorf("a DCA header of %d bytes", n)
	}
	h = append(h, make([]byte, n)...)
	if _, err := io.ReadFull(r, h[8:]); err != nil {
		return nil, err
	}
	return h, nil
}
