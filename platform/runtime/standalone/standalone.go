// Package standalone is the start-up every service shares when it runs
// alone against NATS_URL, as it does in a container: read the environment
// once, build the logger, connect, make sure the stream exists, run the
// service until SIGINT or SIGTERM, then drain the connection.
package standalone

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/runtime/config"
	"github.com/butakero/butakero/platform/runtime/emf"
	"github.com/butakero/butakero/platform/runtime/logging"
	"github.com/butakero/butakero/platform/runtime/metrics"
	"github.com/butakero/butakero/platform/runtime/natsconn"
	"github.com/butakero/butakero/platform/runtime/tracing"
	"github.com/butakero/butakero/platform/runtime/versions"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Env is what a service's main gets to build its dependencies from.
type Env struct {
	Config config.Config
	Log    *slog.Logger
	NC     *nats.Conn
	JS     jetstream.JetStream
	// Metrics is the process's metrics set. The gateway serves it on its
	// /metrics; every other service serves it on METRICS_ADDR when set.
	Metrics *metrics.Metrics
	// Versions is the start-up probe of Butakero's, yt-dlp's and ffmpeg's
	// versions (logged once known); the gateway answers it on /v1/info.
	Versions *versions.Prober
}

// Stopped reports whether err only says that ctx, a component's run, was
// cancelled: told to stop while it is still starting, what was starting
// ends with ctx's error, and that is no failure. Run and the all-in-one
// return nil for it.
func Stopped(ctx context.Context, err error) bool {
	return err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled)
}

// SetupTimeout bounds each step of a component's start: waiting for
// JetStream to answer and creating the event stream, then opening its
// stores. Opening a store may create it (AWS_AUTO_CREATE), and a new
// DynamoDB table can take up to 2 minutes to become active (dynamostore):
// the bound is for a store or cluster that never answers, so that the
// process exits saying so instead of hanging.
const SetupTimeout = 5 * time.Minute

// Open opens one of a service's stores with open (store.Blobs,
// store.Projections), within SetupTimeout, and logs where it is; what
// names it in the log.
func Open[S any](ctx context.Context, env Env, what string,
	open func(context.Context, config.Config, jetstream.JetStream) (S, string, error)) (S, error) {
	setup, cancel := context.WithTimeout(ctx, SetupTimeout)
	defer cancel()
	s, where, err := open(setup, env.Config, env.JS)
	if err != nil {
		return s, err
	}
	env.Log.Info("store opened", what, where)
	return s, nil
}

// Main runs service name: run is called with a context cancelled on SIGINT
// or SIGTERM and should return once the service has stopped. Main exits the
// process with status 1 and the error on stderr when anything fails.
func Main(name string, run func(ctx context.Context, env Env) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := Run(ctx, name, run)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}

// Run is Main without the signals and the exit, for a binary that runs one
// of several services by name (`butakero fetcher`): it reads the
// environment, connects, and calls run until ctx is cancelled. Cancelled
// while it is still starting (SIGTERM as the task starts), it returns nil:
// what was starting ends with ctx's error, which is no failure.
func Run(ctx context.Context, name string, run func(ctx context.Context, env Env) error) (err error) {
	defer func() {
		if Stopped(ctx, err) {
			err = nil
		}
	}()
	cfg, err := config.Load(os.LookupEnv)
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	log := logging.New(os.Stderr, cfg.LogLevel, cfg.LogFormat).With("service", name)
	// Libraries that log through the default logger (jonas747/dca) get ours.
	slog.SetDefault(log)
	// Spans go out over OTLP when OTEL_* names a collector; flushed last.
	stopTracing, err := tracing.Start(cfg.Tracing, "butakero-"+name, log)
	if err != nil {
		return fmt.Errorf("tracing: %w", err)
	}
	defer stopTracing()
	// The versions are logged once probed, in the background: the start
	// does not wait for yt-dlp's.
	prober := versions.Start(log)
	defer prober.Stop()
	// natsconn.Connect refuses an empty NATS_URL with a clear message.
	nc, err := natsconn.Connect(cfg, "butakero-"+name, log)
	if err != nil {
		return err
	}
	defer natsconn.Drain(nc, 10*time.Second, log)
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	setup, cancel := context.WithTimeout(ctx, SetupTimeout)
	defer cancel()
	if err := ensureStream(setup, js, cfg.StreamReplicas, cfg.StreamLimits(), log); err != nil {
		return err
	}
	m := metrics.New(metrics.NewRegistry())
	m.WatchVersions(prober)
	if cfg.MetricsAddr != "" && name != "gateway" {
		stop, err := serveMetrics(cfg.MetricsAddr, m, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	if src, ok := backlogOf(name, cfg.RecorderPartitions); ok && cfg.MetricsEMF {
		stop := emitBacklog(ctx, js, name, src, cfg.MetricsDeployment, prober, log)
		defer stop()
	}
	log.Info("service starting", "nats", nc.ConnectedUrlRedacted())
	return run(ctx, Env{Config: cfg, Log: log, NC: nc, JS: js, Metrics: m, Versions: prober})
}

// stageConsumers names the durable consumer of each service that has one:
// the backlog METRICS_EMF reports, and the ECS services scale on.
var stageConsumers = map[string]string{
	"resolver": events.ConsumerResolver,
	"fetcher":  events.ConsumerFetcher,
	"encoder":  events.ConsumerEncoder,
	"recorder": events.ConsumerRecorder,
}

// backlogSource is what a service's EMF backlog reads: one durable
// consumer, or the parts that add up to it on stream.
type backlogSource struct {
	stream, consumer string
	parts            []string
}

// backlogOf is the backlog service reports with METRICS_EMF, and false
// for a service with no durable consumer.
func backlogOf(service string, recorderPartitions int) (backlogSource, bool) {
	consumer, ok := stageConsumers[service]
	if !ok {
		return backlogSource{}, false
	}
	src := backlogSource{stream: events.StreamName, consumer: consumer}
	switch service {
	case "recorder":
		// The recorder reads its lanes, not the stream: its backlog is
		// theirs added up.
		src.stream, src.parts = events.LanesStreamName, events.LaneConsumers(recorderPartitions)
	case "encoder":
		// An encoder task also measures the passthroughs' loudness from
		// its second consumer: a measure (two ffmpeg, one measure at a
		// time per task) takes about the CPU time a transcode of the song
		// does, so its backlog counts as the encodes' does. (A
		// transcode's dca.encoded passes that consumer too, acked at once.)
		src.parts = []string{events.ConsumerEncoder, events.ConsumerEncoderLoudness}
	}
	return src, true
}

// ytdlpServices run yt-dlp: their EMF lines also carry its age.
var ytdlpServices = map[string]bool{"resolver": true, "fetcher": true}

// emitBacklog writes consumer's backlog (and, for a service that runs
// yt-dlp, yt-dlp's age) to stderr, beside the log, as EMF lines (package
// emf) until stop is called; stop returns once the emitter
// has, so no line is written after the connection drains.
func emitBacklog(ctx context.Context, js jetstream.JetStream, service string, src backlogSource, deployment string, prober *versions.Prober, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	e := &emf.Emitter{
		JS: js, Stream: src.stream, Consumer: src.consumer, Parts: src.parts,
		Deployment: deployment, Service: service, W: os.Stderr, Log: log,
	}
	if ytdlpServices[service] {
		e.YTDLPAge = func(now time.Time) (int, bool) {
			y, ok := prober.YTDLP()
			if !ok {
				return 0, false
			}
			return y.AgeAt(now)
		}
	}
	go func() {
		defer close(done)
		_ = e.Run(ctx)
	}()
	return func() { cancel(); <-done }
}

// serveMetrics serves m's registry on addr at /metrics until stop is called.
// streamAttempt bounds one attempt to create or find the stream.
const streamAttempt = 5 * time.Second

// ensureStream creates or finds the stream, trying again while JetStream
// cannot answer yet: a service alone may start before its cluster has
// elected a leader (compose and ECS start containers in any order), and
// then a request goes unanswered or is refused as unavailable. Any other
// refusal, or ctx's end, is returned.
func ensureStream(ctx context.Context, js jetstream.JetStream, replicas int, limits events.StreamLimits, log *slog.Logger) error {
	for {
		attempt, cancel := context.WithTimeout(ctx, streamAttempt)
		_, err := events.EnsureStream(attempt, js, replicas, limits)
		cancel()
		if err == nil || ctx.Err() != nil || !jetStreamUnavailable(err) {
			return err
		}
		log.Info("waiting for JetStream to answer", "error", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// jetStreamUnavailable reports whether err says JetStream cannot answer
// yet, rather than refusing the request: no answer in time, no responder,
// a 503, or a cluster without a leader or enough peers.
func jetStreamUnavailable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrTimeout) {
		return true
	}
	var api *jetstream.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode {
		case 10005, 10008, 10023: // no suitable peers, cluster not available, insufficient resources
			return true
		}
		return api.Code == 503
	}
	return false
}

// serveMetrics serves m's registry on addr at /metrics, and /healthz (200
// while the process runs, as the gateway's), until stop is called. The
// image's health check (`butakero healthcheck`) asks /healthz here for the
// services without HTTP of their own.
func serveMetrics(addr string, m *metrics.Metrics, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("METRICS_ADDR: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.Registry(), promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server", "error", err)
		}
	}()
	log.Info("serving metrics", "addr", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}
