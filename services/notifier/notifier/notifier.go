// Package notifier is Butakero's webhook sender: every final outcome of
// an operation (upload.done, operation.failed, operation.cancelled) is
// POSTed once to each WEBHOOK_URL as JSON, signed the way the Standard
// Webhooks specification says (webhook-id, webhook-timestamp,
// webhook-signature "v1,<base64 HMAC-SHA256 of id.timestamp.body>"), so
// that its verifier libraries work unchanged.
//
// Delivery is durable. Each URL has a durable JetStream consumer of its
// own ("notifier-<hash of the URL>") on the final events' subjects, so one
// receiver's failures never hold another's deliveries back (the consumer of
// a URL removed from WEBHOOK_URL is deleted at the next start):
//
//   - a 2xx answer acks the message (with the server's confirmation);
//   - a 5xx, a 408, a 429, a timeout or a network failure naks it with a
//     delay that doubles from one second up to an hour (or the receiver's
//     Retry-After, within an hour), for as long as the event is younger
//     than WEBHOOK_MAX_AGE; the delay lives in the consumer's state, so a
//     restart of Butakero mid-retry loses nothing and tries again when due;
//   - any other 4xx, and a redirect or an address WEBHOOK_ALLOWED_HOSTS
//     does not allow, terminates it: the receiver refused it;
//   - an event older than WEBHOOK_MAX_AGE is terminated untried.
//
// Every try of one delivery carries the same webhook-id ("msg_" and the
// event's id) and the same body; only webhook-timestamp and the signature
// change, as the specification asks. The one case that delivers twice is
// a crash between the receiver's 2xx and the ack: receivers deduplicate by
// webhook-id, as the specification recommends.
//
// An operation's first final event is its outcome (the projection's
// rule): a second one (an upload.done stored a moment after a cancel) is
// acked without a delivery. The consumers start at the events stored
// after their creation (DeliverNew): enabling webhooks on a deployment
// with a long history does not replay it to the receivers.
package notifier

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/runtime/config"
	"github.com/butakero/butakero/platform/runtime/metrics"
	"github.com/butakero/butakero/platform/runtime/stage"
	"github.com/butakero/butakero/platform/runtime/workers"
	"github.com/nats-io/nats.go/jetstream"
)

// Deps is what Run needs. JS and Log are required.
type Deps struct {
	// JS holds the event stream (created beforehand, events.EnsureStream).
	JS jetstream.JetStream
	// Config gives Webhooks (WEBHOOK_*), StreamReplicas and ShutdownGrace.
	Config config.Config
	Log    *slog.Logger
	// Metrics counts deliveries by outcome; nil counts nothing.
	Metrics *metrics.Metrics
	// Concurrency is how many deliveries run at once per URL; 0 means
	// DefaultConcurrency.
	Concurrency int
}

// DefaultConcurrency is how many deliveries to one URL run at once.
const DefaultConcurrency = 4

// Tuning of the consumers and of one try.
const (
	// ackWait outlives one try (tryTimeout) with room to ack.
	ackWait    = time.Minute
	tryTimeout = 15 * time.Second
	ackTimeout = 10 * time.Second
	// maxDelay caps the delay between two tries.
	maxDelay = time.Hour
	// releaseDelay hands back a try cut short by a shutdown; a delayed
	// Nak is kept in the consumer's state across a restart.
	releaseDelay = time.Second
)

// ConsumerName is the durable consumer of deliveries to url:
// consumerPrefix and 16 hex digits of the URL's SHA-256.
func ConsumerName(url string) string {
	sum := sha256.Sum256([]byte(url))
	return consumerPrefix + hex.EncodeToString(sum[:8])
}

// consumerPrefix and consumerDescription mark the notifier's own
// consumers: removeStale deletes no other.
const (
	consumerPrefix      = "notifier-"
	consumerDescription = "Butakero webhooks to one WEBHOOK_URL"
)

// ownConsumer reports whether a consumer is one ConsumerName named and Run
// created: the prefix, 16 lowercase hex digits, and its description.
func ownConsumer(name, description string) bool {
	id, ok := strings.CutPrefix(name, consumerPrefix)
	if !ok || len(id) != 16 || description != consumerDescription {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil && strings.ToLower(id) == id
}

// removeStale deletes the notifier's consumers whose URL is no longer
// configured (urls): a WEBHOOK_URL removed leaves no consumer behind,
// holding its undelivered events and showing in the stream's pending
// counts. Only consumers ownConsumer recognises are deleted. A failure is
// logged, not returned: a stale consumer costs no delivery. Every process
// must have the same WEBHOOK_URL: a process started with fewer URLs
// deletes the consumers of the others' extra ones, and their deliveries
// end with an error.
func removeStale(ctx context.Context, js jetstream.JetStream, stream jetstream.Stream, urls []string, log *slog.Logger) {
	keep := make(map[string]bool, len(urls))
	for _, u := range urls {
		keep[ConsumerName(u)] = true
	}
	lister := stream.ListConsumers(ctx)
	var stale []string
	for info := range lister.Info() {
		if ownConsumer(info.Name, info.Config.Description) && !keep[info.Name] {
			stale = append(stale, info.Name)
		}
	}
	if err := lister.Err(); err != nil {
		log.Warn("notifier: the stream's consumers could not be listed; stale ones are left", "error", err)
		return
	}
	for _, name := range stale {
		if err := js.DeleteConsumer(ctx, events.StreamName, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			log.Warn("notifier: a consumer of a removed WEBHOOK_URL could not be deleted", "consumer", name, "error", err)
			continue
		}
		log.Info("notifier: deleted the consumer of a WEBHOOK_URL no longer configured", "consumer", name)
	}
}

// FilterSubjects are the subjects whose events end an operation.
func FilterSubjects() []string {
	subjects := make([]string, 0, len(events.FinalKinds))
	for _, k := range events.FinalKinds {
		subjects = append(subjects, events.Subject(k, "*"))
	}
	return subjects
}

// Run delivers until ctx is cancelled, then stops taking messages and lets
// the tries in flight end within Config.ShutdownGrace (a try cut short is
// handed back and tried again). It first deletes its consumers of URLs no
// longer configured (removeStale). Without WEBHOOK_URL it then does
// nothing but wait for ctx. It returns nil after a clean stop.
func Run(ctx context.Context, d Deps) error {
	if d.JS == nil || d.Log == nil {
		return errors.New("notifier: Deps.JS and Deps.Log are required")
	}
	wh := d.Config.Webhooks
	// Registered with or without URLs, so that the series an alert reads
	// exist on every process.
	nm := newNotifierMetrics(d.Metrics)
	stream, err := d.JS.Stream(ctx, events.StreamName)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		if !wh.Enabled() {
			// Nothing to deliver; only the clean-up is missed.
			d.Log.Warn("notifier: the stream could not be read; stale webhook consumers are left", "error", err)
			<-ctx.Done()
			return nil
		}
		return fmt.Errorf("notifier: %w", err)
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	removeStale(rctx, d.JS, stream, wh.URLs, d.Log)
	cancel()
	if !wh.Enabled() {
		d.Log.Info("notifier: no WEBHOOK_URL; no notifications")
		<-ctx.Done()
		return nil
	}
	n := d.Concurrency
	if n <= 0 {
		n = DefaultConcurrency
	}
	var eps []*endpoint
	for _, url := range wh.URLs {
		cons, err := d.JS.CreateOrUpdateConsumer(ctx, events.StreamName, jetstream.ConsumerConfig{
			Durable:        ConsumerName(url),
			Description:    consumerDescription,
			AckPolicy:      jetstream.AckExplicitPolicy,
			AckWait:        ackWait,
			DeliverPolicy:  jetstream.DeliverNewPolicy,
			FilterSubjects: FilterSubjects(),
			MaxDeliver:     -1,
			MaxAckPending:  256,
			Replicas:       max(d.Config.StreamReplicas, 1),
		})
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("notifier: consumer for a WEBHOOK_URL: %w", err)
		}
		eps = append(eps, &endpoint{url: url, key: wh.Key, maxAge: wh.MaxAge, client: newClient(wh.AllowedHosts),
			stream: stream, cons: cons, metrics: nm, log: d.Log.With("webhook", redacted(url))})
	}
	d.Log.Info("notifier: running", "urls", len(wh.URLs), "max_age", wh.MaxAge.String(), "concurrency", n)
	// work outlives ctx by the grace period so tries in flight can end.
	work, cancelWork := workers.Grace(ctx, max(d.Config.ShutdownGrace, time.Second))
	defer cancelWork()
	// n loops on each URL's consumer.
	return workers.Run(len(eps)*n, func(i int) error { return eps[i/n].loop(ctx, work) })
}

// endpoint delivers to one URL from its consumer.
type endpoint struct {
	url     string
	key     []byte
	maxAge  time.Duration
	client  *http.Client
	stream  jetstream.Stream
	cons    jetstream.Consumer
	metrics *notifierMetrics
	log     *slog.Logger
}

// loop takes one message at a time until ctx ends.
func (e *endpoint) loop(ctx, work context.Context) error {
	for {
		msg, err := stage.Next(ctx, e.cons, e.log, "notifier: next message")
		if err != nil {
			return fmt.Errorf("notifier: %w", err)
		}
		if msg == nil {
			return nil
		}
		e.handle(ctx, work, msg)
	}
}

// handle makes one try of one message's delivery and ends the message.
func (e *endpoint) handle(ctx, work context.Context, msg jetstream.Msg) {
	env, ev, err := events.Decode(msg.Data())
	if err != nil {
		e.log.Error("notifier: terminating undecodable message", "subject", msg.Subject(), "error", err)
		_ = msg.TermWithReason("undecodable")
		return
	}
	attempt, seq, stored := 1, uint64(0), env.Time
	if md, err := msg.Metadata(); err == nil {
		attempt, seq, stored = int(md.NumDelivered), md.Sequence.Stream, md.Timestamp
	}
	log := e.log.With("operation_id", env.OperationID, "song_id", env.SongID, "event_id", env.ID, "attempt", attempt)
	p, ok := payloadOf(env, ev, stored)
	if !ok {
		_ = msg.Ack()
		return
	}
	if age := time.Since(stored); age > e.maxAge {
		e.metrics.WebhookDelivery(WebhookExpired)
		log.Error("notifier: giving the delivery up: WEBHOOK_MAX_AGE passed", "age", age.Round(time.Second))
		_ = msg.TermWithReason("expired")
		return
	}
	if first, err := e.firstFinal(work, env.OperationID, seq); err != nil {
		log.Warn("notifier: the operation's history is unreadable; trying later", "error", err)
		_ = msg.NakWithDelay(backoff(attempt))
		return
	} else if !first {
		log.Info("notifier: the operation had ended already; no delivery for this event", "type", env.Type)
		e.ack(ctx, msg, log)
		return
	}

	res := e.try(work, "msg_"+env.ID, p.body())
	switch {
	case res.err == nil && res.status >= 200 && res.status < 300:
		e.metrics.WebhookDelivery(WebhookDelivered)
		log.Info("notifier: delivered", "status", res.status, "type", p.Type)
		e.ack(ctx, msg, log)
	case work.Err() != nil:
		// Shut down mid-try: the message comes back after the restart.
		_ = msg.NakWithDelay(releaseDelay)
	case res.refused:
		e.metrics.WebhookDelivery(WebhookRefused)
		log.Error("notifier: delivery refused by WEBHOOK_ALLOWED_HOSTS; not retried", "error", res.err)
		_ = msg.TermWithReason("refused")
	case res.err == nil && !retryable(res.status):
		e.metrics.WebhookDelivery(WebhookRejected)
		log.Error("notifier: the receiver rejected the delivery; not retried", "status", res.status)
		_ = msg.TermWithReason(fmt.Sprintf("rejected: HTTP %d", res.status))
	default:
		delay := backoff(attempt)
		if res.retryAfter > 0 {
			delay = min(res.retryAfter, maxDelay)
		}
		// The last try is due no later than WEBHOOK_MAX_AGE.
		if left := e.maxAge - time.Since(stored); delay > left {
			delay = max(left, releaseDelay)
		}
		e.metrics.WebhookDelivery(WebhookRetry)
		log.Warn("notifier: delivery failed; will retry", "status", res.status, "error", res.err, "retry_in", delay)
		_ = msg.NakWithDelay(delay)
	}
}

// ack acks msg with the server's confirmation, so that a restart does not
// deliver it again.
func (e *endpoint) ack(ctx context.Context, msg jetstream.Msg, log *slog.Logger) {
	ackCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ackTimeout)
	defer cancel()
	if err := msg.DoubleAck(ackCtx); err != nil {
		log.Warn("notifier: ack", "error", err)
	}
}

// firstFinal reports whether no other final event of operation opID is in
// the stream before sequence seq: the event at seq is the operation's
// outcome. Each final kind's first message is read by its exact subject.
func (e *endpoint) firstFinal(ctx context.Context, opID string, seq uint64) (bool, error) {
	if seq == 0 {
		return true, nil
	}
	ctx, cancel := context.WithTimeout(ctx, ackTimeout)
	defer cancel()
	for _, k := range events.FinalKinds {
		m, err := e.stream.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(events.Subject(k, opID)))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return false, err
		}
		if m.Sequence < seq {
			return false, nil
		}
	}
	return true, nil
}

// retryable reports whether a delivery answered with status is tried
// again: a 5xx, 408 (timeout) or 429 (slow down). Any other status that
// is not a 2xx is the receiver's refusal.
func retryable(status int) bool {
	return status >= 500 || status == http.StatusRequestTimeout || status == http.StatusTooManyRequests
}

// backoff is the delay after try attempt: 1s, 2s, 4s… up to an hour.
func backoff(attempt int) time.Duration {
	return min(time.Second<<min(max(attempt-1, 0), 12), maxDelay)
}
