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
	setup, cancel := context.WithTimeout(ctx, standalone.SetupTimeout)
	projections, projWhere, err := store.Projections(setup, env.Config, env.JS)
	if err != nil {
		cancel()
		return err
	}
	blobs, blobWhere, err := store.Blobs(setup, env.Config, env.JS)
	cancel()
	if err != nil {
		return err
	}
	env.Log.Info("stores opened", "projections", projWhere, "blobs", blobWhere)
	return Run(ctx, Deps{
		NC: env.NC, JS: env.JS, Publisher: events.NewPublisher(env.JS),
		Store: projections, Blobs: blobs, Metrics: env.Metrics, Config: env.Config, Log: env.Log,
		Versions: env.Versions,
	})
}
