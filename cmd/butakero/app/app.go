// Package app wires Butakero's services into one process: the all-in-one.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/runtime/config"
	"github.com/butakero/butakero/platform/runtime/membudget"
	"github.com/butakero/butakero/platform/runtime/metrics"
	"github.com/butakero/butakero/platform/runtime/natsconn"
	"github.com/butakero/butakero/platform/runtime/natsembed"
	"github.com/butakero/butakero/platform/runtime/standalone"
	"github.com/butakero/butakero/platform/runtime/versions"
	"github.com/butakero/butakero/platform/store"
	"github.com/butakero/butakero/services/encoder/encoder"
	"github.com/butakero/butakero/services/fetcher/fetcher"
	"github.com/butakero/butakero/services/gateway/gateway"
	"github.com/butakero/butakero/services/notifier/notifier"
	"github.com/butakero/butakero/services/recorder/recorder"
	"github.com/butakero/butakero/services/resolver/resolver"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/run"
)

// Main is one all-in-one process.
type Main struct {
	Config config.Config
	Log    *slog.Logger
	// Listener, when set, is where the gateway serves instead of
	// Config.HTTPAddr (tests pass one on 127.0.0.1:0).
	Listener net.Listener
	// Ready, when set, is closed once every service runs.
	Ready chan struct{}
}

// Run starts everything and blocks until ctx is cancelled or a component
// fails; the first failure stops all. Shutdown goes in order: the gateway
// stops taking requests, the consumers finish or release their in-flight
// work, the NATS connection drains, and the embedded server (if any) stops
// after flushing its store. Told to stop while it is still starting (a
// Ctrl-C right after the start), it returns nil: what was starting ends
// with ctx's error, which is no failure.
func (m *Main) Run(ctx context.Context) (err error) {
	cfg, log := m.Config, m.Log
	defer func() {
		if standalone.Stopped(ctx, err) {
			log.Info("stopped while starting", "error", err)
			err = nil
		}
	}()
	// Logged once probed, in the background; the gateway answers the same
	// report on /v1/info.
	prober := versions.Start(log)
	defer prober.Stop()

	nc, js, closeNATS, err := m.connect()
	if err != nil {
		return err
	}
	defer closeNATS()
	setup, cancel := context.WithTimeout(ctx, standalone.SetupTimeout)
	defer cancel()
	if _, err := events.EnsureStream(setup, js, cfg.StreamReplicas, cfg.StreamLimits()); err != nil {
		return err
	}
	// JetStream or AWS, as the configuration selects (package store).
	projections, projWhere, err := store.Projections(setup, cfg, js)
	if err != nil {
		return err
	}
	searchCache, err := store.Cache(setup, cfg, js)
	if err != nil {
		return err
	}
	blobs, blobWhere, err := store.Blobs(setup, cfg, js)
	if err != nil {
		return err
	}
	log.Info("stores opened", "projections", projWhere, "blobs", blobWhere)
	pub := events.NewPublisher(js)
	// One metrics registry for the process, served by the gateway's /metrics.
	reg := metrics.New(metrics.NewRegistry())
	reg.WatchVersions(prober)

	var g run.Group
	add := func(name string, fn func(context.Context) error) {
		cctx, cancel := context.WithCancel(ctx)
		g.Add(func() error {
			if err := fn(cctx); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			return nil
		}, func(error) { cancel() })
	}
	// One budget for the fetcher, the encoder and the gateway's follows of
	// songs not yet stored: the limit is on while any of them moves a song,
	// and off once none does.
	memory := membudget.New(cfg.EncodeMemoryBudget)
	add("gateway", func(ctx context.Context) error {
		return gateway.Run(ctx, gateway.Deps{NC: nc, JS: js, Publisher: pub, Store: projections, Blobs: blobs, Metrics: reg, Config: cfg, Log: log.With("service", "gateway"), Listener: m.Listener, Versions: prober, Memory: memory})
	})
	add("resolver", func(ctx context.Context) error {
		return resolver.Run(ctx, resolver.Deps{JS: js, Publisher: pub, Cache: searchCache, Metrics: reg, Config: cfg, Log: log.With("service", "resolver")})
	})
	add("fetcher", func(ctx context.Context) error {
		return fetcher.Run(ctx, fetcher.Deps{NC: nc, JS: js, Publisher: pub, Blobs: blobs, Metrics: reg, Config: cfg, Log: log.With("service", "fetcher"), Memory: memory})
	})
	add("encoder", func(ctx context.Context) error {
		return encoder.Run(ctx, encoder.Deps{NC: nc, JS: js, Blobs: blobs, Metrics: reg, Config: cfg, Log: log.With("service", "encoder"), Memory: memory})
	})
	add("recorder", func(ctx context.Context) error {
		return recorder.Run(ctx, recorder.Deps{JS: js, Store: projections, Config: cfg, Metrics: reg, Log: log.With("service", "recorder")})
	})
	add("notifier", func(ctx context.Context) error {
		return notifier.Run(ctx, notifier.Deps{JS: js, Metrics: reg, Config: cfg, Log: log.With("service", "notifier")})
	})
	// Stops the group when the process is told to.
	stop := make(chan struct{})
	g.Add(func() error {
		if m.Ready != nil {
			close(m.Ready)
		}
		select {
		case <-ctx.Done():
		case <-stop:
		}
		return nil
	}, func(error) { close(stop) })

	log.Info("butakero running", "http_addr", cfg.HTTPAddr, "embedded", cfg.Embedded())
	err = g.Run()
	log.Info("butakero stopped", "error", err)
	return err
}

// connect starts the embedded server (without NATS_URL) or dials the
// cluster, and returns the connection, its JetStream and what closes
// them: drain the connection, then stop the embedded server, which
// flushes its store.
func (m *Main) connect() (*nats.Conn, jetstream.JetStream, func(), error) {
	nc, closeNATS, err := m.dial()
	if err != nil {
		return nil, nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		closeNATS()
		return nil, nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	return nc, js, closeNATS, nil
}

// dial is connect's connection and what closes it.
func (m *Main) dial() (*nats.Conn, func(), error) {
	cfg, log := m.Config, m.Log
	if !cfg.Embedded() {
		nc, err := natsconn.Connect(cfg, "butakero", log)
		if err != nil {
			return nil, nil, err
		}
		return nc, func() { natsconn.Drain(nc, 10*time.Second, log) }, nil
	}
	dir := filepath.Join(cfg.DataDir, "jetstream")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("data dir: %w", err)
	}
	// With NATS_LISTEN, config.Load has made sure there are credentials.
	srv, err := natsembed.Start(natsembed.Options{StoreDir: dir, Listen: cfg.NATSListen, Auth: natsconn.AuthOf(cfg)})
	if err != nil {
		return nil, nil, err
	}
	log.Info("embedded JetStream started", "store_dir", dir, "client_url", srv.ClientURL())
	nc, err := srv.Connect("butakero")
	if err != nil {
		srv.Shutdown()
		return nil, nil, err
	}
	return nc, func() { natsconn.Drain(nc, 10*time.Second, log); srv.Shutdown() }, nil
}
