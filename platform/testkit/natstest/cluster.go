package natstest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/testkit/loopback"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Cluster is n JetStream servers in this process, routed to each other on
// loopback, each with its store in the test's temp dir.
type Cluster struct {
	Servers []*server.Server
}

// StartCluster starts a cluster of n servers for t, waits until its
// JetStream's meta leader knows all n and every node is current, and shuts it down when t ends.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	// Every port picked before any node listens, none picked twice: a
	// node's client listener must not take another's route port.
	ports, clients := make([]int, n), make([]int, n)
	for i := range ports {
		ports[i], clients[i] = loopback.MustPort(t), loopback.MustPort(t)
	}
	var routes []*url.URL
	for _, p := range ports {
		routes = append(routes, &url.URL{Scheme: "nats", Host: net.JoinHostPort("127.0.0.1", fmt.Sprint(p))})
	}
	c := &Cluster{}
	for i := range n {
		opts := &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1),
			Host:       "127.0.0.1",
			Port:       clients[i],
			JetStream:  true,
			StoreDir:   t.TempDir(),
			NoSigs:     true,
			NoLog:      true,
			Cluster: server.ClusterOpts{
				Name: "natstest",
				Host: "127.0.0.1",
				Port: ports[i],
			},
			Routes: routes,
		}
		s, err := server.NewServer(opts)
		if err != nil {
			t.Fatalf("natstest: cluster node %d: %v", i+1, err)
		}
		go s.Start()
		t.Cleanup(s.Shutdown)
		c.Servers = append(c.Servers, s)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, s := range c.Servers {
		if !s.ReadyForConnections(time.Until(deadline)) {
			t.Fatalf("natstest: cluster node %s did not start", s.Name())
		}
	}
	for {
		// The meta leader knows every node, so that a stream of n
		// replicas can be placed.
		ready := false
		for _, s := range c.Servers {
			ready = ready || s.JetStreamIsLeader() && len(s.JetStreamClusterPeers()) == n
		}
		for _, s := range c.Servers {
			ready = ready && s.JetStreamIsCurrent()
		}
		if ready {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("natstest: the cluster elected no JetStream meta leader in 30 s")
		}
		<-time.After(50 * time.Millisecond)
	}
	return c
}

// URLs are the servers' client URLs, comma-separated.
func (c *Cluster) URLs() string {
	var urls []string
	for _, s := range c.Servers {
		urls = append(urls, s.ClientURL())
	}
	return strings.Join(urls, ",")
}

// Env connects to the cluster for t and creates the event stream on it
// with one replica per node.
func (c *Cluster) Env(t testing.TB) *Env {
	t.Helper()
	nc, js := Connect(t, c.URLs())
	// A bound of its own rather than nats.go's 5 s per request: the new
	// stream's replicas elect a leader first.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stream jetstream.Stream
	for {
		// A request the meta leader lost (a leader change on a busy
		// machine) is never answered: each attempt has a bound of its
		// own, and one not answered may have created the stream, so it
		// is looked for before another create (an update while a create
		// is in flight goes unanswered too).
		actx, acancel := context.WithTimeout(ctx, 10*time.Second)
		s, err := events.EnsureStream(actx, js, len(c.Servers), events.StreamLimits{})
		acancel()
		if err == nil {
			stream = s
			break
		}
		if ctx.Err() != nil || !(errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrNoResponders)) {
			t.Fatalf("natstest: %v", err)
		}
		t.Logf("natstest: %v; trying again", err)
		if s, err := js.Stream(ctx, events.StreamName); err == nil {
			stream = s
			break
		}
	}
	waitStreamReady(ctx, t, stream, len(c.Servers))
	return &Env{NC: nc, JS: js, Stream: stream}
}

// waitStreamReady waits until stream has a leader and its other
// replicas-1 replicas are current: a publish to a stream just created can
// find no leader yet ("no response from stream"), more so on a busy
// machine.
func waitStreamReady(ctx context.Context, t testing.TB, stream jetstream.Stream, replicas int) {
	t.Helper()
	for {
		info, err := stream.Info(ctx)
		if err == nil && info.Cluster != nil && info.Cluster.Leader != "" && len(info.Cluster.Replicas) == replicas-1 {
			current := true
			for _, r := range info.Cluster.Replicas {
				current = current && r.Current
			}
			if current {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("natstest: stream %s has no leader with %d current replicas: %v (last error %v)", events.StreamName, replicas, ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
