package gateway

import (
	"context"
	"fmt"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/projection"
	"github.com/gofiber/fiber/v2"
)

// cancelResponse is DELETE /v1/operations/{id}'s answer: the operation is
// cancelled (its operation.cancelled is stored); the stages stop its work
// within moments.
type cancelResponse struct {
	OperationID string `json:"operation_id"`
	Status      string `json:"status"`
	StatusURL   string `json:"status_url"`
}

// cancelReason is the message a cancelled operation's status shows.
const cancelReason = "cancelled by request"

// cancelOperation handles DELETE /v1/operations/{id}: 202 once
// operation.cancelled is stored, 404 for an unknown operation, 409 (and
// nothing changed) for one that has ended. Cancelling twice stores one
// event (its id derives from the operation: events.CancelledID), and the
// second DELETE answers 409 once the first is projected.
//
// An operation that ends in the moment between the check and the publish
// keeps the outcome that reached the stream first (the projection's rule).
func (s *server) cancelOperation(c *fiber.Ctx) error {
	opID, err := operationID(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), storeTimeout)
	defer cancel()
	op, _, parent, err := s.operationView(ctx, c, opID, false)
	if err != nil {
		return err
	}
	if op.Final() {
		return errorf(CodeConflict, fmt.Sprintf("the operation has ended already (%s)", v1StatusOf(op.Status)))
	}
	if parent != nil {
		if _, err := s.cancelChildren(c.UserContext(), opID, parent); err != nil {
			return err
		}
	}
	if err := s.publishCancel(c.UserContext(), opID, op.SongID, cancelReason); err != nil {
		return err
	}
	c.Set(fiber.HeaderLocation, statusURL(opID))
	return c.Status(fiber.StatusAccepted).JSON(cancelResponse{OperationID: opID, Status: v1Cancelled, StatusURL: statusURL(opID)})
}

// publishCancel stores operation opID's operation.cancelled.
func (s *server) publishCancel(ctx context.Context, opID, songID, reason string) error {
	env, err := events.NewWithID(events.CancelledID(opID), opID, songID, events.OperationCancelled{Reason: reason})
	if err != nil {
		return internal(err)
	}
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	if _, err := s.pub.Publish(ctx, env); err != nil {
		return internal(fmt.Errorf("publish operation.cancelled: %w", err))
	}
	return nil
}

// v1StatusOf is the v1 API's name of a projection status.
func v1StatusOf(status string) string {
	switch status {
	case projection.StatusSuccess:
		return v1Success
	case projection.StatusFailed:
		return v1Failed
	case projection.StatusCancelled:
		return v1Cancelled
	case projection.StatusPartial:
		return projection.StatusPartial
	}
	return v1InProgress
}
