package recorder

import (
	"time"

	"github.com/butakero/butakero/platform/runtime/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// recorderMetrics are the recorder's own measures, registered on the
// process's registry (Deps.Metrics) beside the stage runtime's.
type recorderMetrics struct {
	// lag is the time from an event's publish (its envelope's time) until
	// the recorder has applied it to the projections, by recorder lane.
	lag *prometheus.HistogramVec
}

// newRecorderMetrics registers the recorder's collectors on m's registry.
func newRecorderMetrics(m *metrics.Metrics) *recorderMetrics {
	return &recorderMetrics{
		lag: metrics.Register(m, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: metrics.Namespace, Subsystem: "projection", Name: "lag_seconds",
			Help:    "Time from an event's publish until the recorder applied it to the projections, by recorder lane.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"lane"})),
	}
}

// ObserveProjectionLag records that the recorder's lane applied an event
// published lag ago.
func (r *recorderMetrics) ObserveProjectionLag(lane string, lag time.Duration) {
	r.lag.WithLabelValues(lane).Observe(max(lag, 0).Seconds())
}
