package recorder

import (
	"context"

	"github.com/butakero/butakero/platform/runtime/standalone"
	"github.com/butakero/butakero/platform/store"
)

// RunAlone runs the recorder alone against the NATS cluster of env, as it
// runs in a container: every event in, the operation and song projections
// out. services/recorder's main and `butakero recorder` both call it
// through standalone.
func RunAlone(ctx context.Context, env standalone.Env) error {
	projections, err := standalone.Open(ctx, env, "projections", store.Projections)
	if err != nil {
		return err
	}
	return Run(ctx, Deps{JS: env.JS, Store: projections, Config: env.Config, Metrics: env.Metrics, Log: env.Log})
}
