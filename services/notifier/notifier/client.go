package notifier

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/butakero/butakero/platform/media/mediahosts"
)

// UserAgent is the User-Agent of every delivery.
const UserAgent = "butakero-webhooks/1"

// maxRedirects bounds the redirects one try follows.
const maxRedirects = 5

// errRefused marks a redirect or an address WEBHOOK_ALLOWED_HOSTS does
// not allow.
var errRefused = errors.New("notifier: refused by WEBHOOK_ALLOWED_HOSTS")

// newClient is the HTTP client of deliveries: no proxy, every redirect's
// URL and every address it connects to checked against allowed (as
// package mediahosts checks media URLs), and bounded waits.
func newClient(allowed []string) *http.Client {
	tr := &http.Transport{
		Proxy:                  nil,
		DialContext:            mediahosts.DialContext(allowed, net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}, errRefused),
		TLSHandshakeTimeout:    10 * time.Second,
		ResponseHeaderTimeout:  tryTimeout,
		MaxResponseHeaderBytes: 64 << 10,
		IdleConnTimeout:        30 * time.Second,
	}
	return &http.Client{Transport: tr, Timeout: tryTimeout, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) > maxRedirects {
			return fmt.Errorf("notifier: more than %d redirects", maxRedirects)
		}
		if !mediahosts.AllowsURL(allowed, req.URL) {
			return fmt.Errorf("%w: a redirect to %s", errRefused, req.URL.Redacted())
		}
		return nil
	}}
}

// result is how one try went.
type result struct {
	status int
	err    error
	// refused: the allow-list stopped it.
	refused bool
	// retryAfter is the receiver's Retry-After, when it sent seconds.
	retryAfter time.Duration
}

// try POSTs body to the endpoint once, signed with the current time.
func (e *endpoint) try(ctx context.Context, id string, body []byte) result {
	ctx, cancel := context.WithTimeout(ctx, tryTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(body))
	if err != nil {
		return result{err: err, refused: true}
	}
	ts := time.Now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", UserAgent)
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("webhook-signature", Sign(e.key, id, ts, body))
	resp, err := e.client.Do(req)
	if err != nil {
		return result{err: err, refused: errors.Is(err, errRefused)}
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	r := result{status: resp.StatusCode}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		r.retryAfter = time.Duration(s) * time.Second
	}
	return r
}

// redacted is url without its query (which may carry a receiver's token),
// for the log.
func redacted(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable)"
	}
	u.RawQuery, u.Fragment = "", ""
	return u.Redacted()
}
