package notifier

import (
	"context"

	"github.com/butakero/butakero/platform/runtime/standalone"
)

// RunAlone runs the notifier alone against the NATS cluster of env, as it
// runs in a container. services/notifier's main and `butakero notifier`
// both call it through standalone.
func RunAlone(ctx context.Context, env standalone.Env) error {
	return Run(ctx, Deps{JS: env.JS, Metrics: env.Metrics, Config: env.Config, Log: env.Log})
}
