// Command gateway runs the HTTP gateway alone against the NATS cluster at
// NATS_URL, as it runs in a container behind a load balancer.
package main

import (
	"context"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/runtime/standalone"
	"github.com/butakero/butakero/platform/store"
	"github.com/butakero/butakero/services/gateway/gateway"
)

func main() {
	standalone.Main("gateway", func(ctx context.Context, env standalone.Env) error {
		projections, _, err := store.Projections(ctx, env.Config, env.JS)
		if err != nil {
			return err
		}
		blobs, _, err := store.Blobs(ctx, env.Config, env.JS)
		if err != nil {
			return err
		}
		return gateway.Run(ctx, gateway.Deps{
			NC: env.NC, JS: env.JS, Publisher: events.NewPublisher(env.JS),
			Store: projections, Blobs: blobs, Metrics: env.Metrics, Config: env.Config, Log: env.Log,
		})
	})
}
