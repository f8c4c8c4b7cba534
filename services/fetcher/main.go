// Command fetcher runs the fetch stage alone against the NATS cluster at
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
	"github.com/butakero/butakero/platform/objstore"
	"github.com/butakero/butakero/services/fetcher/fetcher"
	"github.com/nats-io/nats.go/jetstream"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "fetcher:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	cfg, err := config.Load(os.LookupEnv)
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	log := logging.New(os.Stderr, cfg.LogLevel, cfg.LogFormat).With("service", "fetcher")
	// natsconn.Connect refuses an empty NATS_URL with a clear message.
	nc, err := natsconn.Connect(cfg.NATSURL, "butakero-fetcher", log)
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
	blobs, err := objstore.Open(setup, js, cfg.StreamReplicas)
	if err != nil {
		return err
	}
	return fetcher.Run(ctx, fetcher.Deps{NC: nc, JS: js, Blobs: blobs, Config: cfg, Log: log})
}
