package gateway

import (
	"context"
	"fmt"
	"strings"

	"github.com/butakero/butakero/platform/runtime/config"
	"github.com/butakero/butakero/platform/runtime/versions"
	"github.com/gofiber/fiber/v2"
)

// Versions reports the versions of Butakero and of the tools it runs.
// Report may wait for a probe still running, at most until ctx ends.
// *versions.Prober is one; it must be safe for concurrent use.
type Versions interface {
	Report(ctx context.Context) (versions.Report, error)
}

var _ Versions = (*versions.Prober)(nil)

// infoResponse is GET /v1/info's answer.
type infoResponse struct {
	Versions versions.Report `json:"versions"`
	Profile  profile         `json:"profile"`
	// Features lists what the configuration turns on, by name, sorted.
	Features []string `json:"features"`
}

// profile says where this process keeps what.
type profile struct {
	NATS           string `json:"nats"`        // "embedded" or "cluster"
	Projections    string `json:"projections"` // "kv" (JetStream KV) or "dynamodb"
	Blobs          string `json:"blobs"`       // "object_store" (JetStream) or "s3"
	StreamReplicas int    `json:"stream_replicas"`
}

// info handles GET /v1/info: the versions, the profile and the features,
// with no address, key or other secret.
func (s *server) info(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), storeTimeout)
	defer cancel()
	v, err := s.versions.Report(ctx)
	if err != nil {
		return internal(fmt.Errorf("versions: %w", err))
	}
	return c.JSON(infoResponse{Versions: v, Profile: profileOf(s.cfg), Features: featuresOf(s.cfg)})
}

func profileOf(cfg config.Config) profile {
	p := profile{NATS: "cluster", Projections: "kv", Blobs: "object_store", StreamReplicas: cfg.StreamReplicas}
	if cfg.Embedded() {
		p.NATS = "embedded"
	}
	if cfg.ProjectionsInDynamoDB() {
		p.Projections = "dynamodb"
	}
	if cfg.BlobsInS3() {
		p.Blobs = "s3"
	}
	return p
}

// featuresOf names what cfg turns on, in alphabetical order. The names are
// documented in openapi.json's Info schema.
func featuresOf(cfg config.Config) []string {
	f := []string{}
	add := func(on bool, name string) {
		if on {
			f = append(f, name)
		}
	}
	add(len(cfg.APIKeys) > 0, "api_keys")
	add(cfg.AWSAutoCreate && (cfg.BlobsInS3() || cfg.ProjectionsInDynamoDB()), "aws_auto_create")
	add(len(cfg.AllowedOrigins) > 0, "cors")
	add(len(cfg.AllowedMediaHosts) > 0, "direct_urls")
	add(!cfg.Embedded() && (cfg.NATSCreds != "" || cfg.NATSToken != "" || cfg.NATSUser != ""), "nats_auth")
	add(!cfg.Embedded() && (cfg.NATSTLSCA != "" || cfg.NATSTLSCert != "" || strings.Contains(cfg.NATSURL, "tls://")), "nats_tls")
	add(cfg.RateLimit > 0, "rate_limit")
	add(cfg.YouTubeAPIKey != "", "youtube_data_api")
	add(cfg.YTDLPCookiesFile != "", "ytdlp_cookies")
	add(cfg.YTDLPProxy != "", "ytdlp_proxy")
	return f
}
