package events

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Publisher publishes envelopes to the stream. It is safe for concurrent use.
type Publisher struct {
	js jetstream.JetStream
}

// NewPublisher returns a Publisher on js.
func NewPublisher(js jetstream.JetStream) *Publisher { return &Publisher{js: js} }

// Publish stores env in the stream and returns once the server has
// acknowledged it. The envelope id is the Nats-Msg-Id, so publishing the same
// envelope twice within DuplicateWindow stores it once; the ack then says
// Duplicate.
func (p *Publisher) Publish(ctx context.Context, env Envelope) (*jetstream.PubAck, error) {
	subject, err := env.Subject()
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(env)
	if err != nil {
		return nil, fmt.Errorf("events: encode envelope: %w", err)
	}
	msg := &nats.Msg{Subject: subject, Data: body, Header: nats.Header{}}
	ack, err := p.js.PublishMsg(ctx, msg, jetstream.WithMsgID(env.ID), jetstream.WithExpectStream(StreamName))
	if err != nil {
		return nil, fmt.Errorf("events: publish %s: %w", subject, err)
	}
	return ack, nil
}

// Progress is an ephemeral message on ProgressSubject: how far a stage is.
type Progress struct {
	Type        string  `json:"type"` // always "progress"
	OperationID string  `json:"operation_id"`
	Stage       string  `json:"stage"`
	Percent     float64 `json:"percent"`
}

// PublishProgress sends a progress message over core NATS. It is best
// effort: nothing stores it and a lost one is replaced by the next.
func PublishProgress(nc *nats.Conn, opID, stage string, percent float64) {
	body, _ := json.Marshal(Progress{Type: "progress", OperationID: opID, Stage: stage, Percent: percent})
	_ = nc.Publish(ProgressSubject(opID), body)
}
