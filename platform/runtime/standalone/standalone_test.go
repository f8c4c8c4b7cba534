package standalone

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/runtime/natsconn"
	"github.com/butakero/butakero/platform/runtime/natsembed"
	"github.com/butakero/butakero/platform/testkit/loopback"
	"github.com/butakero/butakero/platform/testkit/natstest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestJetStreamUnavailable: what a cluster still forming answers is waited
// out; a refusal of the request is not.
func TestJetStreamUnavailable(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"no answer within the attempt", fmt.Errorf("events: ensure stream BUTAKERO: %w", context.DeadlineExceeded), true},
		{"no responders", fmt.Errorf("events: ensure stream BUTAKERO: %w", nats.ErrNoResponders), true},
		{"JetStream not enabled yet", jetstream.ErrJetStreamNotEnabled, true},
		{"no meta leader", &jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream cluster is not available"}, true},
		{"too few peers yet", &jetstream.APIError{Code: 500, ErrorCode: 10023, Description: "insufficient resources"}, true},
		{"replicas on a single server", fmt.Errorf("events: ensure stream BUTAKERO: %w", &jetstream.APIError{Code: 500, ErrorCode: 10074, Description: "replicas > 1 not supported in non-clustered mode"}), false},
		{"a bad definition", &jetstream.APIError{Code: 400, ErrorCode: 10052, Description: "invalid stream configuration"}, false},
		{"anything else", errors.New("authorization violation"), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := jetStreamUnavailable(tc.err); got != tc.want {
				t.Errorf("jetStreamUnavailable(%v) = %t, want %t", tc.err, got, tc.want)
			}
		})
	}
}

// TestBacklogOf: each stage service reports its consumer's backlog; the
// encoder's adds up its encodes and its loudness measures, the recorder's
// its lanes; a service without a consumer reports none.
func TestBacklogOf(t *testing.T) {
	cases := []struct {
		service        string
		stream         string
		parts          []string
		wantNoConsumer bool
	}{
		{service: "resolver", stream: events.StreamName},
		{service: "fetcher", stream: events.StreamName},
		{service: "encoder", stream: events.StreamName, parts: []string{events.ConsumerEncoder, events.ConsumerEncoderLoudness}},
		{service: "recorder", stream: events.LanesStreamName, parts: events.LaneConsumers(4)},
		{service: "gateway", wantNoConsumer: true},
		{service: "notifier", wantNoConsumer: true},
	}
	for _, c := range cases {
		src, ok := backlogOf(c.service, 4)
		if ok == c.wantNoConsumer {
			t.Errorf("%s: has a backlog %v, want %v", c.service, ok, !c.wantNoConsumer)
			continue
		}
		if ok && (src.consumer != c.service || src.stream != c.stream || !slices.Equal(src.parts, c.parts)) {
			t.Errorf("%s: consumer %s on %s, parts %v; want %s on %s, parts %v", c.service, src.consumer, src.stream, src.parts, c.service, c.stream, c.parts)
		}
	}
}

// TestRunStoppedWhileStarting: a service alone cancelled before it has
// started (SIGTERM as its task starts) returns no error, so the process
// exits 0, and its run is never called.
func TestRunStoppedWhileStarting(t *testing.T) {
	env := natstest.StartWith(t, natsembed.Options{Listen: loopback.Addr(t), Auth: natsconn.Auth{Token: "stop-test"}})
	t.Setenv("NATS_URL", env.Server.ClientURL())
	t.Setenv("NATS_TOKEN", "stop-test")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ran := false
	err := Run(ctx, "fetcher", func(context.Context, Env) error { ran = true; return nil })
	if err != nil || ran {
		t.Fatalf("cancelled before it started: Run returned %v, run called %v; want nil, false", err, ran)
	}
}
