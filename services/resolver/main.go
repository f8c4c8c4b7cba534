// Command resolver runs the resolve stage alone against the NATS cluster at
// NATS_URL, as it runs in a container.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/config"
	"github.com/butakero/butakero/platform/logging"
	"github.com/butakero/butakero/platform/natsconn"
	"github.com/butakero/butakero/services/resolver/resolver"
	"github.com/nats-io/nats.go/jetstream"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "resolver:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	cfg, err := config.Load(os.LookupEnv)
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	log := logging.New(os.Stderr, cfg.LogLevel, cfg.LogFormat).With("service", "resolver")
	// natsconn.Connect refuses an empty NATS_URL with a clear message.
	nc, err := natsconn.Connect(cfg.NATSURL, "butakero-resolver", log)
	if err != nil {
		return err
	}
	defer natsconn.Drain(nc, 10*time.Second, log)
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	setup, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := events.EnsureStream(setup, js, cfg.StreamReplicas); err != nil {
		return err
	}
	return resolver.Run(ctx, resolver.Deps{NC: nc, JS: js, Config: cfg, Log: log})
}
