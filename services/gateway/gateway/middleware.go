package gateway

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
)

// localKey keys the values handlers leave in fiber's Locals for the access
// log and the error handler.
type localKey int

const (
	localOperationID localKey = iota
	localSongID
)

// requestAttrs are the log attributes naming a request and, when the
// handler has learnt them, its operation and song.
func requestAttrs(c *fiber.Ctx) []slog.Attr {
	attrs := []slog.Attr{slog.String("method", c.Method()), slog.String("path", c.Path())}
	if id, ok := c.Locals(localOperationID).(string); ok && id != "" {
		attrs = append(attrs, slog.String("operation_id", id))
	}
	if id, ok := c.Locals(localSongID).(string); ok && id != "" {
		attrs = append(attrs, slog.String("song_id", id))
	}
	return attrs
}

// accessLog is the outermost middleware. It answers any error the chain
// returns through the error handler itself, so that it logs the status the
// client gets; probes log at debug, everything else at info. For a streamed
// body (the DCA) the duration ends when the headers are ready, not when the
// last byte is sent.
func (s *server) accessLog(c *fiber.Ctx) error {
	begin := time.Now()
	if err := c.Next(); err != nil {
		if herr := s.errorHandler(c, err); herr != nil {
			s.log.Error("error handler failed", "error", herr)
			_ = c.SendStatus(fiber.StatusInternalServerError)
		}
	}
	level := slog.LevelInfo
	if p := c.Path(); p == "/healthz" || p == "/readyz" {
		level = slog.LevelDebug
	}
	attrs := append(requestAttrs(c),
		slog.Int("status", c.Response().StatusCode()),
		slog.Duration("duration", time.Since(begin)))
	s.log.LogAttrs(c.UserContext(), level, "http request", attrs...)
	return nil
}

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
type apiKeys struct {
	sums [][sha256.Size]byte
}

func newAPIKeys(keys []string) *apiKeys {
	a := &apiKeys{}
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

// middleware rejects a request without a valid key with 401.
func (a *apiKeys) middleware(c *fiber.Ctx) error {
	key := c.Get("X-API-Key")
	if key == "" {
		if scheme, token, ok := strings.Cut(c.Get(fiber.HeaderAuthorization), " "); ok && strings.EqualFold(scheme, "Bearer") {
			key = strings.TrimSpace(token)
		}
	}
	if key == "" {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="butakero"`)
		return errorf(CodeUnauthorized, "an API key is required: X-API-Key or Authorization: Bearer")
	}
	if !a.valid(key) {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="butakero", error="invalid_token"`)
		return errorf(CodeUnauthorized, "invalid API key")
	}
	return c.Next()
}
