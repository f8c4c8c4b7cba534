package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// maxResumes bounds how often DownloadDCA resumes a broken download.
const maxResumes = 3

// DownloadDCA streams a stored song's DCA file into w and returns how many
// bytes it wrote. It holds no more than a small buffer in memory whatever
// the file's length. A song that is unknown or not stored yet is an
// *APIError "not_found". Once the song's loudness is measured, the DCA's
// metadata carries it (butakero.loudness_lufs, butakero.true_peak_db):
// the gateway writes it into the stored header's room, a new version of
// the file (its own ETag) with the same frames.
//
// When the connection breaks mid-file, DownloadDCA asks for the rest with
// a Range request tied to the file's ETag (If-Range), up to a few times,
// so w receives each byte once. Should the file have changed in between,
// it stops with an error rather than mix two versions; w then holds a
// partial file, which the caller discards.
func (c *Client) DownloadDCA(ctx context.Context, songID string, w io.Writer) (int64, error) {
	return c.DownloadDCAFrom(ctx, songID, 0, w)
}

// DownloadDCAFrom is DownloadDCA from byte offset on, to resume a file
// whose first offset bytes the caller already holds (such as a partial
// file on disk). It returns the bytes written to w, not counting offset.
// An offset at or past the file's end is an *APIError
// "range_not_satisfiable".
func (c *Client) DownloadDCAFrom(ctx context.Context, songID string, offset int64, w io.Writer) (int64, error) {
	return c.download(ctx, "dca", songID, offset, w)
}

// DownloadOgg streams a stored song as Ogg Opus (audio/ogg; codecs=opus:
// the DCA's packets in an Ogg stream, GET /v1/songs/{id}/ogg) into w, as
// DownloadDCA does the DCA: resumed with Range and If-Range when the
// connection breaks. This is the stream discord.js bots play
// (StreamType.OggOpus) and browsers decode.
func (c *Client) DownloadOgg(ctx context.Context, songID string, w io.Writer) (int64, error) {
	return c.DownloadOggFrom(ctx, songID, 0, w)
}

// DownloadOggFrom is DownloadOgg from byte offset on (see DownloadDCAFrom).
func (c *Client) DownloadOggFrom(ctx context.Context, songID string, offset int64, w io.Writer) (int64, error) {
	return c.download(ctx, "ogg", songID, offset, w)
}

// download fetches /v1/songs/{id}/{format} from offset on, resuming.
func (c *Client) download(ctx context.Context, format, songID string, offset int64, w io.Writer) (int64, error) {
	what := strings.ToUpper(format)
	if offset < 0 {
		return 0, fmt.Errorf("butakero: negative offset %d", offset)
	}
	var written int64
	etag := ""
	for resume := 0; ; resume++ {
		n, tag, err := c.downloadOnce(ctx, format, songID, offset+written, etag, w)
		written += n
		if err == nil {
			return written, nil
		}
		if tag != "" {
			etag = tag
		}
		var ae *APIError
		var we errWrite
		if errors.As(err, &ae) || errors.As(err, &we) || errors.Is(err, errChanged) || ctx.Err() != nil || resume >= maxResumes || (written > 0 && etag == "") {
			return written, fmt.Errorf("butakero: download the %s of %s: %w", what, songID, err)
		}
		t := time.NewTimer(time.Duration(resume+1) * 250 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return written, fmt.Errorf("butakero: download the %s of %s: %w", what, songID, ctx.Err())
		case <-t.C:
		}
	}
}

// errChanged is a resumed download whose file changed since it began.
var errChanged = errors.New("the file changed during the download")

// errWrite marks a failure of the caller's writer, which no resume mends.
type errWrite struct{ err error }

func (e errWrite) Error() string { return "write: " + e.err.Error() }
func (e errWrite) Unwrap() error { return e.err }

// downloadOnce makes one request for the song's file in format ("dca",
// "ogg") from offset on and copies the body into w. It returns the bytes
// written, the file's ETag and, when the copy did not finish, why.
func (c *Client) downloadOnce(ctx context.Context, format, songID string, offset int64, etag string, w io.Writer) (int64, string, error) {
	req, err := c.newRequest(ctx, http.MethodGet, "/v1/songs/"+url.PathEscape(songID)+"/"+format, nil, nil)
	if err != nil {
		return 0, "", err
	}
	if format == "ogg" {
		req.Header.Set("Accept", "audio/ogg, application/json")
	} else {
		req.Header.Set("Accept", "audio/x-dca, application/json")
	}
	if offset > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(offset, 10)+"-")
		if etag != "" {
			req.Header.Set("If-Range", etag)
		}
	}
	res, err := c.httpClient().Do(req)
	if err != nil {
		return 0, "", err
	}
	switch {
	case offset == 0 && res.StatusCode == http.StatusOK:
	case offset > 0 && res.StatusCode == http.StatusPartialContent:
		if !strings.HasPrefix(res.Header.Get("Content-Range"), "bytes "+strconv.FormatInt(offset, 10)+"-") {
			res.Body.Close()
			return 0, "", fmt.Errorf("the server answered Content-Range %q for offset %d", res.Header.Get("Content-Range"), offset)
		}
	case offset > 0 && res.StatusCode == http.StatusOK:
		// If-Range failed, or the server ignores Range: the whole file
		// again, which cannot follow what w already holds.
		res.Body.Close()
		return 0, "", errChanged
	default:
		return 0, "", apiError(res)
	}
	defer res.Body.Close()
	tag := res.Header.Get("ETag")
	if strings.HasPrefix(tag, "W/") {
		tag = "" // a weak tag may not make a range request conditional
	}
	n, err := io.Copy(writerOnly{w}, res.Body)
	if err == nil && res.ContentLength >= 0 && n != res.ContentLength {
		err = io.ErrUnexpectedEOF
	}
	return n, tag, err
}

// writerOnly hides any ReadFrom of w, so io.Copy's errors from w are
// told apart from the body's.
type writerOnly struct{ w io.Writer }

func (o writerOnly) Write(p []byte) (int, error) {
	n, err := o.w.Write(p)
	if err != nil {
		return n, errWrite{err}
	}
	return n, nil
}
