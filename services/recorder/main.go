// Command recorder runs the recorder alone against the NATS cluster at
// NATS_URL, as it runs in a container: every event in, the operation and
// song projections out.
package main

import (
	"context"

	"github.com/butakero/butakero/platform/runtime/standalone"
	"github.com/butakero/butakero/platform/store"
	"github.com/butakero/butakero/services/recorder/recorder"
)

func main() {
	standalone.Main("recorder", func(ctx context.Context, env standalone.Env) error {
		projections, _, err := store.Projections(ctx, env.Config, env.JS)
		if err != nil {
			return err
		}
		return recorder.Run(ctx, recorder.Deps{JS: env.JS, Store: projections, Config: env.Config, Metrics: env.Metrics, Log: env.Log})
	})
}
