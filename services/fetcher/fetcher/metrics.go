package fetcher

import (
	"github.com/butakero/butakero/platform/runtime/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// fetcherMetrics are the fetcher's own measures, registered on the
// process's registry (Deps.Metrics) beside the stage runtime's.
type fetcherMetrics struct {
	// joins counts requests that waited for another operation's download
	// of the same song instead of starting their own, by what was joined
	// (JoinedWhat).
	joins *prometheus.CounterVec
}

// newFetcherMetrics registers the fetcher's collectors on m's registry.
func newFetcherMetrics(m *metrics.Metrics) *fetcherMetrics {
	return &fetcherMetrics{
		joins: metrics.Register(m, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Name: "singleflight_joins_total",
			Help: "Callers that joined work already in flight instead of repeating it, by what was joined.",
		}, []string{"what"})),
	}
}

// SingleFlightJoined records a request that joined in-flight work on what.
func (f *fetcherMetrics) SingleFlightJoined(what string) {
	f.joins.WithLabelValues(what).Inc()
}
