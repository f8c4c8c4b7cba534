package gateway

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
)

// localKey keys the values handlers leave in fiber's Locals for the access
// log and the error handler.
type localKey int

const (
	localOperationID localKey = iota
	localSongID
	// localClient names the caller for rate limiting and idempotency
	// scopes: "key:<hash prefix>" with API keys, else "ip:<address>".
	localClient
)

// tracer names the gateway's server spans. With no OpenTelemetry SDK
// installed it only carries the trace context along.
var tracer = otel.Tracer("github.com/butakero/butakero/services/gateway")

// requestAttrs are the log attributes naming a request and, when the
// handler has learnt them, its operation and song.
func requestAttrs(c *fiber.Ctx) []slog.Attr {
	attrs := []slog.Attr{slog.String("method", c.Method()), slog.String("path", c.Path())}
	if sc := trace.SpanContextFromContext(c.UserContext()); sc.HasTraceID() {
		attrs = append(attrs, slog.String("trace_id", sc.TraceID().String()))
	}
	if id, ok := c.Locals(localOperationID).(string); ok && id != "" {
		attrs = append(attrs, slog.String("operation_id", id))
	}
	if id, ok := c.Locals(localSongID).(string); ok && id != "" {
		attrs = append(attrs, slog.String("song_id", id))
	}
	return attrs
}

// accessLog is the outermost middleware. It starts the request's trace
// (continuing the client's W3C traceparent when it sent one), answers any
// error the chain returns through the error handler itself, so that it logs
// and counts the status the client gets, and records the request in the
// metrics by route pattern. Probes log at debug, everything else at info.
// For a streamed body (the DCA) the duration ends when the headers are
// ready, not when the last byte is sent; for a WebSocket, at the upgrade.
func (s *server) accessLog(c *fiber.Ctx) error {
	begin := time.Now()
	ctx, span := startRequestSpan(c)
	defer span.End()
	c.SetUserContext(ctx)

	route := ""
	if err := c.Next(); err != nil {
		var fe *fiber.Error
		if errors.As(err, &fe) && (fe.Code == fiber.StatusNotFound || fe.Code == fiber.StatusMethodNotAllowed) {
			route = "unmatched" // fiber's own: no route took the request
		}
		if herr := s.errorHandler(c, err); herr != nil {
			s.log.Error("error handler failed", "error", herr)
			_ = c.SendStatus(fiber.StatusInternalServerError)
		}
	}
	if route == "" {
		route = c.Route().Path
	}
	status := c.Response().StatusCode()
	took := time.Since(begin)
	s.metrics.ObserveHTTP(route, c.Method(), status, took)
	endRequestSpan(span, c, route, status)
	level := slog.LevelInfo
	if p := c.Path(); p == "/healthz" || p == "/readyz" || p == "/metrics" {
		level = slog.LevelDebug
	}
	attrs := append(requestAttrs(c), slog.Int("status", status), slog.Duration("duration", took))
	s.log.LogAttrs(c.UserContext(), level, "http request", attrs...)
	return nil
}

// requestTrace is the request's context carrying the client's trace
// context from its traceparent header, or a new trace of the gateway's own
// when the client sent none, so that every operation's events share a
// trace id even with no tracing SDK installed.
func requestTrace(c *fiber.Ctx) context.Context {
	ctx := events.TracePropagator.Extract(c.UserContext(), fiberCarrier{c})
	if trace.SpanContextFromContext(ctx).IsValid() {
		return ctx
	}
	var tid trace.TraceID
	var sid trace.SpanID
	_, _ = rand.Read(tid[:])
	_, _ = rand.Read(sid[:])
	return trace.ContextWithSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled,
	}))
}

// fiberCarrier reads a request's headers for the trace propagator.
type fiberCarrier struct{ c *fiber.Ctx }

func (f fiberCarrier) Get(key string) string { return f.c.Get(key) }
func (f fiberCarrier) Set(string, string)    {} // requests are read, never written
func (f fiberCarrier) Keys() []string        { return []string{"traceparent", "tracestate"} }

// recoverPanic turns a handler's panic into an internal error; the stack
// goes to the log, never to the client.
func (s *server) recoverPanic(c *fiber.Ctx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = internal(fmt.Errorf("panic: %v\n%s", r, debug.Stack()))
		}
	}()
	return c.Next()
}

// apiKeys checks X-API-Key or Authorization: Bearer against the configured
// keys. Keys are compared as SHA-256 sums in constant time, every key each
// time, so neither a key's content nor its length leaks through timing.
// Failed attempts are counted per IP address in failures: an address that
// has spent its budget is refused (429) before its key is looked at, valid
// or not, until the budget refills.
type apiKeys struct {
	sums     [][sha256.Size]byte
	failures *rateLimiter
}

func newAPIKeys(keys []string, failures *rateLimiter) *apiKeys {
	a := &apiKeys{failures: failures}
	for _, k := range keys {
		if k != "" {
			a.sums = append(a.sums, sha256.Sum256([]byte(k)))
		}
	}
	return a
}

// enabled reports whether any key is configured; without one the API is open.
func (a *apiKeys) enabled() bool { return len(a.sums) > 0 }

func (a *apiKeys) valid(key string) bool {
	sum := sha256.Sum256([]byte(key))
	ok := 0
	for i := range a.sums {
		ok |= subtle.ConstantTimeCompare(sum[:], a.sums[i][:])
	}
	return ok == 1
}

// middleware rejects a request without a valid key with 401 and names the
// caller in Locals (localClient) for the rate limiter and idempotency: by a
// hash prefix of its key, or by IP address when no key is configured. An
// address past AUTH_FAILURE_LIMIT failures is refused with 429 first.
func (a *apiKeys) middleware(c *fiber.Ctx) error {
	ip := "ip:" + c.IP()
	if !a.enabled() {
		c.Locals(localClient, ip)
		return c.Next()
	}
	if spent, retry := a.failures.spent(ip); spent {
		return a.tooManyFailures(c, retry)
	}
	if err := a.check(c); err != nil {
		if ok, _, _, retry := a.failures.take(ip); !ok {
			return a.tooManyFailures(c, retry)
		}
		return err
	}
	return c.Next()
}

// tooManyFailures answers a request from an address that failed to
// authenticate too often.
func (a *apiKeys) tooManyFailures(c *fiber.Ctx, retry time.Duration) error {
	secs := seconds(retry)
	c.Set(fiber.HeaderRetryAfter, secs)
	return errorf(CodeRateLimited, fmt.Sprintf("too many failed authentications from this address: retry in %s s", secs))
}

// check finds the request's key and names the caller by it, or returns
// the 401 to answer.
func (a *apiKeys) check(c *fiber.Ctx) error {
	key := c.Get("X-API-Key")
	if key == "" {
		if scheme, token, ok := strings.Cut(c.Get(fiber.HeaderAuthorization), " "); ok && strings.EqualFold(scheme, "Bearer") {
			key = strings.TrimSpace(token)
		}
	}
	if key == "" && isEventsSocket(c) {
		// A browser cannot set headers on a WebSocket: the events socket,
		// and only it, takes the key from ?api_key= as well. The access
		// log records the path without the query.
		key = c.Query("api_key")
	}
	if key == "" {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="butakero"`)
		return errorf(CodeUnauthorized, "an API key is required: X-API-Key or Authorization: Bearer")
	}
	if !a.valid(key) {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="butakero", error="invalid_token"`)
		return errorf(CodeUnauthorized, "invalid API key")
	}
	sum := sha256.Sum256([]byte(key))
	c.Locals(localClient, "key:"+hex.EncodeToString(sum[:8]))
	return nil
}

// isEventsSocket reports whether c is a WebSocket upgrade on
// /v1/operations/{id}/events.
func isEventsSocket(c *fiber.Ctx) bool {
	rest, ok := strings.CutPrefix(c.Path(), "/v1/operations/")
	if !ok {
		return false
	}
	id, ok := strings.CutSuffix(rest, "/events")
	return ok && id != "" && !strings.Contains(id, "/") && websocket.IsWebSocketUpgrade(c)
}

// clientOf is the caller's name set by apiKeys.middleware.
func clientOf(c *fiber.Ctx) string {
	if id, ok := c.Locals(localClient).(string); ok {
		return id
	}
	return "ip:" + c.IP()
}
