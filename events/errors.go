package events

import (
	"errors"
	"fmt"
)

// Code is a machine-readable reason why a stage failed. It decides whether
// the stage is tried again (see Code.Permanent) and is what users see in the
// operation.failed event and the operation's state.
type Code string

// Failure codes. Permanent ones end the operation at once; transient ones are
// retried up to MAX_ATTEMPTS times.
const (
	// CodeInvalidInput: the query cannot be a song (bad URL, host not allowed).
	CodeInvalidInput Code = "invalid_input"
	// CodeNotFound: the search found nothing, or the video does not exist.
	CodeNotFound Code = "not_found"
	// CodeUnavailable: the video exists but cannot be had (private, removed,
	// live, too long).
	CodeUnavailable Code = "unavailable"
	// CodeEmptyAudio: the source gave no bytes.
	CodeEmptyAudio Code = "empty_audio"
	// CodeInvalidAudio: the source is not audio ffmpeg can decode, or the
	// encode did not cover the source's duration.
	CodeInvalidAudio Code = "invalid_audio"
	// CodeSignInRequired: YouTube asks to sign in (its bot check or an age
	// gate); no retry passes it, cookies or a proxy may (YTDLP_COOKIES_FILE,
	// YTDLP_PROXY).
	CodeSignInRequired Code = "sign_in_required"
	// CodeRateLimited: the source limits requests (HTTP 429); retried with
	// backoff.
	CodeRateLimited Code = "rate_limited"
	// CodeNetwork: the network failed (name resolution, refused or reset
	// connections, timeouts); retried.
	CodeNetwork Code = "network_error"
	// CodeDownloadFailed: the download failed for another reason that may
	// pass.
	CodeDownloadFailed Code = "download_failed"
	// CodeTimeout: one attempt ran over STAGE_TIMEOUT.
	CodeTimeout Code = "timeout"
	// CodeInternal: a store or the stream failed; retried.
	CodeInternal Code = "internal"
)

// Permanent reports whether a failure with this code would fail again on
// every retry.
func (c Code) Permanent() bool {
	switch c {
	case CodeInvalidInput, CodeNotFound, CodeUnavailable, CodeSignInRequired, CodeEmptyAudio, CodeInvalidAudio:
		return true
	}
	return false
}

// Failure is an error with a code and a message meant for the user. Err,
// when set, holds the details for the log.
type Failure struct {
	Code    Code
	Message string
	Err     error
}

// Fail returns a Failure with a formatted message.
func Fail(code Code, format string, args ...any) *Failure {
	return &Failure{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns a Failure that keeps err for the log.
func Wrap(code Code, err error, format string, args ...any) *Failure {
	return &Failure{Code: code, Message: fmt.Sprintf(format, args...), Err: err}
}

func (f *Failure) Error() string {
	if f.Err != nil {
		return fmt.Sprintf("%s: %s: %v", f.Code, f.Message, f.Err)
	}
	return fmt.Sprintf("%s: %s", f.Code, f.Message)
}

func (f *Failure) Unwrap() error { return f.Err }

// AsFailure returns err's Failure, or a transient CodeInternal failure with a
// generic message for any other error, so that a user never sees an internal
// error text.
func AsFailure(err error) *Failure {
	var f *Failure
	if errors.As(err, &f) {
		return f
	}
	return &Failure{Code: CodeInternal, Message: "internal error", Err: err}
}
