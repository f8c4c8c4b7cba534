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
	setup, cancel := context.WithTimeout(ctx, standalone.SetupTimeout)
	projections, where, err := store.Projections(setup, env.Config, env.JS)
	cancel()
	if err != nil {
		return err
	}
	env.Log.Info("stores opened", "projections", where)
	return Run(ctx, Deps{JS: env.JS, Store: projections, Config: env.Config, Metrics: env.Metrics, Log: env.Log})
}
