package standalone

import (
	"context"
	"errors"
	"fmt"
	"testing"

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
