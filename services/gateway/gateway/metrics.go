package gateway

import (
	"strconv"
	"time"

	"github.com/butakero/butakero/platform/runtime/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// gatewayMetrics are the gateway's own measures, registered on the
// process's registry (Deps.Metrics), which /metrics serves whole.
type gatewayMetrics struct {
	*metrics.Metrics

	// requests counts finished HTTP requests by route pattern (as
	// registered, e.g. "/v1/songs/:id"; "unmatched" when no route matched),
	// method and status code.
	requests *prometheus.CounterVec
	// duration is the time from a request's arrival until its response
	// headers are ready, by route and method. A streamed body (a DCA) and a
	// WebSocket end at the headers and the upgrade.
	duration *prometheus.HistogramVec
	// sockets is the number of open WebSocket connections.
	sockets prometheus.Gauge
	// followers is the number of clients following a song's DCA in the
	// making (GET /v1/operations/{id}/dca and /ogg, before it is stored).
	followers prometheus.Gauge
}

// newGatewayMetrics registers the gateway's collectors on m's registry.
func newGatewayMetrics(m *metrics.Metrics) *gatewayMetrics {
	return &gatewayMetrics{
		Metrics: m,
		requests: metrics.Register(m, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "http", Name: "requests_total",
			Help: "HTTP requests answered, by route pattern, method and status code.",
		}, []string{"route", "method", "code"})),
		duration: metrics.Register(m, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: metrics.Namespace, Subsystem: "http", Name: "request_duration_seconds",
			Help:    "Time to answer an HTTP request (until the response headers), by route pattern and method.",
			Buckets: metrics.LatencyBuckets,
		}, []string{"route", "method"})),
		sockets: metrics.Register(m, prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: metrics.Namespace, Subsystem: "websocket", Name: "open_connections",
			Help: "Open WebSocket connections.",
		})),
		followers: metrics.Register(m, prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: metrics.Namespace, Subsystem: "audio", Name: "followers",
			Help: "Clients following a song's DCA on BUTAKERO_FRAMES before it is stored.",
		})),
	}
}

// ObserveHTTP records one answered request.
func (g *gatewayMetrics) ObserveHTTP(route, method string, code int, d time.Duration) {
	g.requests.WithLabelValues(route, method, strconv.Itoa(code)).Inc()
	g.duration.WithLabelValues(route, method).Observe(d.Seconds())
}

// SocketOpened and SocketClosed move the open-sockets gauge.
func (g *gatewayMetrics) SocketOpened() { g.sockets.Inc() }

// SocketClosed is SocketOpened's counterpart.
func (g *gatewayMetrics) SocketClosed() { g.sockets.Dec() }

// Following moves the audio followers' gauge by delta (1 when a follow
// starts, -1 when it ends).
func (g *gatewayMetrics) Following(delta int) { g.followers.Add(float64(delta)) }
