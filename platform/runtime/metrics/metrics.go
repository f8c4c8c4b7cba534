// Package metrics holds the Prometheus collectors every Butakero service
// shares, so that one name means one thing whichever process exports it.
//
// Nothing here registers with Prometheus' global registry: main (or the
// all-in-one's app) builds one registry with NewRegistry, one *Metrics on it
// with New, and hands that *Metrics to each component through its Deps. A
// nil *Metrics is valid everywhere and records nothing, so a component
// built without one (a unit test, a tool) needs no special case.
package metrics

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Namespace prefixes every metric name.
const Namespace = "butakero"

// Outcomes of one stage attempt, the "outcome" label of StageDuration.
const (
	OutcomeOK       = "ok"       // the handler succeeded; the message was acked
	OutcomeRetry    = "retry"    // a transient failure; the message was nakked for redelivery
	OutcomeFailed   = "failed"   // a permanent failure or the last attempt; operation.failed was published
	OutcomeReleased = "released" // shut down mid-attempt; left for another process
)

// Metrics is the set of collectors. Its methods are safe for concurrent
// use and do nothing on a nil receiver.
type Metrics struct {
	reg *prometheus.Registry

	// HTTPRequests counts finished HTTP requests by route pattern (as
	// registered, e.g. "/v1/songs/:id"; "unmatched" when no route matched),
	// method and status code.
	HTTPRequests *prometheus.CounterVec
	// HTTPDuration is the time from a request's arrival until its response
	// headers are ready, by route and method. A streamed body (a DCA) and a
	// WebSocket end at the headers and the upgrade.
	HTTPDuration *prometheus.HistogramVec
	// StageDuration is the duration of one stage attempt by stage and outcome.
	StageDuration *prometheus.HistogramVec
	// StageAttempts counts stage attempts (deliveries handled) by stage.
	StageAttempts *prometheus.CounterVec
	// StageFailures counts failed stage attempts by stage, failure code and
	// whether the failure was final (operation.failed) or retried.
	StageFailures *prometheus.CounterVec
	// CacheHits and CacheMisses count lookups of a named cache (the
	// resolver's video cache, the catalog's stored DCA…).
	CacheHits   *prometheus.CounterVec
	CacheMisses *prometheus.CounterVec
	// SingleFlightJoins counts callers that joined work already in flight
	// for the same key instead of starting it again, by what was joined.
	SingleFlightJoins *prometheus.CounterVec
	// OpenSockets is the number of open WebSocket connections.
	OpenSockets prometheus.Gauge
	// AudioFollowers is the number of clients following a song's DCA in
	// the making (GET /v1/operations/{id}/dca and /ogg, before it is
	// stored).
	AudioFollowers prometheus.Gauge
	// APICalls counts YouTube Data API calls by method ("search.list",
	// "videos.list"): each one costs quota.
	APICalls *prometheus.CounterVec
	// Fallbacks counts resolutions done through yt-dlp instead of the Data
	// API, by reason (no_key, quota_exceeded, key_invalid, server_error…).
	Fallbacks *prometheus.CounterVec

	lagOnce sync.Once
}

// NewRegistry returns an empty registry with the Go runtime and process
// collectors, the one a process's main creates and passes to New.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// latencyBuckets span a cached answer (milliseconds) to a long encode
// (minutes).
var latencyBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}

// New creates the collectors and registers them with reg. Call it once per
// registry: a second call on the same registry panics on the duplicate
// names, as Prometheus' MustRegister does.
func New(reg *prometheus.Registry) *Metrics {
	m := &Metrics{
		reg: reg,
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "http", Name: "requests_total",
			Help: "HTTP requests answered, by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		HTTPDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Subsystem: "http", Name: "request_duration_seconds",
			Help:    "Time to answer an HTTP request (until the response headers), by route pattern and method.",
			Buckets: latencyBuckets,
		}, []string{"route", "method"}),
		StageDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Subsystem: "stage", Name: "duration_seconds",
			Help:    "Duration of one stage attempt, by stage and outcome (ok, retry, failed, released).",
			Buckets: latencyBuckets,
		}, []string{"stage", "outcome"}),
		StageAttempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "stage", Name: "attempts_total",
			Help: "Stage attempts (message deliveries handled), by stage.",
		}, []string{"stage"}),
		StageFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "stage", Name: "failures_total",
			Help: "Failed stage attempts, by stage, failure code and whether the failure ended the operation.",
		}, []string{"stage", "code", "final"}),
		CacheHits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "cache_hits_total",
			Help: "Cache lookups that found their entry, by cache.",
		}, []string{"cache"}),
		CacheMisses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "cache_misses_total",
			Help: "Cache lookups that did not find their entry, by cache.",
		}, []string{"cache"}),
		SingleFlightJoins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "singleflight_joins_total",
			Help: "Callers that joined work already in flight instead of repeating it, by what was joined.",
		}, []string{"what"}),
		AudioFollowers: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace, Subsystem: "audio", Name: "followers",
			Help: "Clients following a song's DCA on BUTAKERO_FRAMES before it is stored.",
		}),
		OpenSockets: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace, Subsystem: "websocket", Name: "open_connections",
			Help: "Open WebSocket connections.",
		}),
		APICalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "resolver", Name: "api_calls_total",
			Help: "YouTube Data API calls made by the resolver, by method.",
		}, []string{"method"}),
		Fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "resolver", Name: "fallbacks_total",
			Help: "Resolutions done through yt-dlp instead of the YouTube Data API, by reason.",
		}, []string{"reason"}),
	}
	reg.MustRegister(m.HTTPRequests, m.HTTPDuration, m.StageDuration, m.StageAttempts,
		m.StageFailures, m.CacheHits, m.CacheMisses, m.SingleFlightJoins, m.OpenSockets, m.AudioFollowers,
		m.APICalls, m.Fallbacks)
	return m
}

// Registry is the registry the collectors are registered with; /metrics
// serves it. Nil for a nil *Metrics.
func (m *Metrics) Registry() *prometheus.Registry {
	if m == nil {
		return nil
	}
	return m.reg
}

// ObserveHTTP records one answered request.
func (m *Metrics) ObserveHTTP(route, method string, code int, d time.Duration) {
	if m == nil {
		return
	}
	m.HTTPRequests.WithLabelValues(route, method, strconv.Itoa(code)).Inc()
	m.HTTPDuration.WithLabelValues(route, method).Observe(d.Seconds())
}

// ObserveAttempt records one stage attempt: its duration and outcome and,
// for a failure, its code (empty for OutcomeOK and OutcomeReleased).
func (m *Metrics) ObserveAttempt(stage, outcome, code string, d time.Duration) {
	if m == nil {
		return
	}
	m.StageAttempts.WithLabelValues(stage).Inc()
	m.StageDuration.WithLabelValues(stage, outcome).Observe(d.Seconds())
	switch outcome {
	case OutcomeRetry:
		m.StageFailures.WithLabelValues(stage, code, "false").Inc()
	case OutcomeFailed:
		m.StageFailures.WithLabelValues(stage, code, "true").Inc()
	}
}

// CacheLookup records a lookup of cache that hit or missed.
func (m *Metrics) CacheLookup(cache string, hit bool) {
	if m == nil {
		return
	}
	if hit {
		m.CacheHits.WithLabelValues(cache).Inc()
	} else {
		m.CacheMisses.WithLabelValues(cache).Inc()
	}
}

// SingleFlightJoined records a caller that joined in-flight work on what.
func (m *Metrics) SingleFlightJoined(what string) {
	if m == nil {
		return
	}
	m.SingleFlightJoins.WithLabelValues(what).Inc()
}

// APICall records one YouTube Data API call of method.
func (m *Metrics) APICall(method string) {
	if m != nil {
		m.APICalls.WithLabelValues(method).Inc()
	}
}

// Fallback records a resolution done through yt-dlp, and why.
func (m *Metrics) Fallback(reason string) {
	if m != nil {
		m.Fallbacks.WithLabelValues(reason).Inc()
	}
}

// SocketOpened and SocketClosed move the open-sockets gauge.
func (m *Metrics) SocketOpened() {
	if m != nil {
		m.OpenSockets.Inc()
	}
}

// Following moves the audio followers' gauge by delta (1 when a follow
// starts, -1 when it ends).
func (m *Metrics) Following(delta int) {
	if m != nil {
		m.AudioFollowers.Add(float64(delta))
	}
}

// SocketClosed is SocketOpened's counterpart.
func (m *Metrics) SocketClosed() {
	if m != nil {
		m.OpenSockets.Dec()
	}
}
