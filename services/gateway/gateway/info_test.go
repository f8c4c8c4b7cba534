package gateway_test

import (
	"net/http"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/butakero/butakero/platform/runtime/config"
)

// TestInfo: GET /v1/info reports this machine's yt-dlp and ffmpeg, the
// profile and the features each configuration turns on, and names no
// secret of it.
func TestInfo(t *testing.T) {
	ytdlp, err := exec.Command("yt-dlp", "--version").Output()
	if err != nil {
		t.Fatalf("yt-dlp --version: %v (make test installs yt-dlp)", err)
	}
	cases := []struct {
		name         string
		cfg          config.Config
		header       map[string]string
		wantProfile  string // nats/projections/blobs/replicas
		wantFeatures []string
	}{
		{"embedded defaults", config.Config{StreamReplicas: 1},
			nil, "embedded/kv/object_store/1", []string{}},
		{"cluster in the AWS profile with everything on",
			config.Config{
				NATSURL: "tls://nats-1:4222", StreamReplicas: 1, NATSUser: "svc", NATSPassword: "pw-secret",
				BucketName: "audio", SongsTable: "songs", OperationsTable: "ops", AWSAutoCreate: true,
				APIKeys: []string{"key-secret"}, RateLimit: 120, AllowedMediaHosts: []string{"cdn.example.com"},
				AllowedOrigins: []string{"https://bot.example"}, YouTubeAPIKey: "yt-secret",
				YTDLPCookiesFile: "/run/cookies.txt", YTDLPProxy: "socks5://proxy-secret:1080",
			},
			map[string]string{"X-API-Key": "key-secret"}, "cluster/dynamodb/s3/1",
			[]string{"api_keys", "aws_auto_create", "cors", "direct_urls", "nats_auth", "nats_tls", "rate_limit", "youtube_data_api", "ytdlp_cookies", "ytdlp_proxy"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := startWith(t, tc.cfg)
			r := h.do(t, http.MethodGet, "/v1/info", tc.header)
			var info struct {
				Versions struct {
					Butakero string `json:"butakero"`
					YTDLP    struct {
						Version  string `json:"version"`
						Released string `json:"released"`
						AgeDays  *int   `json:"age_days"`
						Stale    *bool  `json:"stale"`
					} `json:"yt_dlp"`
					FFmpeg struct {
						Version string `json:"version"`
					} `json:"ffmpeg"`
				} `json:"versions"`
				Profile struct {
					NATS           string `json:"nats"`
					Projections    string `json:"projections"`
					Blobs          string `json:"blobs"`
					StreamReplicas int    `json:"stream_replicas"`
				} `json:"profile"`
				Features []string `json:"features"`
			}
			r.decode(t, http.StatusOK, &info)
			v := info.Versions
			if v.Butakero == "" || v.YTDLP.Version != strings.TrimSpace(string(ytdlp)) || v.YTDLP.Released == "" ||
				v.YTDLP.AgeDays == nil || v.YTDLP.Stale == nil || v.FFmpeg.Version == "" {
				t.Errorf("versions %+v (yt-dlp says %q)", v, ytdlp)
			}
			p := info.Profile
			if got := strings.Join([]string{p.NATS, p.Projections, p.Blobs, strconv.Itoa(p.StreamReplicas)}, "/"); got != tc.wantProfile {
				t.Errorf("profile %s, want %s", got, tc.wantProfile)
			}
			if info.Features == nil || !slices.Equal(info.Features, tc.wantFeatures) {
				t.Errorf("features %q, want %q", info.Features, tc.wantFeatures)
			}
			for _, secret := range []string{"secret", "nats-1", "cdn.example.com", "cookies.txt"} {
				if strings.Contains(string(r.body), secret) {
					t.Errorf("GET /v1/info shows %q: %s", secret, r.body)
				}
			}
		})
	}
}

// TestInfoNeedsTheKey: /v1/info is a /v1 route like the others.
func TestInfoNeedsTheKey(t *testing.T) {
	h := start(t, "k1")
	wantError(t, h.do(t, http.MethodGet, "/v1/info", nil), http.StatusUnauthorized, "unauthorized")
}
