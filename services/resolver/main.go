// Command resolver runs the resolve stage alone against the NATS cluster at
// NATS_URL, as it runs in a container: song.requested in, video.resolved out.
package main

import (
	"context"

	"github.com/butakero/butakero/platform/runtime/standalone"
	"github.com/butakero/butakero/platform/store"
	"github.com/butakero/butakero/services/resolver/resolver"
)

func main() {
	standalone.Main("resolver", func(ctx context.Context, env standalone.Env) error {
		// The search cache lives where the configuration puts the
		// projections: JetStream KV, or DynamoDB.
		setup, cancel := context.WithTimeout(ctx, standalone.SetupTimeout)
		cache, err := store.Cache(setup, env.Config, env.JS)
		cancel()
		if err != nil {
			return err
		}
		return resolver.Run(ctx, resolver.Deps{JS: env.JS, Cache: cache, Metrics: env.Metrics, Config: env.Config, Log: env.Log})
	})
}
