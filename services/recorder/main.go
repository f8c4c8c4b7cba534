// Command recorder runs the projection recorder alone against NATS_URL, as
// it runs in a container: every event in, the operation and song
// projections in JetStream KV out.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/config"
	"github.com/butakero/butakero/platform/kvstore"
	"github.com/butakero/butakero/platform/logging"
	"github.com/butakero/butakero/services/recorder/recorder"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "recorder:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := config.Load(os.LookupEnv)
	if err != nil {
		return err
	}
	if cfg.NATSURL == "" {
		return fmt.Errorf("NATS_URL is required to run the recorder alone")
	}
	log := logging.New(os.Stderr, cfg.LogLevel, cfg.LogFormat).With("service", "recorder")
	slog.SetDefault(log)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	nc, err := nats.Connect(cfg.NATSURL, nats.Name("butakero-recorder"), nats.MaxReconnects(-1))
	if err != nil {
		return fmt.Errorf("connect to NATS: %w", err)
	}
	defer nc.Drain()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	if _, err := events.EnsureStream(ctx, js, cfg.StreamReplicas); err != nil {
		return err
	}
	store, err := kvstore.Open(ctx, js, cfg.StreamReplicas)
	if err != nil {
		return err
	}
	return recorder.Run(ctx, recorder.Deps{JS: js, Store: store, Config: cfg, Log: log})
}
