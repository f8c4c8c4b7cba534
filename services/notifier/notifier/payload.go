package notifier

import (
	"encoding/json"
	"time"

	"github.com/butakero/butakero/events"
)

// Payload is the JSON body of one delivery, shaped as the Standard
// Webhooks specification recommends: a full-stop delimited type, the
// time of the event, and its data. The same event always makes the same
// bytes, so every retry of a delivery carries the body its first try did.
type Payload struct {
	// Type is "operation.success", "operation.failed",
	// "operation.cancelled" or, for a playlist's parent,
	// "operation.partial".
	Type string `json:"type"`
	// Timestamp is when the event that ended the operation was stored.
	Timestamp time.Time `json:"timestamp"`
	Data      Outcome   `json:"data"`
}

// Outcome is what ended an operation.
type Outcome struct {
	OperationID string `json:"operation_id"`
	SongID      string `json:"song_id,omitempty"`
	// Status is "success", "failed" or "cancelled", as GET
	// /v1/operations/{id} says.
	Status string `json:"status"`
	// EventID is the id of the event that ended the operation; the
	// delivery's webhook-id is "msg_" and it.
	EventID string `json:"event_id"`
	// StatusURL is the operation's path on the gateway.
	StatusURL string `json:"status_url"`
	// For a success: the song, and where its DCA is.
	Song   *events.Song `json:"song,omitempty"`
	DCAURL string       `json:"dca_url,omitempty"`
	Size   int64        `json:"dca_size,omitempty"`
	Cached bool         `json:"cached,omitempty"`
	// For a failure: the stage, its code and why.
	Stage     string `json:"stage,omitempty"`
	ErrorCode string `json:"error_code,omitempty"`
	Message   string `json:"message,omitempty"`
	Attempts  int    `json:"attempts,omitempty"`
	// For a playlist's parent: its children by outcome.
	Counts map[string]int `json:"counts,omitempty"`
}

// payloadOf is the delivery of the final event env (decoded as ev), or
// false for an event that ends nothing.
func payloadOf(env events.Envelope, ev events.Event, stored time.Time) (Payload, bool) {
	o := Outcome{OperationID: env.OperationID, SongID: env.SongID, EventID: env.ID, StatusURL: "/v1/operations/" + env.OperationID}
	switch e := ev.(type) {
	case events.UploadDone:
		song := e.Song
		o.Status, o.Song, o.Size, o.Cached = "success", &song, e.Size, e.Cached
		if song.ID != "" {
			o.SongID = song.ID
			o.DCAURL = "/v1/songs/" + song.ID + "/dca"
		}
	case events.OperationFailed:
		o.Status, o.Stage, o.ErrorCode, o.Message, o.Attempts = "failed", e.Stage, string(e.Code), e.Message, e.Attempts
	case events.OperationCancelled:
		o.Status, o.Message = "cancelled", e.Reason
	case events.PlaylistEnded:
		o.Status, o.Counts = e.Status, e.Counts
	default:
		return Payload{}, false
	}
	at := env.Time
	if !stored.IsZero() {
		at = stored
	}
	return Payload{Type: "operation." + o.Status, Timestamp: at.UTC(), Data: o}, true
}

// body is p's JSON.
func (p Payload) body() []byte {
	b, err := json.Marshal(p)
	if err != nil {
		panic("notifier: payload does not encode: " + err.Error())
	}
	return b
}
