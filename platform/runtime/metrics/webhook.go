package metrics

import "github.com/prometheus/client_golang/prometheus"

// Outcomes of one webhook delivery attempt, the "outcome" label of
// butakero_webhook_deliveries_total.
const (
	WebhookDelivered = "delivered" // the receiver answered 2xx
	WebhookRetry     = "retry"     // 5xx, 408, 429, a timeout or a network failure: tried again later
	WebhookRejected  = "rejected"  // another 4xx: not tried again
	WebhookExpired   = "expired"   // still failing WEBHOOK_MAX_AGE after the event: given up
	WebhookRefused   = "refused"   // a redirect or address WEBHOOK_ALLOWED_HOSTS does not allow: not tried again
)

func webhookDeliveries() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Subsystem: "webhook", Name: "deliveries_total",
		Help: "Webhook delivery attempts by outcome (delivered, retry, rejected, expired, refused).",
	}, []string{"outcome"})
}

// WebhookDelivery records one webhook delivery attempt's outcome.
func (m *Metrics) WebhookDelivery(outcome string) {
	if m == nil {
		return
	}
	m.WebhookDeliveries.WithLabelValues(outcome).Inc()
}
