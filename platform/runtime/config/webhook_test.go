package config_test

import (
	"testing"
	"time"

	"github.com/butakero/butakero/platform/runtime/config"
)

func TestWebhooks(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" // 24 bytes
	cases := []struct {
		name    string
		env     map[string]string
		wantErr string
		check   func(t *testing.T, w config.Webhooks)
	}{
		{name: "off by default", env: map[string]string{}, check: func(t *testing.T, w config.Webhooks) {
			if w.Enabled() || w.MaxAge != 24*time.Hour {
				t.Errorf("%+v, want disabled with a 24h max age", w)
			}
		}},
		{name: "several URLs on allowed hosts", env: map[string]string{
			"WEBHOOK_URL": "https://hooks.example/a, http://127.0.0.1:9000/b", "WEBHOOK_SECRET": secret,
			"WEBHOOK_ALLOWED_HOSTS": "hooks.example,127.0.0.1:*", "WEBHOOK_MAX_AGE": "2h",
		}, check: func(t *testing.T, w config.Webhooks) {
			if len(w.URLs) != 2 || len(w.Key) != 24 || w.MaxAge != 2*time.Hour {
				t.Errorf("%+v", w)
			}
		}},
		{name: "a URL on a host not listed", env: map[string]string{
			"WEBHOOK_URL": "https://evil.example/a", "WEBHOOK_SECRET": secret, "WEBHOOK_ALLOWED_HOSTS": "hooks.example",
		}, wantErr: "not on a host and port WEBHOOK_ALLOWED_HOSTS lists"},
		{name: "no allowed hosts", env: map[string]string{"WEBHOOK_URL": "https://hooks.example/a", "WEBHOOK_SECRET": secret},
			wantErr: "WEBHOOK_ALLOWED_HOSTS"},
		{name: "no secret", env: map[string]string{"WEBHOOK_URL": "https://hooks.example/a", "WEBHOOK_ALLOWED_HOSTS": "hooks.example"},
			wantErr: "WEBHOOK_SECRET is required"},
		{name: "a secret without whsec_", env: map[string]string{"WEBHOOK_URL": "https://hooks.example/a", "WEBHOOK_ALLOWED_HOSTS": "hooks.example",
			"WEBHOOK_SECRET": "hunter2"}, wantErr: "whsec_"},
		{name: "a short key", env: map[string]string{"WEBHOOK_URL": "https://hooks.example/a", "WEBHOOK_ALLOWED_HOSTS": "hooks.example",
			"WEBHOOK_SECRET": "whsec_c2hvcnQ="}, wantErr: "want 24 to 64"},
		{name: "a URL with a password", env: map[string]string{"WEBHOOK_URL": "https://u:p@hooks.example/a", "WEBHOOK_ALLOWED_HOSTS": "hooks.example",
			"WEBHOOK_SECRET": secret}, wantErr: "user name or password"},
		{name: "playlist items", env: map[string]string{"PLAYLIST_MAX_ITEMS": "0"}, wantErr: "PLAYLIST_MAX_ITEMS"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, ok := load(t, tc.env, tc.wantErr)
			if !ok {
				return
			}
			if c.PlaylistMaxItems != config.DefaultPlaylistMaxItems {
				t.Errorf("PlaylistMaxItems %d", c.PlaylistMaxItems)
			}
			tc.check(t, c.Webhooks)
		})
	}
}
