package awsconfig

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
)

// CheckCredentials fails when ac's credential chain yields no credentials,
// naming that as the reason. It does not tell whether AWS accepts them:
// only a request does (see Reason).
func CheckCredentials(ctx context.Context, ac aws.Config) error {
	if ac.Credentials == nil {
		return &Unready{Reason: "no AWS credentials configured (ACCESS_KEY/SECRET_KEY or the SDK's chain)"}
	}
	if _, err := ac.Credentials.Retrieve(ctx); err != nil {
		// The chain's error may name the metadata endpoint it tried.
		return &Unready{Reason: "no usable AWS credentials (ACCESS_KEY/SECRET_KEY or the SDK's chain)", Err: err}
	}
	return nil
}

// Reason turns an error of an AWS call into a short reason an operator can
// act on: "credentials rejected (InvalidAccessKeyId)", "access denied",
// "not found", "unreachable", … It never includes an address or a secret,
// so it may be shown on /readyz.
func Reason(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch code := ae.ErrorCode(); code {
		case "InvalidAccessKeyId", "SignatureDoesNotMatch", "UnrecognizedClientException",
			"InvalidSignatureException", "InvalidClientTokenId", "ExpiredToken", "ExpiredTokenException",
			"MissingAuthenticationToken", "MissingAuthenticationTokenException", "IncompleteSignature",
			"XAdminUserNotFound": // versitygw's answer to an unknown access key

			return "credentials rejected (" + code + ")"
		case "AccessDenied", "AccessDeniedException", "Forbidden":
			return "access denied: the credentials are wrong or lack permission (" + code + ")"
		case "NoSuchBucket", "NotFound", "ResourceNotFoundException":
			return "not found (" + code + ")"
		case "PermanentRedirect", "AuthorizationHeaderMalformed", "301":
			return "wrong region (" + code + ")"
		default:
			if code != "" {
				return "refused (" + code + ")"
			}
		}
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		switch re.HTTPStatusCode() {
		case 403:
			return "access denied: the credentials are wrong or lack permission (HTTP 403)"
		case 404:
			return "not found (HTTP 404)"
		case 301:
			return "wrong region (HTTP 301)"
		}
		return fmt.Sprintf("refused (HTTP %d)", re.HTTPStatusCode())
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return "no answer in time"
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return "unreachable"
	}
	return "failed"
}

// Unready is a store's Ping failure. Reason names the store and why in
// words safe to show on /readyz (never an address or a secret); Err keeps
// the details for the log.
type Unready struct {
	Reason string
	Err    error
}

func (u *Unready) Error() string {
	if u.Err == nil {
		return u.Reason
	}
	return u.Reason + ": " + u.Err.Error()
}

func (u *Unready) Unwrap() error { return u.Err }

// SafeReason is the text /readyz may show.
func (u *Unready) SafeReason() string { return u.Reason }

// NotReady returns err as an *Unready whose reason starts with what (the
// store, e.g. `s3 bucket "audio"`): err's own safe reason when it has one,
// else Reason(err).
func NotReady(what string, err error) error {
	var u *Unready
	if errors.As(err, &u) {
		return &Unready{Reason: what + ": " + u.Reason, Err: u.Err}
	}
	return &Unready{Reason: what + ": " + Reason(err), Err: err}
}
