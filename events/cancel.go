package events

// OperationCancelled ends an operation a user cancelled (DELETE
// /v1/operations/{id}). Every stage that works on the operation stops
// when it sees it (package platform/runtime/stage) and publishes nothing
// more for it; the projection ends the operation "cancelled".
//
// An operation that ended before the event reached the stream (its
// upload.done or operation.failed is stored first) stays as it ended: the
// first final event of an operation is its outcome.
type OperationCancelled struct {
	// Reason says who or what cancelled it, in words ("cancelled by
	// request", "its playlist was cancelled").
	Reason string `json:"reason,omitempty"`
}

func (OperationCancelled) Kind() Kind   { return KindOperationCancelled }
func (OperationCancelled) Type() string { return TypeOperationCancelled }

// CancelledID is the envelope id of operation opID's operation.cancelled:
// derived from the operation, so that cancelling twice (two DELETEs, or a
// DELETE racing a playlist's cancel) stores one event.
func CancelledID(opID string) string { return DeriveID(opID, TypeOperationCancelled) }

// CancelledSubjects is the subject filter of every operation.cancelled.
func CancelledSubjects() string { return Subject(KindOperationCancelled, "*") }

// FinalKinds are the kinds that end an operation (playlist.ended a
// parent); the first of them in an operation's history is its outcome.
var FinalKinds = []Kind{KindUploadDone, KindOperationFailed, KindOperationCancelled, KindPlaylistEnded}

// IsFinal reports whether k ends an operation.
func IsFinal(k Kind) bool {
	for _, f := range FinalKinds {
		if f == k {
			return true
		}
	}
	return false
}
