package resolver

import (
	"context"

	"github.com/butakero/butakero/platform/runtime/standalone"
	"github.com/butakero/butakero/platform/store"
)

// RunAlone runs the resolve stage alone against the NATS cluster of env, as
// it runs in a container: song.requested in, video.resolved out.
// services/resolver's main and `butakero resolver` both call it through
// standalone.
func RunAlone(ctx context.Context, env standalone.Env) error {
	// The search cache lives where the configuration puts the
	// projections: JetStream KV, or DynamoDB.
	setup, cancel := context.WithTimeout(ctx, standalone.SetupTimeout)
	cache, err := store.Cache(setup, env.Config, env.JS)
	cancel()
	if err != nil {
		return err
	}
	return Run(ctx, Deps{JS: env.JS, Cache: cache, Metrics: env.Metrics, Config: env.Config, Log: env.Log})
}
