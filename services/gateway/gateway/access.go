package gateway

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/cors"
)

// rateLimiter allows each client (API key, or IP address without keys)
// limit requests per window, in fixed windows that start at the client's
// first request. Every answer carries the IETF draft's RateLimit-Limit,
// RateLimit-Remaining and RateLimit-Reset headers (and RateLimit-Policy);
// a refused one is 429 with Retry-After. A limit of 0 or less disables it.
// It is safe for concurrent use and forgets clients whose window ended.
type rateLimiter struct {
	limit  int
	window time.Duration
	now    func() time.Time

	mu      sync.Mutex
	clients map[string]*rateWindow
	sweepAt time.Time
}

type rateWindow struct {
	start time.Time
	used  int
}

func newRateLimiter(limit int, window time.Duration, now func() time.Time) *rateLimiter {
	return &rateLimiter{limit: limit, window: window, now: now, clients: map[string]*rateWindow{}}
}

// take counts one request of client and reports whether it is allowed, how
// many remain in the window and when the window resets.
func (l *rateLimiter) take(client string) (ok bool, remaining int, reset time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.After(l.sweepAt) {
		for k, w := range l.clients {
			if now.Sub(w.start) >= l.window {
				delete(l.clients, k)
			}
		}
		l.sweepAt = now.Add(l.window)
	}
	w := l.clients[client]
	if w == nil || now.Sub(w.start) >= l.window {
		w = &rateWindow{start: now}
		l.clients[client] = w
	}
	reset = w.start.Add(l.window).Sub(now)
	if w.used >= l.limit {
		return false, 0, reset
	}
	w.used++
	return true, l.limit - w.used, reset
}

// middleware applies the limit to the caller named by apiKeys.middleware.
func (l *rateLimiter) middleware(c *fiber.Ctx) error {
	if l.limit <= 0 {
		return c.Next()
	}
	ok, remaining, reset := l.take(clientOf(c))
	secs := strconv.Itoa(int((reset + time.Second - 1) / time.Second))
	c.Set("RateLimit-Limit", strconv.Itoa(l.limit))
	c.Set("RateLimit-Remaining", strconv.Itoa(remaining))
	c.Set("RateLimit-Reset", secs)
	c.Set("RateLimit-Policy", fmt.Sprintf("%d;w=%d", l.limit, int(l.window/time.Second)))
	if !ok {
		c.Set(fiber.HeaderRetryAfter, secs)
		return errorf(CodeRateLimited, fmt.Sprintf("rate limit of %d requests per minute reached: retry in %s s", l.limit, secs))
	}
	return c.Next()
}

// origins is the browser origins policy: ALLOWED_ORIGINS for CORS and
// WebSockets. With none configured, CORS is off (no headers, so browsers
// refuse cross-origin reads) and WebSockets accept the same origin only.
type origins struct {
	list []string // normalized "scheme://host[:port]", or "*"
	any  bool
}

// newOrigins validates the configured origins: each must be "*" or a bare
// scheme://host[:port] as browsers send it.
func newOrigins(list []string) (*origins, error) {
	o := &origins{}
	for _, raw := range list {
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
		o.list = append(o.list, strings.ToLower(u.Scheme+"://"+u.Host))
	}
	return o, nil
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
// may proceed: no Origin (not a browser), the request's own host (same
// origin), or a configured origin.
func (o *origins) allowSocket(origin, host string) bool {
	if origin == "" || o.any {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, host) {
		return true
	}
	norm := strings.ToLower(u.Scheme + "://" + u.Host)
	for _, a := range o.list {
		if a == norm {
			return true
		}
	}
	return false
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
