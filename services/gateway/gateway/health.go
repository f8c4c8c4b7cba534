package gateway

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// healthz answers while the process serves HTTP.
func (s *server) healthz(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"status": "ok"})
}

// readyz answers 200 when NATS is connected and both stores answer, and 503
// naming what is unreachable otherwise. The stores are pinged at once, each
// within readyTimeout.
func (s *server) readyz(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), readyTimeout)
	defer cancel()
	var storeErr, blobErr error
	done := make(chan struct{}, 2)
	go func() { storeErr = s.store.Ping(ctx); done <- struct{}{} }()
	go func() { blobErr = s.blobs.Ping(ctx); done <- struct{}{} }()
	<-done
	<-done

	var failed []string
	var errs []error
	if !s.nc.IsConnected() {
		failed = append(failed, "nats")
		errs = append(errs, fmt.Errorf("nats: %s", s.nc.Status()))
	}
	if storeErr != nil {
		failed = append(failed, withReasons("projections", storeErr))
		errs = append(errs, storeErr)
	}
	if blobErr != nil {
		failed = append(failed, withReasons("blobs", blobErr))
		errs = append(errs, blobErr)
	}
	if len(failed) > 0 {
		return &Error{
			Code:    CodeNotReady,
			Message: "unreachable: " + strings.Join(failed, ", "),
			Err:     errors.Join(errs...),
		}
	}
	return c.JSON(fiber.Map{"status": "ok"})
}

// safeReasoner is an error whose SafeReason may be shown to anyone: it
// names a store and why it is not ready, never an address or a secret
// (awsconfig.Unready).
type safeReasoner interface{ SafeReason() string }

// withReasons is name followed by the safe reasons found in err, if any:
// "blobs (s3 bucket \"audio\": credentials rejected (SignatureDoesNotMatch))".
func withReasons(name string, err error) string {
	var reasons []string
	var walk func(error)
	walk = func(err error) {
		if r, ok := err.(safeReasoner); ok {
			reasons = append(reasons, r.SafeReason())
			return
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	if len(reasons) == 0 {
		return name
	}
	return name + " (" + strings.Join(reasons, "; ") + ")"
}
