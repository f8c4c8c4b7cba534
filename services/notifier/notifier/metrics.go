package notifier

import (
	"github.com/butakero/butakero/platform/runtime/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// Outcomes of one webhook delivery attempt, the "outcome" label of
// butakero_webhook_deliveries_total.
const (
	WebhookDelivered = "delivered" // the receiver answered 2xx
	WebhookRetry     = "retry"     // 5xx, 408, 429, a timeout or a network failure: tried again later
	WebhookRejected  = "rejected"  // another 4xx: not tried again
	WebhookExpired   = "expired"   // still failing WEBHOOK_MAX_AGE after the event: given up
	WebhookRefused   = "refused"   // a redirect or address WEBHOOK_ALLOWED_HOSTS does not allow: not tried again
)

// notifierMetrics are the notifier's own measures, registered on the
// process's registry (Deps.Metrics) beside the stage runtime's.
type notifierMetrics struct {
	// deliveries counts webhook delivery attempts by outcome.
	deliveries *prometheus.CounterVec
}

// newNotifierMetrics registers the notifier's collectors on m's registry.
// Every outcome's series is exported from the start, at 0, so that an
// alert's increase() sees the first one given up.
func newNotifierMetrics(m *metrics.Metrics) *notifierMetrics {
	n := &notifierMetrics{
		deliveries: metrics.Register(m, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "webhook", Name: "deliveries_total",
			Help: "Webhook delivery attempts by outcome (delivered, retry, rejected, expired, refused).",
		}, []string{"outcome"})),
	}
	for _, o := range []string{WebhookDelivered, WebhookRetry, WebhookRejected, WebhookExpired, WebhookRefused} {
		n.deliveries.WithLabelValues(o)
	}
	return n
}

// WebhookDelivery records one webhook delivery attempt's outcome.
func (n *notifierMetrics) WebhookDelivery(outcome string) {
	n.deliveries.WithLabelValues(outcome).Inc()
}
