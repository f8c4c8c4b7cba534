package resolver

import (
	"github.com/butakero/butakero/platform/runtime/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// resolverMetrics are the resolver's own measures, registered on the
// process's registry (Deps.Metrics) beside the stage runtime's. Its
// methods do nothing on a nil receiver (a Resolver built by hand).
type resolverMetrics struct {
	// apiCalls counts YouTube Data API calls by method ("search.list",
	// "videos.list"): each one costs quota.
	apiCalls *prometheus.CounterVec
	// fallbacks counts resolutions done through yt-dlp instead of the Data
	// API, by reason (no_key, quota_exceeded, key_invalid, server_error…).
	fallbacks *prometheus.CounterVec
	// cacheHits and cacheMisses count lookups of the search cache, by cache
	// (CacheQueries, CacheVideos).
	cacheHits   *prometheus.CounterVec
	cacheMisses *prometheus.CounterVec
}

// newResolverMetrics registers the resolver's collectors on m's registry.
func newResolverMetrics(m *metrics.Metrics) *resolverMetrics {
	return &resolverMetrics{
		apiCalls: metrics.Register(m, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "resolver", Name: "api_calls_total",
			Help: "YouTube Data API calls made by the resolver, by method.",
		}, []string{"method"})),
		fallbacks: metrics.Register(m, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "resolver", Name: "fallbacks_total",
			Help: "Resolutions done through yt-dlp instead of the YouTube Data API, by reason.",
		}, []string{"reason"})),
		cacheHits: metrics.Register(m, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Name: "cache_hits_total",
			Help: "Cache lookups that found their entry, by cache.",
		}, []string{"cache"})),
		cacheMisses: metrics.Register(m, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Name: "cache_misses_total",
			Help: "Cache lookups that did not find their entry, by cache.",
		}, []string{"cache"})),
	}
}

// APICall records one YouTube Data API call of method.
func (r *resolverMetrics) APICall(method string) {
	if r != nil {
		r.apiCalls.WithLabelValues(method).Inc()
	}
}

// Fallback records a resolution done through yt-dlp, and why.
func (r *resolverMetrics) Fallback(reason string) {
	if r != nil {
		r.fallbacks.WithLabelValues(reason).Inc()
	}
}

// CacheLookup records a lookup of cache that hit or missed.
func (r *resolverMetrics) CacheLookup(cache string, hit bool) {
	switch {
	case r == nil:
	case hit:
		r.cacheHits.WithLabelValues(cache).Inc()
	default:
		r.cacheMisses.WithLabelValues(cache).Inc()
	}
}
