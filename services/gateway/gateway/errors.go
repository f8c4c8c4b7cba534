package gateway

import (
	"errors"
	"log/slog"

	"github.com/gofiber/fiber/v2"
)

// Code is the machine-readable reason of an HTTP error, sent to clients as
// {"error":{"code","message"}}. Its HTTP status comes from httpStatus alone.
type Code string

// Error codes of the HTTP API.
const (
	CodeBadRequest          Code = "bad_request"
	CodeUnauthorized        Code = "unauthorized"
	CodeNotFound            Code = "not_found"
	CodeMethodNotAllowed    Code = "method_not_allowed"
	CodeRequestTimeout      Code = "request_timeout"
	CodePayloadTooLarge     Code = "payload_too_large"
	CodeRangeNotSatisfiable Code = "range_not_satisfiable"
	CodeHeadersTooLarge     Code = "headers_too_large"
	CodeInternal            Code = "internal"
	CodeNotReady            Code = "not_ready"
)

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
	case e.Code == CodeNotReady:
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
