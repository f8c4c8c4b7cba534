// Package gateway is Butakero's HTTP front door: it turns a song request
// into a song.requested event, answers status reads from the operations
// projection (or the stream while the recorder lags), streams stored DCA
// files, searches the catalog and follows operations live over WebSocket.
// It serves the seed-compatible /api/audio/* routes and the /v1 routes,
// documented in the embedded /openapi.json and the README's "HTTP API".
//
// Every /api and /v1 route shares one access policy: API keys when
// configured (with failures limited per address), a per-client budget for
// creating operations and a much larger one for reads, and CORS only for
// the configured origins. Every route is measured (Prometheus, /metrics)
// and continues the W3C trace context of the request into the events it
// publishes.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/blob"
	"github.com/butakero/butakero/platform/media/framestream"
	"github.com/butakero/butakero/platform/projection"
	"github.com/butakero/butakero/platform/runtime/config"
	"github.com/butakero/butakero/platform/runtime/membudget"
	"github.com/butakero/butakero/platform/runtime/metrics"
	"github.com/butakero/butakero/platform/runtime/versions"
	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Publisher stores an event in the stream and returns once the server
// acknowledged it. *events.Publisher satisfies it.
type Publisher interface {
	Publish(ctx context.Context, env events.Envelope) (*jetstream.PubAck, error)
}

// Store reads the operation and song projections the recorder keeps and
// searches the catalog (the reads of projection.Store). Both reads return
// projection.ErrNotFound for an unknown id. SearchSongs returns one page of
// the songs matching q (by normalized title; "" matches all), at most limit
// of them, after cursor ("" for the first page), and the cursor of the next
// page ("" after the last); cursors are opaque to the gateway, and one the
// store did not make is a *projection.BadCursorError, answered with 400.
type Store interface {
	Operation(ctx context.Context, id string) (projection.Operation, error)
	Song(ctx context.Context, id string) (projection.Song, error)
	SearchSongs(ctx context.Context, q string, limit int, cursor string) ([]projection.Song, string, error)
	// Ping reports whether the store answers; /readyz calls it.
	Ping(ctx context.Context) error
}

// Blobs reads stored blobs. Stat and OpenRange return an error wrapping
// blob.ErrNotFound for a missing key. OpenRange reads the n bytes from
// byte off (to the end when n < 0) without fetching those before off; the
// reader it returns keeps reading under ctx until it is closed, so ctx must
// outlive the read. Implementations must be safe for concurrent use;
// *objstore.Store and *s3blob.Store are two.
type Blobs interface {
	Stat(ctx context.Context, key string) (blob.Info, error)
	OpenRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, blob.Info, error)
	// Ping reports whether the store answers; /readyz calls it.
	Ping(ctx context.Context) error
}

var (
	_ Publisher = (*events.Publisher)(nil)
	_ Store     = projection.Store(nil)
	_ Blobs     = blob.Store(nil)
)

// DefaultStartWait is how long POST /api/audio/start waits for the resolver
// to name the song before answering with an empty song_id.
const DefaultStartWait = 3 * time.Second

// DefaultStoredWait is how long a POST for a song the gateway saw stored
// waits past its video.resolved for upload.done, which the fetcher
// answers from the stored DCA in a few milliseconds: the client's first
// status read then finds the operation final, and costs no second poll.
// The POST never waits past DefaultStartWait (Deps.StartWait) in all.
const DefaultStoredWait = 250 * time.Millisecond

// Limits of one request. Bodies are small JSON documents at most; the
// header limit is the read buffer fasthttp parses the request head in.
const (
	bodyLimit      = 64 << 10
	headerLimit    = 16 << 10
	readTimeout    = 30 * time.Second
	idleTimeout    = 2 * time.Minute
	storeTimeout   = 5 * time.Second
	publishTimeout = 5 * time.Second
	readyTimeout   = 2 * time.Second
	// streamTimeout bounds one DCA download. The object store reads its
	// chunks under the context given to Open, and without a deadline
	// nats.go applies its 5 s default to the whole read.
	streamTimeout = time.Hour
)

// Deps is what the gateway needs. NC, JS, Store and Blobs are
// required; the rest have defaults.
//
// Config supplies APIKeys, AllowedOrigins, PublicURL, RateLimit,
// ReadRateLimit, AuthFailureLimit, MaxSockets, StreamReplicas (of the
// idempotency bucket), HTTPAddr and ShutdownGrace, and the profile and
// features GET /v1/info reports.
type Deps struct {
	// NC carries the core NATS subscriptions that learn a new operation's
	// song id; /readyz reports its connection state.
	NC *nats.Conn
	// JS reads the stream when the projection does not know an operation yet.
	JS jetstream.JetStream
	// Publisher publishes song.requested; nil means events.NewPublisher(JS).
	Publisher Publisher
	// Store answers status reads and names each song's DCA blob.
	Store Store
	// Blobs streams the DCA files.
	Blobs Blobs
	// Metrics receives the HTTP and WebSocket measures and is what /metrics
	// serves (its Registry). nil means a registry of the gateway's own.
	Metrics *metrics.Metrics
	Config  config.Config
	// Log receives the access log and every internal error; nil means
	// slog.Default().
	Log *slog.Logger
	// Listener, when set, is served instead of listening on Config.HTTPAddr.
	// Run closes it on shutdown. Its address (else Config.HTTPAddr) names
	// the gateway's own origin when Config.PublicURL is empty.
	Listener net.Listener
	// StartWait overrides DefaultStartWait when positive.
	StartWait time.Duration
	// StoredWait overrides DefaultStoredWait when positive; negative
	// waits not at all.
	StoredWait time.Duration
	// Now is the rate limits' clock; nil means time.Now. Tests pass a fake
	// one to run minutes of traffic at once.
	Now func() time.Time
	// Versions answers GET /v1/info's versions: the process's own probe
	// (versions.Start), so the gateway runs no tool of its own. nil means
	// the gateway starts one.
	Versions Versions
	// Memory, when set, is held while a client follows a song before it
	// is stored (membudget.Budget, which the all-in-one passes; see
	// the encoder's Deps.Memory). nil holds nothing.
	Memory *membudget.Budget
}

type server struct {
	nc        *nats.Conn
	js        jetstream.JetStream
	streamMu  sync.Mutex
	stream    jetstream.Stream // the event stream's handle, once looked up (eventStream)
	pub       Publisher
	store     Store
	blobs     Blobs
	log       *slog.Logger
	keys      *apiKeys
	creations *rateLimiter // RATE_LIMIT: POST /api/audio/start, POST /v1/operations
	reads     *rateLimiter // READ_RATE_LIMIT: every other /api and /v1 route
	origins   *origins
	idem      jetstream.KeyValue
	metrics   *gatewayMetrics
	hub       *hub
	sockets   *socketCap
	startWait time.Duration
	// storedWait is how long a POST for a song already stored waits past
	// its video.resolved for the operation's end (request).
	storedWait time.Duration
	dashboard  map[string]dashboardFile
	oggSizes   *oggSizes
	// heads remembers the completed headers of DCAs served (dca.go's
	// completedHead), by song and DCA digest; nil for one served as stored.
	heads    *lru.Cache[string, *completed]
	versions Versions
	cfg      config.Config // for GET /v1/info's profile and features
	// life ends when the gateway stops: songs followed before they are
	// stored are cut off then (opaudio.go).
	life   context.Context
	memory *membudget.Budget
}

// setupTimeout bounds the requests New makes to NATS.
const setupTimeout = 30 * time.Second

// New builds the gateway's fiber app without serving it, for Run and for
// tests (app.Test or app.Listener). It creates the idempotency bucket and
// starts the gateway's one subscription to the stream and to progress,
// which live until ctx is cancelled: then every open WebSocket is closed
// (1001, going away). The app's handlers are safe for concurrent use.
func New(ctx context.Context, d Deps) (*fiber.App, error) {
	switch {
	case d.NC == nil:
		return nil, errors.New("gateway: Deps.NC is required")
	case d.JS == nil:
		return nil, errors.New("gateway: Deps.JS is required")
	case d.Store == nil:
		return nil, errors.New("gateway: Deps.Store is required")
	case d.Blobs == nil:
		return nil, errors.New("gateway: Deps.Blobs is required")
	}
	listen := d.Config.HTTPAddr
	if d.Listener != nil {
		listen = d.Listener.Addr().String()
	}
	origins, err := newOrigins(d.Config.AllowedOrigins, d.Config.PublicURL, listen)
	if err != nil {
		return nil, err
	}
	now := d.Now
	if now == nil {
		now = time.Now
	}
	s := &server{
		nc:         d.NC,
		js:         d.JS,
		pub:        d.Publisher,
		store:      d.Store,
		blobs:      d.Blobs,
		log:        d.Log,
		keys:       newAPIKeys(d.Config.APIKeys, newRateLimiter("failed authentications", d.Config.AuthFailureLimit, now)),
		creations:  newRateLimiter(budgetCreations, d.Config.RateLimit, now),
		reads:      newRateLimiter(budgetReads, d.Config.ReadRateLimit, now),
		origins:    origins,
		sockets:    newSocketCap(d.Config.MaxSockets),
		startWait:  d.StartWait,
		storedWait: d.StoredWait,
		oggSizes:   newOggSizes(),
		heads:      newHeads(),
		versions:   d.Versions,
		memory:     d.Memory,
		cfg:        d.Config,
		life:       ctx,
	}
	if s.versions == nil {
		s.versions = versions.Start(nil)
	}
	if s.pub == nil {
		s.pub = events.NewPublisher(d.JS)
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.startWait <= 0 {
		s.startWait = DefaultStartWait
	}
	if s.storedWait == 0 {
		s.storedWait = DefaultStoredWait
	}
	if d.Metrics == nil {
		d.Metrics = metrics.New(metrics.NewRegistry())
	}
	s.metrics = newGatewayMetrics(d.Metrics)
	if s.dashboard, err = loadDashboard(); err != nil {
		return nil, fmt.Errorf("gateway: dashboard files: %w", err)
	}
	// This process exports the lag of every stage's durable consumer on
	// the event stream. (The recorder reads its lanes, whose lag it
	// exports itself; its consumer on the event stream is gone once the
	// lanes took over, see events.EnsureLanes.)
	s.metrics.WatchConsumers(d.JS, events.StreamName,
		events.ConsumerResolver, events.ConsumerFetcher, events.ConsumerEncoder, events.ConsumerEncoderLoudness)

	setup, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	if s.idem, err = openIdempotency(setup, d.JS, d.Config.StreamReplicas); err != nil {
		return nil, err
	}
	if s.hub, err = startHub(setup, ctx, d.NC, d.JS, s.log); err != nil {
		return nil, err
	}
	// The frames of the songs being encoded, which /v1/operations/{id}/dca
	// follows.
	if _, err := framestream.Ensure(setup, d.JS, d.Config.StreamReplicas); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}

	app := fiber.New(fiber.Config{
		AppName:               "butakero-gateway",
		DisableStartupMessage: true,
		ErrorHandler:          s.errorHandler,
		BodyLimit:             bodyLimit,
		ReadBufferSize:        headerLimit,
		ReadTimeout:           readTimeout,
		IdleTimeout:           idleTimeout,
		CaseSensitive:         true,
		// fasthttp reuses a connection's buffers for its next request, and
		// without Immutable every string fiber hands out (the method, params,
		// headers) aliases them: a metric label or a log attribute kept past
		// the handler would show the next request's bytes. With it every
		// value is a copy, at an allocation per access, and handlers may
		// keep what they read.
		Immutable: true,
	})
	app.Use(s.accessLog, s.recoverPanic)
	if cors := s.origins.cors(); cors != nil {
		app.Use(cors)
	}

	app.Get("/healthz", s.healthz)
	app.Get("/readyz", s.readyz)
	app.Get("/metrics", adaptor.HTTPHandler(promhttp.HandlerFor(s.metrics.Registry(), promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(s.log.Handler(), slog.LevelError),
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
	})))
	app.Get("/openapi.json", s.openAPI)
	// The dashboard is open like /openapi.json: its API calls carry the key.
	app.Get("/", s.dashboardIndex)
	app.Get("/dashboard/:file", s.dashboardAsset)

	// /api and /v1 share the access policy: the key (and the address's
	// failures), then the budget of the route's class by key.
	api := app.Group("/api", s.keys.middleware)
	v1 := app.Group("/v1", s.keys.middleware)
	create, read := s.creations.middleware, s.reads.middleware

	api.Post("/audio/start", create, s.start)
	api.Get("/audio/status", read, s.status)

	v1.Post("/operations", create, s.createOperation)
	v1.Get("/operations/:id", read, s.getOperation)
	v1.Delete("/operations/:id", create, s.cancelOperation)
	v1.Get("/operations/:id/events", read, s.beforeUpgrade, websocket.New(s.socket, websocket.Config{
		HandshakeTimeout: 10 * time.Second,
		// beforeUpgrade has checked the origin and answered a refusal in
		// the API's error shape.
		Origins: []string{"*"},
		// The socket only logs a handler's panic; the gauge and the hub
		// are released by the handler's deferred calls.
		RecoverHandler: s.recoverSocket,
	}))
	v1.Get("/operations/:id/dca", read, s.operationDCA)
	v1.Get("/operations/:id/ogg", read, s.operationOgg)
	v1.Get("/info", read, s.info)
	v1.Get("/songs", read, s.searchSongs)
	v1.Get("/songs/:id", read, s.getSong)
	v1.Get("/songs/:id/dca", read, s.dca)
	v1.Get("/songs/:id/ogg", read, s.ogg)
	return app, nil
}

// Run serves the gateway until ctx is cancelled, then stops accepting
// connections and waits up to Config.ShutdownGrace for requests in flight
// (a DCA download included) to finish. It returns nil after a clean stop and
// an error when serving fails or the grace runs out. It owns the listener.
func Run(ctx context.Context, d Deps) error {
	log := d.Log
	if log == nil {
		log = slog.Default()
	}
	// The listener comes first: its address is one of the gateway's own
	// origins when PUBLIC_URL is not set.
	ln := d.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", d.Config.HTTPAddr); err != nil {
			return fmt.Errorf("gateway: listen on %s: %w", d.Config.HTTPAddr, err)
		}
		d.Listener = ln
	}
	app, err := New(ctx, d)
	if err != nil {
		_ = ln.Close()
		return err
	}
	log.Info("gateway listening", "addr", ln.Addr().String())

	served := make(chan error, 1)
	go func() { served <- app.Listener(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("gateway: serve: %w", err)
	case <-ctx.Done():
	}

	grace := d.Config.ShutdownGrace
	if grace <= 0 {
		grace = 20 * time.Second
	}
	log.Info("gateway stopping", "grace", grace)
	shutdownErr := app.ShutdownWithTimeout(grace)
	if err := <-served; err != nil && shutdownErr == nil {
		shutdownErr = err
	}
	if shutdownErr != nil {
		return fmt.Errorf("gateway: shutdown: %w", shutdownErr)
	}
	log.Info("gateway stopped")
	return nil
}
