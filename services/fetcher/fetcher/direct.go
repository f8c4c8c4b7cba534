package fetcher

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"
	"unicode"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/blob"
	"github.com/butakero/butakero/platform/media/mediahosts"
	"github.com/butakero/butakero/platform/runtime/config"
)

// A direct song (Source SourceDirect: a URL on ALLOWED_MEDIA_HOSTS, which
// the resolver checked) is fetched with net/http, never with yt-dlp, whose
// generic extractor follows a redirect, or a page's <audio src>, to any
// host. ALLOWED_MEDIA_HOSTS holds on every hop (package mediahosts):
//
//   - the song's URL, and each URL a redirect names, must be one an entry
//     admits, host and port; at most maxRedirects redirects are followed;
//   - every connection is checked once its address is known: a host name
//     reaches public addresses only, an internal one (loopback, private,
//     link-local…) only through an entry that is that IP address. No proxy
//     from the environment is used;
//   - the response must be media by its Content-Type (or have none): a web
//     page is refused, never parsed, so nothing it embeds is fetched;
//   - at most Config.DirectMaxBytes are read.
//
// The body streams into the blob store as yt-dlp's output does, with
// progress from Content-Length.

// SourceDirect is events.Song.Source for a URL on an allowed media host.
const SourceDirect = "direct"

const (
	// maxRedirects is how many redirects one direct fetch follows.
	maxRedirects = 5
	// directHeaderTimeout bounds the wait for a response's headers, on
	// each hop; the stage's attempt (STAGE_TIMEOUT) bounds the whole.
	directHeaderTimeout = 30 * time.Second
	// directUserAgent names the fetcher to the media host.
	directUserAgent = "butakero-fetcher/1"
)

var (
	// errRedirectRefused: a redirect named a URL no entry admits.
	errRedirectRefused = errors.New("fetcher: redirect refused by ALLOWED_MEDIA_HOSTS")
	// errTooManyRedirects: more than maxRedirects redirects.
	errTooManyRedirects = errors.New("fetcher: too many redirects")
	// errAddressRefused: a connection would reach an address the host may
	// not (mediahosts.Reachable).
	errAddressRefused = errors.New("fetcher: address refused by ALLOWED_MEDIA_HOSTS")
)

// fetchDirect downloads a direct song's URL with net/http into
// "staging/<opID>.<ext>" and returns the audio.downloaded event, as Fetch
// does. Its permanent failures: a URL, redirect or address the allow-list
// refuses, a web page or other non-media response, a 404 or 410, a file
// over the size limit, an empty file. A 429, a 5xx and network failures are
// transient. When ctx ends, the download stops, the partial upload is
// discarded and the error wraps ctx.Err().
func (f *Fetcher) fetchDirect(ctx context.Context, opID string, song events.Song, progress func(float64), log *slog.Logger) (events.AudioDownloaded, error) {
	allowed := f.Config.AllowedMediaHosts
	u, err := url.Parse(song.URL)
	if err != nil || !mediahosts.AllowsURL(allowed, u) {
		return events.AudioDownloaded{}, events.Fail(events.CodeInvalidInput, "the song's URL is not on a host and port ALLOWED_MEDIA_HOSTS allows")
	}
	limit := f.Config.DirectMaxBytes
	if limit <= 0 {
		limit = config.DefaultDirectMaxBytes
	}
	started := time.Now()
	tr := directTransport(allowed)
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) > maxRedirects {
			return errTooManyRedirects
		}
		if !mediahosts.AllowsURL(allowed, req.URL) {
			return fmt.Errorf("%w: to %s", errRedirectRefused, req.URL.Redacted())
		}
		return nil
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return events.AudioDownloaded{}, events.Wrap(events.CodeInvalidInput, err, "the song's URL cannot be requested")
	}
	req.Header.Set("User-Agent", directUserAgent)
	resp, err := client.Do(req)
	if err != nil {
		return events.AudioDownloaded{}, directFailure(ctx, err)
	}
	defer resp.Body.Close()
	final := resp.Request.URL
	if err := statusFailure(resp.StatusCode); err != nil {
		return events.AudioDownloaded{}, because(err, "GET %s: %s", final.Redacted(), resp.Status)
	}
	if resp.ContentLength == 0 {
		return events.AudioDownloaded{}, because(errEmpty(), "GET %s: no body", final.Redacted())
	}
	mt, err := mediaType(resp.Header.Get("Content-Type"))
	if err != nil {
		return events.AudioDownloaded{}, because(err, "GET %s: Content-Type %q", final.Redacted(), resp.Header.Get("Content-Type"))
	}
	if resp.ContentLength > limit {
		return events.AudioDownloaded{}, because(tooLarge(limit), "GET %s: Content-Length %d", final.Redacted(), resp.ContentLength)
	}

	ext := directExt(mt, final, u)
	key := blob.StagingKey(opID, ext)
	body := &directReader{ctx: ctx, r: resp.Body, max: limit, total: resp.ContentLength, progress: progress}
	meta := map[string]string{"operation_id": opID, "song_id": song.ID}
	song = song.Merge(events.Song{Title: directTitle(u)})
	// The bytes go out as they arrive only once the allow-list, the status
	// and the content type have passed: what the encoder may read is what
	// the store keeps.
	arr := f.Arrivals.begin(ctx, opID, song, ext, resp.ContentLength, log)
	// As in Fetch: the store's context outlives ctx so that it can discard
	// what it wrote; cancellation reaches it through body.
	stored, err := f.Blobs.Put(context.WithoutCancel(ctx), key, contentType(ext), meta, arr.tee(body))
	arr.end(stored.Size, err)
	if err != nil {
		if body.err != nil {
			return events.AudioDownloaded{}, body.err
		}
		return events.AudioDownloaded{}, events.Wrap(events.CodeInternal, err, "the audio could not be stored")
	}
	progress(100)
	log.Info("fetcher: downloaded", "key", key, "size", stored.Size, "content_type", mt,
		"redirected", final.String() != u.String(), "took", time.Since(started).Round(time.Millisecond))
	return events.AudioDownloaded{Song: song, Key: key, Size: stored.Size, Ext: ext, Run: arr.run()}, nil
}

// directTransport is a fetch's HTTP transport: no proxy, no transparent
// decompression (the stored bytes are the file's), bounded waits, and a
// dialer that checks every address it connects to against allowed.
func directTransport(allowed []string) *http.Transport {
	return &http.Transport{
		Proxy: nil,
		// Every address the host resolves to is checked before it is
		// contacted.
		DialContext:            mediahosts.DialContext(allowed, net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}, errAddressRefused),
		ForceAttemptHTTP2:      true,
		TLSHandshakeTimeout:    15 * time.Second,
		ResponseHeaderTimeout:  directHeaderTimeout,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: 64 << 10,
		DisableCompression:     true,
		IdleConnTimeout:        30 * time.Second,
	}
}

// directFailure classifies a request that got no response. A cancelled or
// expired ctx wins: the failure is then the stage's timeout or shutdown.
// The user's message names no URL or address; the error keeps them for
// the log.
func directFailure(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("fetcher: download stopped: %w", ctx.Err())
	}
	var certErr *tls.CertificateVerificationError
	var hostErr x509.HostnameError
	var authErr x509.UnknownAuthorityError
	var invalidErr x509.CertificateInvalidError
	switch {
	case errors.Is(err, errRedirectRefused):
		return events.Wrap(events.CodeInvalidInput, err, "the source redirected to a host or port that ALLOWED_MEDIA_HOSTS does not allow; it was not fetched")
	case errors.Is(err, errAddressRefused):
		return events.Wrap(events.CodeInvalidInput, err, "the media host resolves to an internal address, which only an IP address listed in ALLOWED_MEDIA_HOSTS may reach; it was not fetched")
	case errors.Is(err, errTooManyRedirects):
		return events.Wrap(events.CodeUnavailable, err, "the source redirected more than %d times", maxRedirects)
	case errors.As(err, &certErr), errors.As(err, &hostErr), errors.As(err, &authErr), errors.As(err, &invalidErr):
		return events.Wrap(events.CodeUnavailable, err, "the media host's TLS certificate is not valid")
	}
	msg := err.Error()
	var ue *url.Error
	if errors.As(err, &ue) {
		msg = ue.Err.Error() // without "Get <url>:"
	}
	return events.Wrap(events.CodeNetwork, err, "the network failed during the download: %s", cleanMessage(msg))
}

// statusFailure is the failure for a final response's status, nil for a
// 2xx. Unlike a YouTube stream's, a direct file's 401, 403 or 451 does not
// pass with a retry.
func statusFailure(code int) error {
	text := fmt.Sprintf("HTTP %d %s", code, http.StatusText(code))
	switch {
	case code >= 200 && code < 300:
		return nil
	case code == http.StatusNotFound || code == http.StatusGone:
		return events.Fail(events.CodeNotFound, "no audio was found at this URL: the server answered %s", text)
	case code == http.StatusTooManyRequests:
		return events.Fail(events.CodeRateLimited, "the source is limiting requests (rate limited); the download will be tried again")
	case code == http.StatusRequestTimeout || code >= 500:
		return events.Fail(events.CodeDownloadFailed, "the download failed: the server answered %s", text)
	case code >= 400:
		return events.Fail(events.CodeUnavailable, "the source refused the download: the server answered %s", text)
	}
	// A redirect without a Location, a 1xx or 3xx left unanswered.
	return events.Fail(events.CodeDownloadFailed, "the download failed: the server answered %s", text)
}

// otherMediaTypes are the media types outside audio/ and video/ that
// media files are served with.
var otherMediaTypes = map[string]bool{
	"application/octet-stream": true,
	"binary/octet-stream":      true, // S3's default for old uploads
	"application/ogg":          true,
	"application/mp4":          true,
}

// playlistTypes are audio/ and video/ types of playlists and manifests,
// which name other URLs rather than hold the media.
var playlistTypes = map[string]bool{
	"audio/mpegurl":                 true,
	"audio/x-mpegurl":               true,
	"audio/x-scpls":                 true,
	"video/vnd.mpeg.dash.mpd":       true,
	"application/x-mpegurl":         true,
	"application/vnd.apple.mpegurl": true,
}

// mediaType returns a response's media type if it may be a media file:
// audio/*, video/*, one of otherMediaTypes, or none at all (ffmpeg then
// decides). Anything else, a web page first, is a permanent failure.
func mediaType(header string) (string, error) {
	if strings.TrimSpace(header) == "" {
		return "", nil
	}
	mt, _, err := mime.ParseMediaType(header)
	if err != nil && !errors.Is(err, mime.ErrInvalidMediaParameter) {
		return "", events.Fail(events.CodeInvalidInput, "the source's Content-Type is malformed; only audio and video files are fetched")
	}
	if len(mt) > 100 {
		mt = mt[:100]
	}
	switch {
	case playlistTypes[mt]:
		return "", events.Fail(events.CodeInvalidInput, "the URL serves a playlist (%s), not a media file; only links straight to an audio or video file are fetched", mt)
	case strings.HasPrefix(mt, "audio/"), strings.HasPrefix(mt, "video/"), otherMediaTypes[mt]:
		return mt, nil
	case mt == "text/html" || mt == "application/xhtml+xml":
		return "", events.Fail(events.CodeInvalidInput, "the URL serves a web page (%s), not a media file; what the page links to or embeds is not fetched: link straight to the audio or video file", mt)
	}
	return "", events.Fail(events.CodeInvalidInput, "the URL serves %s, not an audio or video file", mt)
}

// mediaExts are extensions of containers ffmpeg reads that a direct URL's
// path may end with.
var mediaExts = map[string]bool{
	"aac": true, "ac3": true, "aif": true, "aiff": true, "amr": true, "avi": true, "flac": true, "flv": true,
	"m4a": true, "m4v": true, "mka": true, "mkv": true, "mov": true, "mp3": true, "mp4": true, "mpeg": true,
	"mpg": true, "oga": true, "ogg": true, "opus": true, "ts": true, "wav": true, "weba": true, "webm": true,
	"wma": true, "wmv": true, "3gp": true,
}

// typeExts are the extensions of the media types servers send most.
var typeExts = map[string]string{
	"audio/mpeg": "mp3", "audio/mp3": "mp3", "audio/mp4": "m4a", "audio/x-m4a": "m4a", "audio/aac": "aac",
	"audio/ogg": "ogg", "application/ogg": "ogg", "audio/opus": "opus", "audio/webm": "webm", "video/webm": "webm",
	"audio/wav": "wav", "audio/x-wav": "wav", "audio/wave": "wav", "audio/vnd.wave": "wav",
	"audio/flac": "flac", "audio/x-flac": "flac", "video/mp4": "mp4", "application/mp4": "mp4",
	"video/quicktime": "mov", "video/x-matroska": "mkv", "audio/x-matroska": "mka",
}

// directExt is the staged file's extension: a media extension ending the
// path of the URL served (after redirects) or of the song's URL, else the
// one of the media type, else "bin". It is always [a-z0-9].
func directExt(mt string, urls ...*url.URL) string {
	for _, u := range urls {
		if e := strings.ToLower(strings.TrimPrefix(path.Ext(u.Path), ".")); mediaExts[e] {
			return e
		}
	}
	if e, ok := typeExts[mt]; ok {
		return e
	}
	return "bin"
}

// directTitle is a direct song's title when it has none, as yt-dlp's
// generic extractor named a file: its URL's last path segment without the
// extension ("tone" for /media/tone.m4a), control characters dropped.
func directTitle(u *url.URL) string {
	base := path.Base(u.Path)
	if base == "/" || base == "." {
		return ""
	}
	base = strings.TrimSuffix(base, path.Ext(base))
	base = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, strings.ToValidUTF8(base, ""))
	return strings.TrimSpace(base)
}

// because returns the failure err with what caused it, for the log (the
// stage logs a failure's error; the user sees its message alone).
func because(err error, format string, args ...any) error {
	f := events.AsFailure(err)
	return events.Wrap(f.Code, fmt.Errorf(format, args...), "%s", f.Message)
}

// errEmpty is the failure of a download that gave no bytes: a response
// without a body, or a yt-dlp run that wrote none (audioReader).
func errEmpty() error {
	return events.Fail(events.CodeEmptyAudio, "the source gave no audio: the file is empty")
}

// tooLarge is the failure of a file over the limit of max bytes.
func tooLarge(max int64) error {
	return events.Fail(events.CodeUnavailable, "the file is larger than the %s limit", byteSize(max))
}

// byteSize writes n in the largest binary unit that divides it.
func byteSize(n int64) string {
	for _, u := range []struct {
		size int64
		name string
	}{{1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}} {
		if n >= u.size && n%u.size == 0 {
			return fmt.Sprintf("%d %s", n/u.size, u.name)
		}
	}
	return fmt.Sprintf("%d-byte", n)
}

// directReader reads a direct download's body for the store. It turns
// what must not be stored into an error, so that the store keeps nothing:
// more than max bytes, an empty body, a body cut short, a cancelled ctx.
// It reports progress against total (Content-Length; -1 when unknown), at
// most once per progressEvery.
type directReader struct {
	ctx      context.Context
	r        io.Reader
	max      int64
	total    int64
	progress func(pct float64)
	n        int64
	sent     time.Time
	// err is the failure Read returned, if any.
	err error
}

func (d *directReader) Read(p []byte) (int, error) {
	if d.err != nil {
		return 0, d.err
	}
	if err := d.ctx.Err(); err != nil {
		d.err = fmt.Errorf("fetcher: download stopped: %w", err)
		return 0, d.err
	}
	n, err := d.r.Read(p)
	d.n += int64(n)
	if d.n > d.max {
		d.err = tooLarge(d.max)
		return n, d.err
	}
	if n > 0 && d.total > 0 {
		if now := time.Now(); d.sent.IsZero() || now.Sub(d.sent) >= progressEvery {
			d.sent = now
			d.progress(min(100, float64(d.n)*100/float64(d.total)))
		}
	}
	switch {
	case err == io.EOF && d.n == 0:
		d.err = errEmpty()
		return n, d.err
	case err == io.EOF:
		return n, io.EOF
	case err != nil:
		// net/http reports a body shorter than its Content-Length as
		// io.ErrUnexpectedEOF.
		d.err = directFailure(d.ctx, err)
		return n, d.err
	}
	return n, nil
}
