package gateway

import (
	"context"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/runtime/standalone"
	"github.com/butakero/butakero/platform/store"
)

// RunAlone runs the HTTP gateway alone against the NATS cluster of env, as
// it runs in a container behind a load balancer. services/gateway's main
// and `butakero gateway` both call it through standalone.
func RunAlone(ctx context.Context, env standalone.Env) error {
	projections, err := standalone.Open(ctx, env, "projections", store.Projections)
	if err != nil {
		return err
	}
	blobs, err := standalone.Open(ctx, env, "blobs", store.Blobs)
	if err != nil {
		return err
	}
	return Run(ctx, Deps{
		NC: env.NC, JS: env.JS, Publisher: events.NewPublisher(env.JS),
		Store: projections, Blobs: blobs, Metrics: env.Metrics, Config: env.Config, Log: env.Log,
		Versions: env.Versions,
	})
}
