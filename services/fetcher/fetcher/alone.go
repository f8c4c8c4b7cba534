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
	setup, cancel := context.WithTimeout(ctx, standalone.SetupTimeout)
	blobs, where, err := store.Blobs(setup, env.Config, env.JS)
	cancel()
	if err != nil {
		return err
	}
	env.Log.Info("stores opened", "blobs", where)
	return Run(ctx, Deps{NC: env.NC, JS: env.JS, Blobs: blobs, Metrics: env.Metrics, Config: env.Config, Log: env.Log})
}
