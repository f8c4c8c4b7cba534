// Package metrics holds a process's Prometheus registry and the collectors
// of the stage runtime that every stage shares (attempts, durations,
// failures, consumer lag), so that one name means one thing whichever
// process exports it. A service's own measures (the gateway's HTTP
// requests, the resolver's Data API calls…) are declared in the service's
// package and registered on the same registry with Register.
//
// Nothing here registers with Prometheus' global registry: main (or the
// all-in-one's app) builds one registry with NewRegistry, one *Metrics on it
// with New, and hands that *Metrics to each component through its Deps. A
// nil *Metrics is valid everywhere and records nothing, so a component
// built without one (a unit test, a tool) needs no special case.
package metrics

import (
	"errors"
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
	// OutcomeCancelled: the operation was cancelled; nothing was published and the message was acked.
	OutcomeCancelled = "cancelled"
)

// Metrics is a process's registry and the stage runtime's collectors on
// it. Its methods are safe for concurrent
// use and do nothing on a nil receiver.
type Metrics struct {
	reg *prometheus.Registry

	// StageDuration is the duration of one stage attempt by stage and outcome.
	StageDuration *prometheus.HistogramVec
	// StageAttempts counts stage attempts (deliveries handled) by stage.
	StageAttempts *prometheus.CounterVec
	// StageFailures counts failed stage attempts by stage, failure code and
	// whether the failure was final (operation.failed) or retried.
	StageFailures *prometheus.CounterVec
	// EventsPublished counts the events a stage stored in the stream, by
	// stage and event kind (upload.done, operation.failed…): how many
	// songs the pipeline finishes, whichever process finished them.
	EventsPublished *prometheus.CounterVec

	lagMu sync.Mutex
	lag   *lagCollector
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

// LatencyBuckets span a cached answer (milliseconds) to a long encode
// (minutes): the buckets of every duration histogram.
var LatencyBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}

// New creates the stage runtime's collectors and registers them with reg. Call it once per
// registry: a second call on the same registry panics on the duplicate
// names, as Prometheus' MustRegister does.
func New(reg *prometheus.Registry) *Metrics {
	m := &Metrics{
		reg: reg,
		StageDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Subsystem: "stage", Name: "duration_seconds",
			Help:    "Duration of one stage attempt, by stage and outcome (ok, retry, failed, released).",
			Buckets: LatencyBuckets,
		}, []string{"stage", "outcome"}),
		StageAttempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "stage", Name: "attempts_total",
			Help: "Stage attempts (message deliveries handled), by stage.",
		}, []string{"stage"}),
		StageFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "stage", Name: "failures_total",
			Help: "Failed stage attempts, by stage, failure code and whether the failure ended the operation.",
		}, []string{"stage", "code", "final"}),
		EventsPublished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "stage", Name: "events_published_total",
			Help: "Events a stage stored in the stream, by stage and event kind (upload.done, operation.failed…).",
		}, []string{"stage", "event"}),
	}
	reg.MustRegister(m.StageDuration, m.StageAttempts, m.StageFailures, m.EventsPublished)
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

// EventPublished records one event stage stored in the stream.
func (m *Metrics) EventPublished(stage, kind string) {
	if m != nil {
		m.EventsPublished.WithLabelValues(stage, kind).Inc()
	}
}

// Register registers a component's own collector c on m's registry and
// returns the collector to record on: c itself, or the one registered
// before under the same name and labels when another component of the
// process (a second resolver of a test, say) got there first, so that both
// count into one series. On a nil m, c is returned unregistered: it records
// and nothing exports it. A collector that clashes with a different one of
// the same name panics, as Prometheus' MustRegister does.
func Register[C prometheus.Collector](m *Metrics, c C) C {
	if m == nil {
		return c
	}
	if err := m.reg.Register(c); err != nil {
		var dup prometheus.AlreadyRegisteredError
		if errors.As(err, &dup) {
			if existing, ok := dup.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err)
	}
	return c
}
