package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/butakero/butakero/platform/media/mediahosts"
)

// DefaultPlaylistMaxItems is PLAYLIST_MAX_ITEMS' default.
const DefaultPlaylistMaxItems = 200

// DefaultWebhookMaxAge is WEBHOOK_MAX_AGE's default: how long a delivery
// is retried.
const DefaultWebhookMaxAge = 24 * time.Hour

// WebhookSecretPrefix starts a Standard Webhooks symmetric secret: the
// rest is the base64 of the HMAC key.
const WebhookSecretPrefix = "whsec_"

// Webhooks are the notifier's settings (services/notifier).
type Webhooks struct {
	// URLs are WEBHOOK_URL's, each on a host AllowedHosts admits. None
	// means no notifications.
	URLs []string
	// Secret is WEBHOOK_SECRET as given ("whsec_<base64>"), and Key the
	// HMAC-SHA256 key it encodes (24 to 64 bytes).
	Secret string
	Key    []byte
	// AllowedHosts is WEBHOOK_ALLOWED_HOSTS, canonical entries of package
	// mediahosts: checked for every URL, every redirect and every address
	// a delivery connects to.
	AllowedHosts []string
	// MaxAge is WEBHOOK_MAX_AGE: a delivery not accepted this long after
	// its event is given up.
	MaxAge time.Duration
}

// Enabled reports whether any webhook URL is configured.
func (w Webhooks) Enabled() bool { return len(w.URLs) > 0 }

// ParseWebhookSecret decodes a "whsec_<base64>" secret into its key.
func ParseWebhookSecret(s string) ([]byte, error) {
	rest, ok := strings.CutPrefix(s, WebhookSecretPrefix)
	if !ok {
		return nil, errors.New(`want "whsec_" and the base64 of 24 to 64 random bytes (Standard Webhooks)`)
	}
	key, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return nil, errors.New(`the part after "whsec_" is not base64`)
	}
	if len(key) < 24 || len(key) > 64 {
		return nil, fmt.Errorf("the key has %d bytes: want 24 to 64", len(key))
	}
	return key, nil
}

// loadWebhooks reads WEBHOOK_URL, WEBHOOK_SECRET, WEBHOOK_ALLOWED_HOSTS
// and WEBHOOK_MAX_AGE, appending what is wrong to errs.
func loadWebhooks(get func(k, def string) string, durVar func(string, time.Duration) time.Duration, errs *[]error) Webhooks {
	w := Webhooks{URLs: list(get("WEBHOOK_URL", "")), Secret: get("WEBHOOK_SECRET", ""), MaxAge: durVar("WEBHOOK_MAX_AGE", DefaultWebhookMaxAge)}
	hosts, err := mediahosts.Parse(get("WEBHOOK_ALLOWED_HOSTS", ""))
	if err != nil {
		*errs = append(*errs, fmt.Errorf("WEBHOOK_ALLOWED_HOSTS: %w", err))
	}
	w.AllowedHosts = hosts
	if w.MaxAge < time.Minute {
		*errs = append(*errs, fmt.Errorf("WEBHOOK_MAX_AGE=%s: want at least 1m", w.MaxAge))
	}
	if !w.Enabled() {
		return w
	}
	if w.Secret == "" {
		*errs = append(*errs, errors.New("WEBHOOK_URL is set: WEBHOOK_SECRET is required to sign the deliveries"))
	} else if w.Key, err = ParseWebhookSecret(w.Secret); err != nil {
		*errs = append(*errs, fmt.Errorf("WEBHOOK_SECRET: %w", err))
	}
	for _, raw := range w.URLs {
		u, err := url.Parse(raw)
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			*errs = append(*errs, fmt.Errorf("WEBHOOK_URL: %q is not an http(s) URL", raw))
		case u.User != nil:
			*errs = append(*errs, fmt.Errorf("WEBHOOK_URL: %q carries a user name or password", u.Redacted()))
		case !mediahosts.AllowsURL(hosts, u):
			*errs = append(*errs, fmt.Errorf("WEBHOOK_URL: %q is not on a host and port WEBHOOK_ALLOWED_HOSTS lists", u.Redacted()))
		}
	}
	return w
}
