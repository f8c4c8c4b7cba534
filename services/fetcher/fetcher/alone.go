package fetcher

import (
	"context"

	"github.com/butakero/butakero/platform/runtime/standalone"
	"github.com/butakero/butakero/platform/store"
)

// RunAlone runs the fetch stage alone against the NATS cluster of env, as
// it runs in a container: video.resolved in, the audio in the blob store and
// audio.downloaded out. services/fetcher's main and `butakero fetcher` both
// call it through standalone.
func RunAlone(ctx context.Context, env standalone.Env) error {
	blobs, err := standalone.Open(ctx, env, "blobs", store.Blobs)
	if err != nil {
		return err
	}
	return Run(ctx, Deps{NC: env.NC, JS: env.JS, Blobs: blobs, Metrics: env.Metrics, Config: env.Config, Log: env.Log})
}
