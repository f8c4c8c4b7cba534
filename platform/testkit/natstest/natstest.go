// Package natstest starts a real embedded JetStream server for a test, with
// its store in the test's temp dir, and the event stream created on it.
package natstest

import (
	"context"
	"testing"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/runtime/natsembed"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Env is a running server with one client connection.
type Env struct {
	// Server is the embedded server; nil for a cluster's (Cluster.Env).
	Server *natsembed.Server
	NC     *nats.Conn
	JS     jetstream.JetStream
	Stream jetstream.Stream
}

// Start starts a server for t and stops it when t ends.
func Start(t testing.TB) *Env {
	t.Helper()
	return StartWith(t, natsembed.Options{})
}

// StartWith is Start with opts: a client listener and the auth its
// clients present (Env's own connection presents it too). An empty
// StoreDir is a temp dir of t's.
func StartWith(t testing.TB, opts natsembed.Options) *Env {
	t.Helper()
	if opts.StoreDir == "" {
		opts.StoreDir = t.TempDir()
	}
	srv, err := natsembed.Start(opts)
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	nc, err := srv.Connect("test")
	if err != nil {
		srv.Shutdown()
		t.Fatalf("natstest: %v", err)
	}
	t.Cleanup(func() { nc.Close(); srv.Shutdown() })
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	stream, err := events.EnsureStream(context.Background(), js, 1, events.StreamLimits{})
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	return &Env{Server: srv, NC: nc, JS: js, Stream: stream}
}

// StartWithin is Start, and a context for the test's calls that ends
// after timeout or when the test function returns (before t's cleanups
// run, as a deferred cancel would).
func StartWithin(t testing.TB, timeout time.Duration) (*Env, context.Context) {
	t.Helper()
	env := Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	t.Cleanup(cancel)
	return env, ctx
}

// Publish publishes env to the stream or fails the test.
func (e *Env) Publish(t testing.TB, env events.Envelope) {
	t.Helper()
	if _, err := events.NewPublisher(e.JS).Publish(context.Background(), env); err != nil {
		t.Fatalf("natstest: publish: %v", err)
	}
}

// Next waits for the next event of kind k for operation opID in the stream
// (from its first message) and returns it, or fails the test when ctx ends.
func (e *Env) Next(ctx context.Context, t testing.TB, k events.Kind, opID string) (events.Envelope, events.Event) {
	t.Helper()
	c, err := e.JS.OrderedConsumer(ctx, events.StreamName, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{events.Subject(k, opID)},
	})
	if err != nil {
		t.Fatalf("natstest: consumer: %v", err)
	}
	msg, err := c.Next(jetstream.FetchContext(ctx))
	if err != nil {
		t.Fatalf("natstest: waiting for %s of %s: %v", k, opID, err)
	}
	env, ev, err := events.Decode(msg.Data())
	if err != nil {
		t.Fatalf("natstest: decode: %v", err)
	}
	return env, ev
}

// Connect connects to the server(s) at url with opts, for t (the
// connection closes when t ends), and returns the connection and its
// JetStream.
func Connect(t testing.TB, url string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("natstest: connect to %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	return nc, js
}

// Open opens what a test needs on js with replicas: open is a
// constructor that creates its bucket or stream or takes the existing one
// (kvstore.Open, objstore.Open, sourcestream.Ensure). It returns what open
// returned, or fails t.
func Open[S any](ctx context.Context, t testing.TB, open func(context.Context, jetstream.JetStream, int) (S, error), js jetstream.JetStream, replicas int) S {
	t.Helper()
	s, err := open(ctx, js, replicas)
	if err != nil {
		t.Fatalf("natstest: open: %v", err)
	}
	return s
}
