package notifier_test

import (
	"testing"

	"github.com/butakero/butakero/platform/runtime/config"
	"github.com/butakero/butakero/services/notifier/notifier"
)

// TestSign checks the signature against the example the Standard Webhooks
// libraries test themselves with (secret, id, timestamp and body, and the
// signature they expect).
func TestSign(t *testing.T) {
	key, err := config.ParseWebhookSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, id string
		ts       int64
		body     string
		want     string
	}{
		{name: "the libraries' example", id: "msg_p5jXN8AQM9LWM0D4loKWxJek", ts: 1614265330, body: `{"test": 2432232314}`,
			want: "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := notifier.Sign(key, tc.id, tc.ts, []byte(tc.body)); got != tc.want {
				t.Errorf("Sign = %q, want %q", got, tc.want)
			}
			if got := notifier.Sign(key, tc.id, tc.ts+1, []byte(tc.body)); got == tc.want {
				t.Error("another timestamp signs the same")
			}
		})
	}
}
