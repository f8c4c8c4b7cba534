package encoder

import (
	"context"

	"github.com/butakero/butakero/platform/runtime/standalone"
	"github.com/butakero/butakero/platform/store"
)

// RunAlone runs the encode stage alone against the NATS cluster of env, as
// it runs in a container: audio.downloaded in, a DCA in the blob store and
// dca.encoded plus upload.done out. services/encoder's main and
// `butakero encoder` both call it through standalone.
func RunAlone(ctx context.Context, env standalone.Env) error {
	blobs, err := standalone.Open(ctx, env, "blobs", store.Blobs)
	if err != nil {
		return err
	}
	return Run(ctx, Deps{NC: env.NC, JS: env.JS, Blobs: blobs, Metrics: env.Metrics, Config: env.Config, Log: env.Log})
}
