package gateway

import (
	"errors"
	"log/slog"

	"github.com/gofiber/fiber/v2"
)

// Code is the machine-readable reason of an HTTP error, sent to clients as
// {"error":{"code","message"}}. Its HTTP status comes from httpStatus alone.
type Code string

// Error codes of the HTTP API. The README and /openapi.json list them with
// their statuses; a client switches on the code, never on the message.
const (
	CodeBadRequest          Code = "bad_request"            // 400: malformed input
	CodeUnauthorized        Code = "unauthorized"           // 401: API key missing or wrong
	CodeForbidden           Code = "forbidden"              // 403: WebSocket Origin not allowed
	CodeNotFound            Code = "not_found"              // 404: unknown route, operation or song
	CodeMethodNotAllowed    Code = "method_not_allowed"     // 405
	CodeRequestTimeout      Code = "request_timeout"        // 408: request not received in time
	CodePayloadTooLarge     Code = "payload_too_large"      // 413
	CodeUnsupportedMedia    Code = "unsupported_media_type" // 415: body not JSON
	CodeRangeNotSatisfiable Code = "range_not_satisfiable"  // 416
	CodeConflict            Code = "conflict"               // 409: the operation has ended already (DELETE)
	CodeOperationFailed     Code = "operation_failed"       // 409: the operation ended without its audio
	CodeIdempotencyMismatch Code = "idempotency_key_reused" // 422: key reused for another request
	CodeUpgradeRequired     Code = "upgrade_required"       // 426: WebSocket route without upgrade
	CodeRateLimited         Code = "rate_limited"           // 429: over a budget or AUTH_FAILURE_LIMIT; see Retry-After
	CodeHeadersTooLarge     Code = "headers_too_large"      // 431
	CodeInternal            Code = "internal"               // 500
	CodeNotReady            Code = "not_ready"              // 503: /readyz, a dependency is down
	CodeTooManyConnections  Code = "too_many_connections"   // 503: MAX_SOCKETS WebSockets open
)

// Codes lists every code, for the documentation test.
var Codes = []Code{CodeBadRequest, CodeUnauthorized, CodeForbidden, CodeNotFound,
	CodeMethodNotAllowed, CodeRequestTimeout, CodePayloadTooLarge,
	CodeUnsupportedMedia, CodeRangeNotSatisfiable, CodeConflict, CodeOperationFailed, CodeIdempotencyMismatch,
	CodeUpgradeRequired, CodeRateLimited, CodeHeadersTooLarge, CodeInternal,
	CodeNotReady, CodeTooManyConnections}

// Error is an error a handler returns to end a request with an error
// response. Message is shown to the client; Err, when set, only goes to the
// log.
type Error struct {
	Code    Code
	Message string
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return string(e.Code) + ": " + e.Message + ": " + e.Err.Error()
	}
	return string(e.Code) + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

func errorf(code Code, msg string) *Error { return &Error{Code: code, Message: msg} }

// internal wraps err as a 500 whose details reach the log only.
func internal(err error) *Error {
	return &Error{Code: CodeInternal, Message: "internal error", Err: err}
}

// httpStatus is the one place that maps an error code to an HTTP status.
func httpStatus(code Code) int {
	switch code {
	case CodeBadRequest:
		return fiber.StatusBadRequest
	case CodeUnauthorized:
		return fiber.StatusUnauthorized
	case CodeForbidden:
		return fiber.StatusForbidden
	case CodeUnsupportedMedia:
		return fiber.StatusUnsupportedMediaType
	case CodeConflict, CodeOperationFailed:
		return fiber.StatusConflict
	case CodeIdempotencyMismatch:
		return fiber.StatusUnprocessableEntity
	case CodeUpgradeRequired:
		return fiber.StatusUpgradeRequired
	case CodeRateLimited:
		return fiber.StatusTooManyRequests
	case CodeTooManyConnections:
		return fiber.StatusServiceUnavailable
	case CodeNotFound:
		return fiber.StatusNotFound
	case CodeMethodNotAllowed:
		return fiber.StatusMethodNotAllowed
	case CodeRequestTimeout:
		return fiber.StatusRequestTimeout
	case CodePayloadTooLarge:
		return fiber.StatusRequestEntityTooLarge
	case CodeRangeNotSatisfiable:
		return fiber.StatusRequestedRangeNotSatisfiable
	case CodeHeadersTooLarge:
		return fiber.StatusRequestHeaderFieldsTooLarge
	case CodeNotReady:
		return fiber.StatusServiceUnavailable
	default:
		return fiber.StatusInternalServerError
	}
}

// fromFiber turns the errors fiber and fasthttp raise themselves (no route,
// wrong method, body or headers too large, read timeout) into an *Error
// with a message of ours.
func fromFiber(fe *fiber.Error) *Error {
	switch fe.Code {
	case fiber.StatusNotFound:
		return errorf(CodeNotFound, "no such route")
	case fiber.StatusMethodNotAllowed:
		return errorf(CodeMethodNotAllowed, "method not allowed on this route")
	case fiber.StatusRequestTimeout:
		return errorf(CodeRequestTimeout, "request not received in time")
	case fiber.StatusRequestEntityTooLarge:
		return errorf(CodePayloadTooLarge, "request body too large")
	case fiber.StatusRequestHeaderFieldsTooLarge:
		return errorf(CodeHeadersTooLarge, "request headers too large")
	case fiber.StatusUpgradeRequired:
		return errorf(CodeUpgradeRequired, "this route is a WebSocket: send an upgrade request")
	}
	if fe.Code >= 400 && fe.Code < 500 {
		return errorf(CodeBadRequest, "malformed request")
	}
	return internal(fe)
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

// errorHandler is the app's fiber.ErrorHandler: every failed request, its
// own or fiber's, is answered here, and internal failures are logged here
// once, with the request's operation_id and song_id when known.
func (s *server) errorHandler(c *fiber.Ctx, err error) error {
	var e *Error
	var fe *fiber.Error
	switch {
	case errors.As(err, &e):
	case errors.As(err, &fe):
		e = fromFiber(fe)
	default:
		e = internal(err)
	}
	status := httpStatus(e.Code)
	level := slog.LevelDebug
	switch {
	case e.Code == CodeNotReady || e.Code == CodeTooManyConnections:
		level = slog.LevelWarn
	case status >= 500:
		level = slog.LevelError
	}
	attrs := append(requestAttrs(c), slog.String("code", string(e.Code)), slog.Int("status", status))
	if e.Err != nil {
		attrs = append(attrs, slog.String("error", e.Err.Error()))
	}
	s.log.LogAttrs(c.UserContext(), level, "request failed", attrs...)
	return c.Status(status).JSON(errorBody{Error: errorDetail{Code: e.Code, Message: e.Message}})
}
