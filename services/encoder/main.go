// Command encoder runs the encode stage alone against NATS_URL, as it runs
// in a container: audio.downloaded in, a DCA in the blob store and
// dca.encoded plus upload.done out.
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
	"github.com/butakero/butakero/platform/logging"
	"github.com/butakero/butakero/platform/objstore"
	"github.com/butakero/butakero/services/encoder/encoder"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "encoder:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := config.Load(os.LookupEnv)
	if err != nil {
		return err
	}
	if cfg.NATSURL == "" {
		return fmt.Errorf("NATS_URL is required to run the encoder alone")
	}
	log := logging.New(os.Stderr, cfg.LogLevel, cfg.LogFormat).With("service", "encoder")
	slog.SetDefault(log)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	nc, err := nats.Connect(cfg.NATSURL, nats.Name("butakero-encoder"), nats.MaxReconnects(-1))
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
	blobs, err := objstore.Open(ctx, js, cfg.StreamReplicas)
	if err != nil {
		return err
	}
	return encoder.Run(ctx, encoder.Deps{NC: nc, JS: js, Blobs: blobs, Config: cfg, Log: log})
}
