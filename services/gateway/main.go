// Command gateway runs Butakero's HTTP gateway alone against the NATS
// cluster at NATS_URL, as it runs in a container.
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
	"github.com/butakero/butakero/platform/natsconn"
	"github.com/butakero/butakero/platform/objstore"
	"github.com/butakero/butakero/services/gateway/gateway"
	"github.com/nats-io/nats.go/jetstream"
)

func main() {
	cfg, err := config.Load(os.LookupEnv)
	if err != nil {
		fmt.Fprintf(os.Stderr, "gateway: configuration: %v\n", err)
		os.Exit(2)
	}
	log := logging.New(os.Stderr, cfg.LogLevel, cfg.LogFormat).With("service", "gateway")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, log); err != nil {
		log.Error("gateway failed", "error", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	nc, err := natsconn.Connect(cfg.NATSURL, "butakero-gateway", log)
	if err != nil {
		return err
	}
	// Deferred, so it runs after Run has stopped taking requests.
	defer natsconn.Drain(nc, cfg.ShutdownGrace, log)
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
	blobs, err := objstore.Open(ctx, js, cfg.StreamReplicas)
	if err != nil {
		return err
	}
	return gateway.Run(ctx, gateway.Deps{
		NC:        nc,
		JS:        js,
		Publisher: events.NewPublisher(js),
		Store:     store,
		Blobs:     blobs,
		Config:    cfg,
		Log:       log,
	})
}
