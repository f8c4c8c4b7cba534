package standalone

import (
	"context"
	"fmt"
	"io"

	"github.com/butakero/butakero/platform/config"
	"github.com/butakero/butakero/platform/dynamostore"
	"github.com/butakero/butakero/platform/kvstore"
	"github.com/butakero/butakero/platform/objstore"
	"github.com/butakero/butakero/platform/projection"
	"github.com/butakero/butakero/platform/s3blob"
	"github.com/nats-io/nats.go/jetstream"
)

// Projections is what every service may need of the projection store: the
// recorder's writes, the gateway's reads and catalog search, Ping for
// /readyz. Both *kvstore.Store and *dynamostore.Store are one.
type Projections interface {
	Operation(ctx context.Context, id string) (projection.Operation, error)
	PutOperation(ctx context.Context, op projection.Operation) error
	Song(ctx context.Context, id string) (projection.Song, error)
	PutSong(ctx context.Context, song projection.Song) error
	SearchSongs(ctx context.Context, q string, limit int, cursor string) ([]projection.Song, string, error)
	Ping(ctx context.Context) error
}

// Blobs is what every service may need of the blob store. Both
// *objstore.Store and *s3blob.Store are one.
type Blobs interface {
	Put(ctx context.Context, key, contentType string, meta map[string]string, r io.Reader) (objstore.Info, error)
	Open(ctx context.Context, key string) (io.ReadCloser, objstore.Info, error)
	OpenRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, objstore.Info, error)
	Stat(ctx context.Context, key string) (objstore.Info, error)
	Delete(ctx context.Context, key string) error
	List(ctx context.Context, prefix string) ([]objstore.Info, error)
	Ping(ctx context.Context) error
	Location(key string) string
}

// Cache is the resolver's search and metadata cache. Both *kvstore.Cache
// and *dynamostore.Cache are one.
type Cache interface {
	QueryVideo(ctx context.Context, q string) (string, error)
	PutQueryVideo(ctx context.Context, q, id string) error
	Video(ctx context.Context, id string) (projection.Video, error)
	PutVideo(ctx context.Context, v projection.Video) error
	Ping(ctx context.Context) error
}

var (
	_ Projections = (*kvstore.Store)(nil)
	_ Projections = (*dynamostore.Store)(nil)
	_ Blobs       = (*objstore.Store)(nil)
	_ Blobs       = (*s3blob.Store)(nil)
	_ Cache       = (*kvstore.Cache)(nil)
	_ Cache       = (*dynamostore.Cache)(nil)
)

// Stores are the stores the configuration selects, as CONTRACT.md says:
// BUCKET_NAME set puts blobs in S3, both DynamoDB table names set put the
// projections (and the resolver's cache) in DynamoDB; otherwise each lives
// in JetStream (KV buckets, the Object Store).
type Stores struct {
	Projections Projections
	Blobs       Blobs
	Cache       Cache
	// Where names the selection for the start-up log, e.g.
	// "projections=dynamodb blobs=s3".
	Where string
}

// OpenStores opens the stores cfg selects. js is used for those that live
// in JetStream, whose buckets it creates when missing; AWS_AUTO_CREATE
// creates a missing bucket and tables. Without it, an AWS store sends no
// request at start: a missing table or bucket, or wrong credentials, show
// on /readyz (Ping) instead of stopping the process.
func OpenStores(ctx context.Context, cfg config.Config, js jetstream.JetStream) (Stores, error) {
	var st Stores
	projWhere, blobWhere := "jetstream-kv", "jetstream-objects"
	if cfg.ProjectionsInDynamoDB() {
		ds, err := dynamostore.Open(ctx, cfg)
		if err != nil {
			return Stores{}, err
		}
		cache, err := ds.Cache(cfg.SearchCacheTTL)
		if err != nil {
			return Stores{}, err
		}
		st.Projections, st.Cache, projWhere = ds, cache, "dynamodb"
	} else {
		ks, err := kvstore.New(ctx, js, kvstore.Options{Replicas: cfg.StreamReplicas, OperationTTL: cfg.OperationTTL})
		if err != nil {
			return Stores{}, err
		}
		cache, err := kvstore.OpenCache(ctx, js, cfg.StreamReplicas, cfg.SearchCacheTTL)
		if err != nil {
			return Stores{}, err
		}
		st.Projections, st.Cache = ks, cache
	}
	if cfg.BlobsInS3() {
		bs, err := s3blob.Open(ctx, cfg)
		if err != nil {
			return Stores{}, err
		}
		st.Blobs, blobWhere = bs, "s3"
	} else {
		bs, err := objstore.Open(ctx, js, cfg.StreamReplicas)
		if err != nil {
			return Stores{}, err
		}
		st.Blobs = bs
	}
	st.Where = fmt.Sprintf("projections=%s blobs=%s", projWhere, blobWhere)
	return st, nil
}
