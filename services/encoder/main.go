// Command encoder runs the encode stage alone against the NATS cluster at
// NATS_URL, as it runs in a container: audio.downloaded in, a DCA in the
// blob store and dca.encoded plus upload.done out.
package main

import (
	"context"

	"github.com/butakero/butakero/platform/runtime/standalone"
	"github.com/butakero/butakero/platform/store"
	"github.com/butakero/butakero/services/encoder/encoder"
)

func main() {
	standalone.Main("encoder", func(ctx context.Context, env standalone.Env) error {
		blobs, _, err := store.Blobs(ctx, env.Config, env.JS)
		if err != nil {
			return err
		}
		return encoder.Run(ctx, encoder.Deps{NC: env.NC, JS: env.JS, Blobs: blobs, Metrics: env.Metrics, Config: env.Config, Log: env.Log})
	})
}
