// Command butakero is the all-in-one: with no NATS_URL it starts an embedded
// JetStream server under DATA_DIR and runs the five services and the gateway
// in one process; with NATS_URL it runs the same services against that
// cluster. `butakero <service>` runs one service alone and `butakero
// nats-server` a NATS node, so that one image runs every container of the
// production shape.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/butakero/butakero/cmd/butakero/app"
	"github.com/butakero/butakero/platform/runtime/config"
	"github.com/butakero/butakero/platform/runtime/logging"
	"github.com/butakero/butakero/platform/runtime/standalone"
	"github.com/butakero/butakero/platform/runtime/tracing"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "butakero:", err)
		os.Exit(1)
	}
}

const usage = `usage: butakero [command]

commands:
  serve     run the services and the gateway (the default)
  gateway, resolver, fetcher, encoder, recorder, notifier
            run that one service alone against NATS_URL (as go run ./services/<name>)
  nats-server [options]
            run nats-server (the version embedded), with nats-server's own options
  healthcheck [URL]
            exit 0 when URL, else this container's /healthz (HTTP_ADDR, then METRICS_ADDR), answers 200
  version [-check]
            Butakero's, yt-dlp's and ffmpeg's versions; -check fails on a yt-dlp over 90 days old
  replay    rebuild the operation and song projections from the event stream
  get       request a song from a running server, show its progress, write its .dca
            (butakero get [-o file.dca] [-server URL] [-api-key KEY] "<title or URL>")
  status    show an operation of a running server (butakero status <operation id>)
  help      this text

The environment configures serve and replay; see README.md. get and status
need only BUTAKERO_URL (default http://localhost:8080) and BUTAKERO_API_KEY.
`

func run(ctx context.Context, args []string) error {
	// The client commands talk to a server over HTTP: no server config.
	// The components read the environment themselves, as their own mains do.
	if len(args) > 0 {
		switch args[0] {
		case "get":
			return cmdGet(ctx, args[1:], osCLIEnv())
		case "status":
			return cmdStatus(ctx, args[1:], osCLIEnv())
		case "nats-server":
			return natsServer(args[1:])
		case "healthcheck":
			return healthcheck(ctx, args[1:], os.LookupEnv)
		case "version":
			return cmdVersion(ctx, args[1:], os.Stdout)
		}
		if run, ok := components[args[0]]; ok {
			if len(args) > 1 {
				return fmt.Errorf("%s takes no arguments; the environment configures it", args[0])
			}
			return standalone.Run(ctx, args[0], run)
		}
	}
	cfg, err := config.Load(os.LookupEnv)
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	log := logging.New(os.Stderr, cfg.LogLevel, cfg.LogFormat)
	// Libraries that log through the default logger (jonas747/dca) get ours.
	slog.SetDefault(log)
	switch {
	case len(args) == 0 || args[0] == "serve":
		// Spans go out over OTLP when OTEL_* names a collector; the
		// buffered ones are flushed once every component has stopped.
		stopTracing, err := tracing.Start(cfg.Tracing, "butakero", log)
		if err != nil {
			return fmt.Errorf("tracing: %w", err)
		}
		defer stopTracing()
		return (&app.Main{Config: cfg, Log: log}).Run(ctx)
	case args[0] == "replay":
		return (&app.Main{Config: cfg, Log: log}).Replay(ctx, os.Stdout)
	case args[0] == "help" || args[0] == "-h" || args[0] == "--help":
		fmt.Print(usage)
		return nil
	default:
		return fmt.Errorf("unknown command %q (try: butakero help)", args[0])
	}
}
