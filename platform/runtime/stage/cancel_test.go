package stage_test

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/runtime/natsconn"
	"github.com/butakero/butakero/platform/runtime/natsembed"
	"github.com/butakero/butakero/platform/runtime/stage"
	"github.com/butakero/butakero/platform/testkit/natstest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// gatedDialer dials the server over TCP while its gate is open; closed,
// a dial waits until it opens again. drop cuts every connection it made,
// as a network fault would.
type gatedDialer struct {
	mu    sync.Mutex
	gate  chan struct{} // closed: open
	conns []net.Conn
}

func newGatedDialer() *gatedDialer {
	g := &gatedDialer{gate: make(chan struct{})}
	close(g.gate)
	return g
}

func (g *gatedDialer) Dial(network, addr string) (net.Conn, error) {
	g.mu.Lock()
	gate := g.gate
	g.mu.Unlock()
	<-gate
	c, err := net.Dial(network, addr)
	if err == nil {
		g.mu.Lock()
		g.conns = append(g.conns, c)
		g.mu.Unlock()
	}
	return c, err
}

// hold closes the gate and cuts the connections made so far.
func (g *gatedDialer) hold() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.gate = make(chan struct{})
	for _, c := range g.conns {
		c.Close()
	}
	g.conns = nil
}

// open lets dials through again.
func (g *gatedDialer) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	close(g.gate)
}

// TestCancelMissedByTheWatch: a cancel published while the worker's
// connection is down never reaches its watch (a core subscription), yet
// the attempt that was running publishes nothing once it ends: the
// runtime asks the stream before it publishes, ends the message as
// cancelled (the Ended hook is told) and acks it.
func TestCancelMissedByTheWatch(t *testing.T) {
	const token = "stage-test-token"
	env := natstest.StartWith(t, natsembed.Options{Listen: "127.0.0.1:0", Auth: natsconn.Auth{Token: token}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// The worker's own connection, over TCP through the gated dialer.
	dialer := newGatedDialer()
	down, up := make(chan struct{}, 4), make(chan struct{}, 4)
	wnc, err := nats.Connect(env.Server.ClientURL(), nats.Name("worker"), nats.Token(token), nats.SetCustomDialer(dialer),
		nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond),
		nats.DisconnectErrHandler(func(*nats.Conn, error) { down <- struct{}{} }),
		nats.ReconnectHandler(func(*nats.Conn) { up <- struct{}{} }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(wnc.Close)
	wjs, err := jetstream.New(wnc)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := events.EnsureConsumer(ctx, wjs, events.ConsumerResolver, 3)
	if err != nil {
		t.Fatal(err)
	}

	started, release := make(chan struct{}, 1), make(chan struct{})
	ended := make(chan stage.Outcome, 4)
	w := &stage.Worker{
		Stage: "resolve", JS: wjs, Consumer: cons, MaxAttempts: 3, Timeout: time.Minute, Grace: time.Second,
		Cancellable: true, Log: slog.New(slog.NewTextHandler(t.Output(), nil)),
		Handle: func(ctx context.Context, d stage.Delivery) ([]stage.Emit, error) {
			started <- struct{}{}
			<-release
			return resolved(), nil
		},
		Ended: func(ctx context.Context, d stage.Delivery, o stage.Outcome) { ended <- o },
	}
	runWorker(t, ctx, w)
	opID := request(t, env)
	select {
	case <-started:
	case <-ctx.Done():
		t.Fatal("the handler never ran")
	}

	// The connection drops and stays down while the operation is cancelled.
	dialer.hold()
	select {
	case <-down:
	case <-ctx.Done():
		t.Fatal("the worker's connection never dropped")
	}
	cancelled, err := events.NewWithID(events.CancelledID(opID), opID, "", events.OperationCancelled{Reason: "cancelled by request"})
	if err != nil {
		t.Fatal(err)
	}
	env.Publish(t, cancelled)
	dialer.open()
	select {
	case <-up:
	case <-ctx.Done():
		t.Fatal("the worker never reconnected")
	}
	close(release)

	select {
	case o := <-ended:
		if !o.Cancelled || len(o.Events) != 0 {
			t.Errorf("the message ended with cancelled=%v, %d events, err %v; want cancelled with none", o.Cancelled, len(o.Events), o.Err)
		}
	case <-ctx.Done():
		t.Fatal("Ended never ran")
	}
	waitAcked(ctx, t, cons)
	if n := countStored(ctx, t, env, events.KindVideoResolved, opID); n != 0 {
		t.Errorf("%d video.resolved stored after the cancel, want none", n)
	}
}
