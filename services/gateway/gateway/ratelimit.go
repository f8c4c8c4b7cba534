package gateway

import (
	"fmt"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"
)

// Budgets of the routes. What costs is limited apart from what is cheap,
// so a bot polling its operations never eats into the operations it may
// create, and a key guesser is stopped before it reaches the key check.
const (
	// budgetCreations is the route class of POST /api/audio/start and POST
	// /v1/operations: each publishes an operation that downloads and
	// encodes a song (RATE_LIMIT).
	budgetCreations = "operations created"
	// budgetReads is every other /api and /v1 route: status, operations,
	// songs, DCA downloads and the events WebSocket's upgrade
	// (READ_RATE_LIMIT).
	budgetReads = "reads"
)

// maxClients is how many clients one rateLimiter remembers: about 250
// bytes each. Past it the least recently seen is forgotten, and starts
// again with a full bucket when it comes back.
const maxClients = 10_000

// rateLimiter is a token bucket per client (an API key, or an IP address):
// a client may spend limit requests at once, and gets limit back per
// minute, a fraction at a time. It answers with the IETF draft's
// RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset (seconds until the
// bucket is full again) and RateLimit-Policy headers; a refused request is
// 429 with Retry-After (seconds until one more request is allowed). A limit
// of 0 or less disables it. It is safe for concurrent use.
type rateLimiter struct {
	what  string // what is counted, for the 429's message
	limit int
	every rate.Limit // tokens per second
	now   func() time.Time
	// clients holds each client's bucket. A bucket that has filled up is
	// the same as a new one, so forgetting the least recently seen clients
	// loses (almost) nothing.
	clients *lru.Cache[string, *rate.Limiter]
}

func newRateLimiter(what string, perMinute int, now func() time.Time) *rateLimiter {
	return newRateLimiterSized(what, perMinute, now, maxClients)
}

// newRateLimiterSized is newRateLimiter remembering at most size clients.
func newRateLimiterSized(what string, perMinute int, now func() time.Time, size int) *rateLimiter {
	l := &rateLimiter{what: what, limit: perMinute, every: rate.Limit(float64(perMinute) / 60), now: now}
	if perMinute > 0 {
		l.clients, _ = lru.New[string, *rate.Limiter](size) // fails only for size <= 0
	}
	return l
}

// enabled reports whether the limit applies.
func (l *rateLimiter) enabled() bool { return l.limit > 0 }

// bucket is client's bucket, made full when the client is new.
func (l *rateLimiter) bucket(client string) *rate.Limiter {
	if b, ok := l.clients.Get(client); ok {
		return b
	}
	b := rate.NewLimiter(l.every, l.limit)
	if prev, ok, _ := l.clients.PeekOrAdd(client, b); ok {
		return prev // another request of the client made it first
	}
	return b
}

// take spends one token of client and reports whether there was one, the
// whole tokens left, how long until the bucket is full again and, when
// refused, how long until a token is back.
func (l *rateLimiter) take(client string) (ok bool, remaining int, reset, retry time.Duration) {
	if !l.enabled() {
		return true, 0, 0, 0
	}
	now := l.now()
	b := l.bucket(client)
	ok = b.AllowN(now, 1)
	tokens := max(b.TokensAt(now), 0)
	reset = l.refill(float64(l.limit) - tokens)
	if !ok {
		retry = l.refill(1 - tokens)
	}
	return ok, int(tokens), reset, retry
}

// spent reports whether client has no token left, without spending one or
// remembering a client it does not know, and how long until a token is back.
func (l *rateLimiter) spent(client string) (bool, time.Duration) {
	if !l.enabled() {
		return false, 0
	}
	b, ok := l.clients.Get(client)
	if !ok {
		return false, 0
	}
	tokens := b.TokensAt(l.now())
	if tokens >= 1 {
		return false, 0
	}
	return true, l.refill(1 - tokens)
}

// refill is how long the bucket takes to gain tokens.
func (l *rateLimiter) refill(tokens float64) time.Duration {
	return time.Duration(tokens / float64(l.every) * float64(time.Second))
}

// seconds is d in whole seconds, rounded up, at least 1.
func seconds(d time.Duration) string {
	return strconv.FormatInt(max(int64((d+time.Second-1)/time.Second), 1), 10)
}

// middleware applies the limit to the caller named by apiKeys.middleware.
func (l *rateLimiter) middleware(c *fiber.Ctx) error {
	if !l.enabled() {
		return c.Next()
	}
	ok, remaining, reset, retry := l.take(clientOf(c))
	c.Set("RateLimit-Limit", strconv.Itoa(l.limit))
	c.Set("RateLimit-Remaining", strconv.Itoa(remaining))
	c.Set("RateLimit-Reset", seconds(reset))
	c.Set("RateLimit-Policy", strconv.Itoa(l.limit)+";w=60")
	if !ok {
		secs := seconds(retry)
		c.Set(fiber.HeaderRetryAfter, secs)
		return errorf(CodeRateLimited, fmt.Sprintf("rate limit of %d %s per minute reached: retry in %s s", l.limit, l.what, secs))
	}
	return c.Next()
}
