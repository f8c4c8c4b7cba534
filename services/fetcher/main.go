// Command fetcher runs the fetch stage alone against the NATS cluster at
// NATS_URL, as it runs in a container: video.resolved in, the audio in the
// blob store and audio.downloaded out.
package main

import (
	"context"

	"github.com/butakero/butakero/platform/runtime/standalone"
	"github.com/butakero/butakero/platform/store"
	"github.com/butakero/butakero/services/fetcher/fetcher"
)

func main() {
	standalone.Main("fetcher", func(ctx context.Context, env standalone.Env) error {
		blobs, _, err := store.Blobs(ctx, env.Config, env.JS)
		if err != nil {
			return err
		}
		return fetcher.Run(ctx, fetcher.Deps{NC: env.NC, JS: env.JS, Blobs: blobs, Metrics: env.Metrics, Config: env.Config, Log: env.Log})
	})
}
