package metrics

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// ConsumerSource looks up a stream's durable consumer; jetstream.JetStream
// is one.
type ConsumerSource interface {
	Consumer(ctx context.Context, stream, consumer string) (jetstream.Consumer, error)
}

// lagTimeout bounds the consumer-info requests of one scrape.
const lagTimeout = 2 * time.Second

var (
	pendingDesc = prometheus.NewDesc(Namespace+"_consumer_pending_messages",
		"Messages in the stream the durable consumer has not yet been delivered (JetStream num_pending): its lag.",
		[]string{"stream", "consumer"}, nil)
	ackPendingDesc = prometheus.NewDesc(Namespace+"_consumer_ack_pending_messages",
		"Messages delivered to the durable consumer and not yet acknowledged (JetStream num_ack_pending).",
		[]string{"stream", "consumer"}, nil)
	redeliveredDesc = prometheus.NewDesc(Namespace+"_consumer_redelivered_messages",
		"Messages the durable consumer is redelivering (JetStream num_redelivered).",
		[]string{"stream", "consumer"}, nil)
)

// WatchConsumers registers a collector that reports, at each scrape, the
// lag of the named durable consumers of stream, read from JetStream's
// consumer info. A consumer that does not exist yet, or does not answer
// within a short timeout, is left out of that scrape. Only the first call
// on a Metrics registers anything: every process exports each consumer
// once, whichever component asks.
func (m *Metrics) WatchConsumers(js ConsumerSource, stream string, consumers ...string) {
	if m == nil {
		return
	}
	m.lagOnce.Do(func() {
		m.reg.MustRegister(&lagCollector{js: js, stream: stream, consumers: consumers})
	})
}

type lagCollector struct {
	js        ConsumerSource
	stream    string
	consumers []string
}

func (l *lagCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- pendingDesc
	ch <- ackPendingDesc
	ch <- redeliveredDesc
}

func (l *lagCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), lagTimeout)
	defer cancel()
	for _, name := range l.consumers {
		c, err := l.js.Consumer(ctx, l.stream, name)
		if err != nil {
			continue
		}
		info := c.CachedInfo()
		if info == nil {
			continue
		}
		ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(info.NumPending), l.stream, name)
		ch <- prometheus.MustNewConstMetric(ackPendingDesc, prometheus.GaugeValue, float64(info.NumAckPending), l.stream, name)
		ch <- prometheus.MustNewConstMetric(redeliveredDesc, prometheus.GaugeValue, float64(info.NumRedelivered), l.stream, name)
	}
}
