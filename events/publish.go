package events

import (
	"context"
	"encoding/json"
	"fmt"
	"net/textproto"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/propagation"
)

// Publisher publishes envelopes to the stream. It is safe for concurrent use.
type Publisher struct {
	js jetstream.JetStream
}

// NewPublisher returns a Publisher on js.
func NewPublisher(js jetstream.JetStream) *Publisher { return &Publisher{js: js} }

// JetStream is the JetStream context the Publisher publishes through.
func (p *Publisher) JetStream() jetstream.JetStream { return p.js }

// Publish stores env in the stream and returns once the server has
// acknowledged it. The envelope id is the Nats-Msg-Id, so publishing the same
// envelope twice within DuplicateWindow stores it once; the ack then says
// Duplicate. The trace context of ctx, if any, travels in the message's
// W3C traceparent and tracestate headers (see InjectTrace).
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
	InjectTrace(ctx, msg.Header)
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

// TracePropagator is the W3C Trace Context propagator (traceparent,
// tracestate) that carries OpenTelemetry trace context across NATS
// messages and HTTP requests.
var TracePropagator propagation.TextMapPropagator = propagation.TraceContext{}

// InjectTrace writes the span context of ctx, when it has a valid one, into
// h as W3C traceparent and tracestate headers. Without a span context it
// writes nothing.
func InjectTrace(ctx context.Context, h nats.Header) {
	TracePropagator.Inject(ctx, HeaderCarrier(h))
}

// ExtractTrace returns ctx carrying the remote span context found in h's
// traceparent header, or ctx unchanged when there is none or it is malformed.
func ExtractTrace(ctx context.Context, h nats.Header) context.Context {
	if len(h) == 0 {
		return ctx
	}
	return TracePropagator.Extract(ctx, HeaderCarrier(h))
}

// HeaderCarrier adapts nats.Header to propagation.TextMapCarrier. NATS
// header names are case-sensitive: it writes the W3C names as the
// propagator gives them ("traceparent") and reads them in that form or in
// the canonical MIME form ("Traceparent") a bridge from HTTP may have used.
type HeaderCarrier nats.Header

// Get returns the first value of key.
func (c HeaderCarrier) Get(key string) string {
	if v := nats.Header(c).Get(key); v != "" {
		return v
	}
	return nats.Header(c).Get(textproto.CanonicalMIMEHeaderKey(key))
}

// Set replaces the values of key.
func (c HeaderCarrier) Set(key, value string) { nats.Header(c).Set(key, value) }

// Keys lists the header names.
func (c HeaderCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}
