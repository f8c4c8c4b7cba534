package resolver

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the resolver's counters. They always count; they are
// exported only when Deps.Metrics is set.
type metrics struct {
	// apiCalls counts Data API calls by method ("search.list",
	// "videos.list"): each one costs quota.
	apiCalls *prometheus.CounterVec
	// fallbacks counts searches and lookups done without the Data API, by
	// reason (see FallbackReason, and ReasonNoKey).
	fallbacks *prometheus.CounterVec
	// cache counts cache lookups by result ("hit", "miss").
	cache *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		apiCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "resolver_api_calls_total",
			Help: "YouTube Data API calls made by the resolver, by method.",
		}, []string{"method"}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "resolver_fallbacks_total",
			Help: "Resolutions done through yt-dlp instead of the YouTube Data API, by reason.",
		}, []string{"reason"}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "resolver_cache_total",
			Help: "Resolver cache lookups (queries and videos), by result.",
		}, []string{"result"}),
	}
	if reg == nil {
		return m, nil
	}
	// A second resolver in one process (tests, or an all-in-one restarted
	// in place) shares the counters already registered.
	register := func(c **prometheus.CounterVec) error {
		err := reg.Register(*c)
		var dup prometheus.AlreadyRegisteredError
		if errors.As(err, &dup) {
			if existing, ok := dup.ExistingCollector.(*prometheus.CounterVec); ok {
				*c = existing
				return nil
			}
		}
		return err
	}
	for _, c := range []**prometheus.CounterVec{&m.apiCalls, &m.fallbacks, &m.cache} {
		if err := register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// The counting methods do nothing on a nil *metrics.

func (m *metrics) apiCall(method string) {
	if m != nil {
		m.apiCalls.WithLabelValues(method).Inc()
	}
}

func (m *metrics) fallback(reason string) {
	if m != nil {
		m.fallbacks.WithLabelValues(reason).Inc()
	}
}

func (m *metrics) cacheResult(hit bool) {
	switch {
	case m == nil:
	case hit:
		m.cache.WithLabelValues("hit").Inc()
	default:
		m.cache.WithLabelValues("miss").Inc()
	}
}
