// Command gateway runs the HTTP gateway alone against the NATS cluster at
// NATS_URL, as it runs in a container behind a load balancer.
package main

import (
	"context"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/standalone"
	"github.com/butakero/butakero/services/gateway/gateway"
)

func main() {
	standalone.Main("gateway", func(ctx context.Context, env standalone.Env) error {
		stores, err := standalone.OpenStores(ctx, env.Config, env.JS)
		if err != nil {
			return err
		}
		return gateway.Run(ctx, gateway.Deps{
			NC: env.NC, JS: env.JS, Publisher: events.NewPublisher(env.JS),
			Store: stores.Projections, Blobs: stores.Blobs, Metrics: env.Metrics, Config: env.Config, Log: env.Log,
			Versions: env.Versions,
		})
	})
}
