package gateway

import (
	"context"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/standalone"
)

// RunAlone runs the HTTP gateway alone against the NATS cluster of env, as
// it runs in a container behind a load balancer. services/gateway's main
// and `butakero gateway` both call it through standalone.
func RunAlone(ctx context.Context, env standalone.Env) error {
	stores, err := standalone.OpenStores(ctx, env.Config, env.JS)
	if err != nil {
		return err
	}
	return Run(ctx, Deps{
		NC: env.NC, JS: env.JS, Publisher: events.NewPublisher(env.JS),
		Store: stores.Projections, Blobs: stores.Blobs, Metrics: env.Metrics, Config: env.Config, Log: env.Log,
		Versions: env.Versions,
	})
}
