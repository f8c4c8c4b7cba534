// Package store opens the stores the configuration selects, one opener per
// port, so that each component opens only what it uses. The adapters live
// below it, one package per store they wrap: objstore (the JetStream
// Object Store) and s3blob (S3) implement blob.Store; kvstore (JetStream
// KV) and dynamostore (DynamoDB) implement projection.Store and
// searchcache.Cache. A new store goes beside them, passes its port's
// contract suite (platform/testkit), and is selected here.
//
// The selection is the README's ("The AWS profile"): BUCKET_NAME set puts
// blobs in S3, both DynamoDB table names set put the projections and the
// resolver's cache in DynamoDB; otherwise each lives in JetStream. js is used for those that
// live in JetStream, whose buckets an opener creates when missing;
// AWS_AUTO_CREATE creates a missing bucket and tables. Without it an AWS
// store sends no request at start: a missing table or bucket, or wrong
// credentials, show on /readyz (Ping) instead of stopping the process.
package store

import (
	"context"

	"github.com/butakero/butakero/platform/blob"
	"github.com/butakero/butakero/platform/projection"
	"github.com/butakero/butakero/platform/runtime/config"
	"github.com/butakero/butakero/platform/searchcache"
	"github.com/butakero/butakero/platform/store/dynamostore"
	"github.com/butakero/butakero/platform/store/kvstore"
	"github.com/butakero/butakero/platform/store/objstore"
	"github.com/butakero/butakero/platform/store/s3blob"
	"github.com/nats-io/nats.go/jetstream"
)

var (
	_ projection.Store  = (*kvstore.Store)(nil)
	_ projection.Store  = (*dynamostore.Store)(nil)
	_ searchcache.Cache = (*kvstore.Cache)(nil)
	_ searchcache.Cache = (*dynamostore.Cache)(nil)
	_ blob.Store        = (*objstore.Store)(nil)
	_ blob.Store        = (*s3blob.Store)(nil)
)

// Projections opens the projection store cfg selects and names it for the
// start-up log ("jetstream-kv", "dynamodb").
func Projections(ctx context.Context, cfg config.Config, js jetstream.JetStream) (projection.Store, string, error) {
	if cfg.ProjectionsInDynamoDB() {
		ds, err := dynamostore.Open(ctx, cfg)
		if err != nil {
			return nil, "", err
		}
		return ds, "dynamodb", nil
	}
	ks, err := kvstore.New(ctx, js, kvstore.Options{Replicas: cfg.StreamReplicas, OperationTTL: cfg.OperationTTL})
	if err != nil {
		return nil, "", err
	}
	return ks, "jetstream-kv", nil
}

// Cache opens the resolver's cache beside the projections cfg selects.
func Cache(ctx context.Context, cfg config.Config, js jetstream.JetStream) (searchcache.Cache, error) {
	if cfg.ProjectionsInDynamoDB() {
		ds, err := dynamostore.Open(ctx, cfg)
		if err != nil {
			return nil, err
		}
		return ds.Cache(cfg.SearchCacheTTL)
	}
	return kvstore.OpenCache(ctx, js, cfg.StreamReplicas, cfg.SearchCacheTTL)
}

// Blobs opens the blob store cfg selects and names it for the start-up log
// ("jetstream-objects", "s3").
func Blobs(ctx context.Context, cfg config.Config, js jetstream.JetStream) (blob.Store, string, error) {
	if cfg.BlobsInS3() {
		bs, err := s3blob.Open(ctx, cfg)
		if err != nil {
			return nil, "", err
		}
		return bs, "s3", nil
	}
	bs, err := objstore.Open(ctx, js, cfg.StreamReplicas)
	if err != nil {
		return nil, "", err
	}
	return bs, "jetstream-objects", nil
}
