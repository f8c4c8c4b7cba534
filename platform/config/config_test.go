package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/butakero/butakero/platform/config"
)

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
		{"bad log format", map[string]string{"LOG_FORMAT": "xml"}, nil, "LOG_FORMAT"},
		{"bad NATS_LISTEN", map[string]string{"NATS_LISTEN": "4222"}, nil, "NATS_LISTEN"},
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
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := config.Load(config.FromMap(tc.env))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
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
