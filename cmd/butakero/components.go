package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/butakero/butakero/platform/runtime/config"
	"github.com/butakero/butakero/platform/runtime/standalone"
	"github.com/butakero/butakero/services/encoder/encoder"
	"github.com/butakero/butakero/services/fetcher/fetcher"
	"github.com/butakero/butakero/services/gateway/gateway"
	"github.com/butakero/butakero/services/notifier/notifier"
	"github.com/butakero/butakero/services/recorder/recorder"
	"github.com/butakero/butakero/services/resolver/resolver"
	"github.com/nats-io/nats-server/v2/server"
)

// components are the services `butakero <name>` runs alone against
// NATS_URL, exactly as `go run ./services/<name>` does: one image holds one
// binary, and each container (each ECS service) runs one of them.
var components = map[string]func(context.Context, standalone.Env) error{
	"gateway":  gateway.RunAlone,
	"resolver": resolver.RunAlone,
	"fetcher":  fetcher.RunAlone,
	"encoder":  encoder.RunAlone,
	"recorder": recorder.RunAlone,
	"notifier": notifier.RunAlone,
}

// natsServer is `butakero nats-server [flags]`: nats-server itself, the
// version the all-in-one embeds, with nats-server's own flags and
// configuration file (-js, -n, --cluster, --routes, -c …), so that the
// image can run the cluster's nodes too. It returns only when the server
// stops; nats-server handles SIGINT and SIGTERM itself.
func natsServer(args []string) error {
	const exe = "nats-server"
	fs := flag.NewFlagSet(exe, flag.ExitOnError)
	fs.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: butakero nats-server [nats-server options]; see nats-server --help")
		os.Exit(2)
	}
	opts, err := server.ConfigureOptions(fs, args, server.PrintServerAndExit, fs.Usage, server.PrintTLSHelpAndDie)
	if err != nil {
		return fmt.Errorf("%s: %w", exe, err)
	}
	if opts.CheckConfig {
		fmt.Fprintf(os.Stderr, "%s: configuration file %s is valid\n", exe, opts.ConfigFile)
		return nil
	}
	// Passwords and tokens given as flags stay out of /varz.
	server.RedactArgs(os.Args)
	s, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("%s: %w", exe, err)
	}
	s.ConfigureLogger()
	if err := server.Run(s); err != nil {
		return fmt.Errorf("%s: %w", exe, err)
	}
	s.WaitForShutdown()
	return nil
}

// healthcheckTimeout bounds one health check request.
const healthcheckTimeout = 3 * time.Second

// healthcheck is `butakero healthcheck [URL]`, the image's HEALTHCHECK: it
// exits 0 when a GET of URL answers 200. Without URL it asks /healthz of
// this container's own process on 127.0.0.1: at HTTP_ADDR's port (the
// gateway and the all-in-one) and, when nothing listens there, at
// METRICS_ADDR's (a service alone). Containers of nats-server nodes pass
// the monitoring URL (http://127.0.0.1:8222/healthz).
func healthcheck(ctx context.Context, args []string, lookup config.Lookup) error {
	ctx, cancel := context.WithTimeout(ctx, healthcheckTimeout)
	defer cancel()
	var urls []string
	switch len(args) {
	case 0:
		cfg, err := config.Load(lookup)
		if err != nil {
			return fmt.Errorf("configuration:\n%w", err)
		}
		for _, addr := range []string{cfg.HTTPAddr, cfg.MetricsAddr} {
			if addr == "" {
				continue
			}
			_, port, err := net.SplitHostPort(addr)
			if err != nil {
				return fmt.Errorf("%q: %w", addr, err)
			}
			urls = append(urls, "http://"+net.JoinHostPort("127.0.0.1", port)+"/healthz")
		}
	case 1:
		urls = args
	default:
		return errors.New("usage: butakero healthcheck [URL]")
	}
	client := &http.Client{Timeout: healthcheckTimeout}
	var errs []error
	for _, u := range urls {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return nil
		}
		errs = append(errs, fmt.Errorf("GET %s: %s", u, resp.Status))
	}
	if len(errs) == 0 {
		return errors.New("nothing to check: HTTP_ADDR and METRICS_ADDR are empty")
	}
	return fmt.Errorf("unhealthy: %w", errors.Join(errs...))
}
