package gateway

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/cors"
)

// origins is the browser origins policy. ALLOWED_ORIGINS get CORS and may
// open WebSockets; with none configured CORS is off (no headers, so
// browsers refuse cross-origin reads). The gateway's own origins (PUBLIC_URL,
// or the listen address without it) may open WebSockets too. The request's
// Host header is never trusted for this: a page on a rebound DNS name
// sends a Host and an Origin that agree.
type origins struct {
	list []string // ALLOWED_ORIGINS normalized as "scheme://host[:port]", or "*"
	any  bool
	own  []string // the gateway's own origins, normalized
}

// newOrigins validates the configured origins: each of allowed must be "*"
// or a bare scheme://host[:port] as browsers send it. publicURL, when set,
// is the URL users reach the gateway at and names its one own origin;
// otherwise listen (host:port, as net.Listen takes it) does: a wildcard
// host stands for the loopback names, as only a browser on this machine
// can know the gateway by its listen address.
func newOrigins(allowed []string, publicURL, listen string) (*origins, error) {
	o := &origins{}
	for _, raw := range allowed {
		if raw == "*" {
			o.any = true
			o.list = append(o.list, raw)
			continue
		}
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return nil, fmt.Errorf("gateway: ALLOWED_ORIGINS: %q is not an origin such as https://example.com", raw)
		}
		o.list = append(o.list, originOf(u))
	}
	if publicURL != "" {
		u, err := url.Parse(publicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			return nil, fmt.Errorf("gateway: PUBLIC_URL: %q is not a URL such as https://butakero.example", publicURL)
		}
		o.own = []string{originOf(u)}
		return o, nil
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return o, nil // no address to be reached at (a test app): configured origins only
	}
	hosts := []string{host}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		hosts = []string{"localhost", "127.0.0.1", "::1"}
	} else if ip != nil && ip.IsLoopback() {
		hosts = append(hosts, "localhost")
	}
	for _, h := range hosts {
		o.own = append(o.own, originOf(&url.URL{Scheme: "http", Host: net.JoinHostPort(h, port)}))
	}
	return o, nil
}

// originOf is u's origin as a browser sends it: scheme and host in lower
// case, without the scheme's default port.
func originOf(u *url.URL) string {
	host := strings.ToLower(u.Host)
	switch {
	case u.Scheme == "http" && strings.HasSuffix(host, ":80"):
		host = strings.TrimSuffix(host, ":80")
	case u.Scheme == "https" && strings.HasSuffix(host, ":443"):
		host = strings.TrimSuffix(host, ":443")
	}
	return strings.ToLower(u.Scheme) + "://" + host
}

// cors is the CORS middleware for the configured origins, nil when none is.
func (o *origins) cors() fiber.Handler {
	if len(o.list) == 0 {
		return nil
	}
	return cors.New(cors.Config{
		AllowOrigins: strings.Join(o.list, ","),
		AllowMethods: "GET,HEAD,POST,OPTIONS",
		AllowHeaders: "Authorization,X-API-Key,Content-Type,Idempotency-Key,Range,If-None-Match,If-Range,traceparent,tracestate",
		ExposeHeaders: "RateLimit-Limit,RateLimit-Remaining,RateLimit-Reset,RateLimit-Policy,Retry-After," +
			"ETag,Content-Range,Accept-Ranges,Location,Idempotent-Replayed,WWW-Authenticate",
		MaxAge: 600,
	})
}

// allowSocket reports whether a WebSocket handshake with this Origin header
// may proceed: no Origin (not a browser), one of the gateway's own origins,
// or a configured one.
func (o *origins) allowSocket(origin string) bool {
	if origin == "" || o.any {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	norm := originOf(u)
	return slices.Contains(o.own, norm) || slices.Contains(o.list, norm)
}

// socketCap counts open WebSockets against MAX_SOCKETS.
type socketCap struct {
	max  int64
	open atomic.Int64
}

// defaultMaxSockets applies when Config.MaxSockets is not set.
const defaultMaxSockets = 1000

func newSocketCap(max int) *socketCap {
	if max <= 0 {
		max = defaultMaxSockets
	}
	return &socketCap{max: int64(max)}
}

// full reports whether no socket may open now; beforeUpgrade asks it so a
// refusal is a 503 in the API's shape, not a closed socket.
func (s *socketCap) full() bool { return s.open.Load() >= s.max }

// acquire takes a slot and reports whether it got one; a false answer
// took nothing. Two handshakes racing past full() are settled here.
func (s *socketCap) acquire() bool {
	if s.open.Add(1) > s.max {
		s.open.Add(-1)
		return false
	}
	return true
}

// release gives back a slot acquire took.
func (s *socketCap) release() { s.open.Add(-1) }
