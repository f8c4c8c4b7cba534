package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/butakero/butakero/platform/runtime/config"
)

// load loads the configuration from env. With wantErr set, it checks that
// loading fails with an error that contains wantErr and returns false;
// otherwise it fails t on any error.
func load(t *testing.T, env map[string]string, wantErr string) (config.Config, bool) {
	t.Helper()
	c, err := config.Load(config.FromMap(env))
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("error %v, want one containing %q", err, wantErr)
		}
		return c, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return c, true
}

func TestLoad(t *testing.T) {
	cases := []struct {
		name    string
		env     map[string]string
		check   func(t *testing.T, c config.Config)
		wantErr string
	}{
		{"defaults", nil, func(t *testing.T, c config.Config) {
			if c.HTTPAddr != ":8080" || c.DataDir != "./data" || !c.Embedded() || c.StreamReplicas != 1 ||
				c.MaxAttempts != 3 || c.StageTimeout != 4*time.Minute || c.MaxDuration != 3*time.Hour ||
				c.DCABitrateKbps != 96 || c.LogLevel != "info" || c.LogFormat != "json" {
				t.Errorf("defaults = %+v", c)
			}
		}, ""},
		{"lists are trimmed and hosts lower-cased", map[string]string{"ALLOWED_MEDIA_HOSTS": " CDN.example.com, ,127.0.0.1:9000,[::1]:*", "API_KEYS": "a, b"}, func(t *testing.T, c config.Config) {
			if strings.Join(c.AllowedMediaHosts, "|") != "cdn.example.com|127.0.0.1:9000|[::1]:*" || strings.Join(c.APIKeys, "|") != "a|b" {
				t.Errorf("hosts %q, keys %q", c.AllowedMediaHosts, c.APIKeys)
			}
		}, ""},
		{"direct downloads are capped at 1 GiB", nil, func(t *testing.T, c config.Config) {
			if c.DirectMaxBytes != 1<<30 {
				t.Errorf("DirectMaxBytes = %d", c.DirectMaxBytes)
			}
		}, ""},
		{"DIRECT_MAX_BYTES", map[string]string{"DIRECT_MAX_BYTES": "5000000"}, func(t *testing.T, c config.Config) {
			if c.DirectMaxBytes != 5_000_000 {
				t.Errorf("DirectMaxBytes = %d", c.DirectMaxBytes)
			}
		}, ""},
		{"bad DIRECT_MAX_BYTES", map[string]string{"DIRECT_MAX_BYTES": "1G"}, nil, "DIRECT_MAX_BYTES"},
		{"the encode memory budget is 24 MiB", nil, func(t *testing.T, c config.Config) {
			if c.EncodeMemoryBudget != 24<<20 {
				t.Errorf("EncodeMemoryBudget = %d", c.EncodeMemoryBudget)
			}
		}, ""},
		{"ENCODE_MEMORY_BUDGET", map[string]string{"ENCODE_MEMORY_BUDGET": "64MiB"}, func(t *testing.T, c config.Config) {
			if c.EncodeMemoryBudget != 64<<20 {
				t.Errorf("EncodeMemoryBudget = %d", c.EncodeMemoryBudget)
			}
		}, ""},
		{"ENCODE_MEMORY_BUDGET=off", map[string]string{"ENCODE_MEMORY_BUDGET": "OFF"}, func(t *testing.T, c config.Config) {
			if c.EncodeMemoryBudget != 0 {
				t.Errorf("EncodeMemoryBudget = %d", c.EncodeMemoryBudget)
			}
		}, ""},
		{"bad ENCODE_MEMORY_BUDGET", map[string]string{"ENCODE_MEMORY_BUDGET": "12KiB"}, nil, "ENCODE_MEMORY_BUDGET"},
		{"an allowed host with a scheme", map[string]string{"ALLOWED_MEDIA_HOSTS": "cdn.example.com,https://media.example.com"}, nil, "ALLOWED_MEDIA_HOSTS"},
		{"an allowed host with a bad port", map[string]string{"ALLOWED_MEDIA_HOSTS": "cdn.example.com:99999"}, nil, "ALLOWED_MEDIA_HOSTS"},
		{"GIN_MODE=debug from the seed", map[string]string{"GIN_MODE": "debug"}, func(t *testing.T, c config.Config) {
			if c.LogLevel != "debug" || c.LogFormat != "text" {
				t.Errorf("level %q format %q", c.LogLevel, c.LogFormat)
			}
		}, ""},
		{"explicit LOG_LEVEL wins over GIN_MODE", map[string]string{"GIN_MODE": "debug", "LOG_LEVEL": "warn"}, func(t *testing.T, c config.Config) {
			if c.LogLevel != "warn" {
				t.Errorf("level %q", c.LogLevel)
			}
		}, ""},
		{"NATS_URL means a cluster", map[string]string{"NATS_URL": "nats://a:4222,nats://b:4222"}, func(t *testing.T, c config.Config) {
			if c.Embedded() {
				t.Error("still embedded")
			}
		}, ""},
		{"bad duration", map[string]string{"STAGE_TIMEOUT": "soon"}, nil, "STAGE_TIMEOUT"},
		{"negative duration", map[string]string{"MAX_DURATION": "-1h"}, nil, "MAX_DURATION"},
		{"attempts out of range", map[string]string{"MAX_ATTEMPTS": "0"}, nil, "MAX_ATTEMPTS"},
		{"bitrate above what Discord takes", map[string]string{"DCA_BITRATE_KBPS": "320"}, nil, "DCA_BITRATE_KBPS"},
		{"opus passthrough by default, 192 kb/s cap, no loudness target", nil, func(t *testing.T, c config.Config) {
			if !c.OpusPassthrough || c.PassthroughMaxKbps != 192 || c.LoudnessTarget != nil {
				t.Errorf("passthrough %v, cap %d, target %v", c.OpusPassthrough, c.PassthroughMaxKbps, c.LoudnessTarget)
			}
		}, ""},
		{"OPUS_PASSTHROUGH=off and a loudness target", map[string]string{"OPUS_PASSTHROUGH": "off", "LOUDNESS_TARGET": "-14"}, func(t *testing.T, c config.Config) {
			if c.OpusPassthrough || c.LoudnessTarget == nil || *c.LoudnessTarget != -14 {
				t.Errorf("passthrough %v, target %v", c.OpusPassthrough, c.LoudnessTarget)
			}
		}, ""},
		{"bad OPUS_PASSTHROUGH", map[string]string{"OPUS_PASSTHROUGH": "yes"}, nil, "OPUS_PASSTHROUGH"},
		{"bad LOUDNESS_TARGET", map[string]string{"LOUDNESS_TARGET": "loud"}, nil, "LOUDNESS_TARGET"},
		{"bad log format", map[string]string{"LOG_FORMAT": "xml"}, nil, "LOG_FORMAT"},
		{"NATS client credentials and TLS", map[string]string{"NATS_USER": "svc", "NATS_PASSWORD": "pw", "NATS_TLS_CA": "/ca.pem", "NATS_TLS_CERT": "/c.pem", "NATS_TLS_KEY": "/k.pem"}, func(t *testing.T, c config.Config) {
			if c.NATSUser != "svc" || c.NATSPassword != "pw" || c.NATSTLSCA != "/ca.pem" || c.NATSTLSCert != "/c.pem" || c.NATSTLSKey != "/k.pem" || c.NATSToken != "" || c.NATSCreds != "" {
				t.Errorf("NATS settings %+v", c)
			}
		}, ""},
		{"NATS_CREDS alone", map[string]string{"NATS_CREDS": "/run/secrets/butakero.creds"}, func(t *testing.T, c config.Config) {
			if c.NATSCreds != "/run/secrets/butakero.creds" {
				t.Errorf("NATSCreds %q", c.NATSCreds)
			}
		}, ""},
		{"yt-dlp's JavaScript runtime and components", map[string]string{"YTDLP_JS_RUNTIMES": "quickjs, node:/usr/bin/node", "YTDLP_REMOTE_COMPONENTS": "ejs:github"}, func(t *testing.T, c config.Config) {
			if strings.Join(c.YTDLPJSRuntimes, "|") != "quickjs|node:/usr/bin/node" || strings.Join(c.YTDLPRemoteComps, "|") != "ejs:github" {
				t.Errorf("runtimes %q, components %q", c.YTDLPJSRuntimes, c.YTDLPRemoteComps)
			}
		}, ""},
		{"an option as a yt-dlp runtime", map[string]string{"YTDLP_JS_RUNTIMES": "--exec=sh"}, nil, "YTDLP_JS_RUNTIMES"},
		{"NATS_USER without a password", map[string]string{"NATS_USER": "svc"}, nil, "NATS_PASSWORD"},
		{"NATS_TOKEN and NATS_USER both", map[string]string{"NATS_TOKEN": "t", "NATS_USER": "svc", "NATS_PASSWORD": "pw"}, nil, "one way to authenticate"},
		{"NATS_CREDS and NATS_TOKEN both", map[string]string{"NATS_CREDS": "/x.creds", "NATS_TOKEN": "t"}, nil, "one way to authenticate"},
		{"NATS_TLS_CERT without a key", map[string]string{"NATS_TLS_CERT": "/c.pem"}, nil, "NATS_TLS_KEY"},
		{"rate limits by default", nil, func(t *testing.T, c config.Config) {
			if c.RateLimit != 120 || c.ReadRateLimit != config.DefaultReadRateLimit || c.ReadRateLimit < 6000 || c.AuthFailureLimit != 20 {
				t.Errorf("RateLimit %d, ReadRateLimit %d, AuthFailureLimit %d", c.RateLimit, c.ReadRateLimit, c.AuthFailureLimit)
			}
		}, ""},
		{"rate limits off", map[string]string{"RATE_LIMIT": "0", "READ_RATE_LIMIT": "0", "AUTH_FAILURE_LIMIT": "0"}, func(t *testing.T, c config.Config) {
			if c.RateLimit != 0 || c.ReadRateLimit != 0 || c.AuthFailureLimit != 0 {
				t.Errorf("RateLimit %d, ReadRateLimit %d, AuthFailureLimit %d", c.RateLimit, c.ReadRateLimit, c.AuthFailureLimit)
			}
		}, ""},
		{"negative read limit", map[string]string{"READ_RATE_LIMIT": "-1"}, nil, "READ_RATE_LIMIT"},
		{"bad auth failure limit", map[string]string{"AUTH_FAILURE_LIMIT": "many"}, nil, "AUTH_FAILURE_LIMIT"},
		{"bad NATS_LISTEN", map[string]string{"NATS_LISTEN": "4222", "NATS_TOKEN": "t"}, nil, "NATS_LISTEN"},
		{"NATS_LISTEN without credentials", map[string]string{"NATS_LISTEN": "127.0.0.1:4222"}, nil, "NATS_LISTEN=\"127.0.0.1:4222\" opens the embedded NATS server"},
		{"NATS_LISTEN with a user but no password", map[string]string{"NATS_LISTEN": "127.0.0.1:4222", "NATS_USER": "u"}, nil, "NATS_USER and NATS_PASSWORD"},
		{"NATS_LISTEN with a token", map[string]string{"NATS_LISTEN": "127.0.0.1:4222", "NATS_TOKEN": "s3cret"}, func(t *testing.T, c config.Config) {
			if c.NATSListen != "127.0.0.1:4222" || c.NATSToken != "s3cret" {
				t.Errorf("listen %q token %q", c.NATSListen, c.NATSToken)
			}
		}, ""},
		{"NATS_LISTEN with a user and password", map[string]string{"NATS_LISTEN": "127.0.0.1:4222", "NATS_USER": "u", "NATS_PASSWORD": "p"}, func(t *testing.T, c config.Config) {
			if c.NATSUser != "u" || c.NATSPassword != "p" {
				t.Errorf("user %q password %q", c.NATSUser, c.NATSPassword)
			}
		}, ""},
		{"the stream keeps everything by default", nil, func(t *testing.T, c config.Config) {
			if c.StreamMaxAge != 0 || c.StreamMaxBytes != 0 {
				t.Errorf("STREAM_MAX_AGE %s, STREAM_MAX_BYTES %d; want no limits", c.StreamMaxAge, c.StreamMaxBytes)
			}
		}, ""},
		{"stream limits", map[string]string{"STREAM_MAX_AGE": "2160h", "STREAM_MAX_BYTES": "20GiB"}, func(t *testing.T, c config.Config) {
			if l := c.StreamLimits(); l.MaxAge != 90*24*time.Hour || l.MaxBytes != 20<<30 {
				t.Errorf("limits %+v", l)
			}
		}, ""},
		{"stream limits written as 0", map[string]string{"STREAM_MAX_AGE": "0", "STREAM_MAX_BYTES": "0"}, func(t *testing.T, c config.Config) {
			if c.StreamMaxAge != 0 || c.StreamMaxBytes != 0 {
				t.Errorf("STREAM_MAX_AGE %s, STREAM_MAX_BYTES %d", c.StreamMaxAge, c.StreamMaxBytes)
			}
		}, ""},
		{"STREAM_MAX_BYTES in plain bytes and short units", map[string]string{"STREAM_MAX_BYTES": "3G"}, func(t *testing.T, c config.Config) {
			if c.StreamMaxBytes != 3<<30 {
				t.Errorf("STREAM_MAX_BYTES %d", c.StreamMaxBytes)
			}
		}, ""},
		{"STREAM_MAX_AGE below the duplicate window", map[string]string{"STREAM_MAX_AGE": "10m"}, nil, "STREAM_MAX_AGE"},
		{"STREAM_MAX_AGE not a duration", map[string]string{"STREAM_MAX_AGE": "90 days"}, nil, "STREAM_MAX_AGE"},
		{"STREAM_MAX_BYTES too small to be meant", map[string]string{"STREAM_MAX_BYTES": "100"}, nil, "STREAM_MAX_BYTES"},
		{"STREAM_MAX_BYTES not a size", map[string]string{"STREAM_MAX_BYTES": "lots"}, nil, "STREAM_MAX_BYTES"},
		{"STREAM_MAX_BYTES negative", map[string]string{"STREAM_MAX_BYTES": "-1GiB"}, nil, "STREAM_MAX_BYTES"},
		{"a token and a user", map[string]string{"NATS_TOKEN": "t", "NATS_USER": "u", "NATS_PASSWORD": "p"}, nil, "not both"},
		{"a cluster needs no NATS_LISTEN credentials", map[string]string{"NATS_URL": "nats://a:4222"}, func(t *testing.T, c config.Config) {
			if c.NATSToken != "" || c.NATSUser != "" {
				t.Errorf("token %q user %q", c.NATSToken, c.NATSUser)
			}
		}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, ok := load(t, tc.env, tc.wantErr)
			if !ok {
				return
			}
			tc.check(t, c)
		})
	}
}

func TestLoadReportsEveryBadVariable(t *testing.T) {
	_, err := config.Load(config.FromMap(map[string]string{"MAX_ATTEMPTS": "x", "STAGE_TIMEOUT": "y"}))
	if err == nil || !strings.Contains(err.Error(), "MAX_ATTEMPTS") || !strings.Contains(err.Error(), "STAGE_TIMEOUT") {
		t.Fatalf("err = %v", err)
	}
}
