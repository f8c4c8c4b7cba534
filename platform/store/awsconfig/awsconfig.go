// Package awsconfig builds the AWS SDK configuration of the AWS profile
// (s3blob, dynamostore) from config.Config.
//
// The original service's names come first: REGION, and ACCESS_KEY with
// SECRET_KEY as static credentials. When they are empty the SDK's own chain
// applies (AWS_REGION, AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, shared
// profiles, web identity, ECS task and EC2 instance roles). Endpoints are the
// SDK's business too: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL_DYNAMODB and
// AWS_ENDPOINT_URL are read by the SDK itself when it loads its defaults.
// This package reads no environment variable of its own.
package awsconfig

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	sdkconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/butakero/butakero/platform/runtime/config"
)

// Load returns the SDK configuration for cfg. It fails when no region is
// configured anywhere; missing credentials are found only when a request is
// signed (the stores' Ping reports them).
func Load(ctx context.Context, cfg config.Config) (aws.Config, error) {
	var opts []func(*sdkconfig.LoadOptions) error
	if cfg.Region != "" {
		opts = append(opts, sdkconfig.WithRegion(cfg.Region))
	}
	if cfg.AccessKey != "" || cfg.SecretKey != "" {
		opts = append(opts, sdkconfig.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, "")))
	}
	ac, err := sdkconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("aws: load configuration: %w", err)
	}
	if ac.Region == "" {
		return aws.Config{}, errors.New("aws: no region: set REGION (or the SDK's AWS_REGION)")
	}
	return ac, nil
}

// Static returns an SDK configuration with fixed credentials, region and
// no other source: for tests and tools that name everything themselves.
// Pass the endpoint to the store's own options.
func Static(region, accessKey, secretKey string) aws.Config {
	return aws.Config{
		Region:      region,
		Credentials: aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(accessKey, secretKey, "")),
	}
}

// endpointSource is what the SDK's loaded configuration sources implement
// when they can name a service's endpoint (AWS_ENDPOINT_URL_<SERVICE>, or
// endpoint_url in a shared profile).
type endpointSource interface {
	GetServiceBaseEndpoint(ctx context.Context, sdkID string) (string, bool, error)
}

// CustomEndpoint reports whether ac sends service sdkID ("S3", "DynamoDB")
// somewhere other than AWS's own endpoints: AWS_ENDPOINT_URL_<SERVICE>,
// AWS_ENDPOINT_URL or a profile's endpoint_url. S3 uses path-style
// addressing then, which S3-compatible servers (versitygw, MinIO) expect.
func CustomEndpoint(ctx context.Context, ac aws.Config, sdkID string) bool {
	if ac.BaseEndpoint != nil && *ac.BaseEndpoint != "" {
		return true
	}
	for _, src := range ac.ConfigSources {
		if es, ok := src.(endpointSource); ok {
			if v, found, err := es.GetServiceBaseEndpoint(ctx, sdkID); err == nil && found && v != "" {
				return true
			}
		}
	}
	return false
}
