// Package emf reports a stage's consumer backlog to CloudWatch with no
// agent or sidecar: a JSON line in CloudWatch's Embedded Metric Format
// (EMF), written to the process's log, which the awslogs driver ships to
// CloudWatch Logs, which extracts the metric from it.
//
// deploy/ecs target-tracks each stage service on this metric divided by
// its running tasks; its tests read the names below, so the Terraform and
// the emitter cannot drift apart.
package emf

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The metric's names. The Terraform's scaling policies read exactly these.
const (
	// Namespace is the CloudWatch namespace of every Butakero metric.
	Namespace = "Butakero"
	// MetricConsumerBacklog is a durable consumer's backlog: messages not
	// yet delivered (JetStream num_pending) plus messages delivered and not
	// yet acknowledged (num_ack_pending), so work in progress counts too.
	MetricConsumerBacklog = "ConsumerBacklog"
	// DimensionDeployment names the deployment (METRICS_DEPLOYMENT: dev,
	// prod), so stages sharing an account and region do not mix.
	DimensionDeployment = "Deployment"
	// DimensionConsumer names the durable consumer (events.ConsumerFetcher…).
	DimensionConsumer = "Consumer"
	// MetricYTDLPAge is how many days old the yt-dlp release a service runs
	// is (versions.YTDLP.AgeAt), by Deployment and Service: past 90,
	// YouTube downloads likely fail.
	MetricYTDLPAge = "YtDlpAgeDays"
	// DimensionService names the service (fetcher, resolver).
	DimensionService = "Service"
)

// DefaultInterval is how often Run emits: twice within CloudWatch's
// one-minute period, so every period has a value even when one line is
// late.
const DefaultInterval = 30 * time.Second

// infoTimeout bounds one consumer-info request.
const infoTimeout = 5 * time.Second

// ConsumerSource looks up a stream's durable consumer; jetstream.JetStream
// is one.
type ConsumerSource interface {
	Consumer(ctx context.Context, stream, consumer string) (jetstream.Consumer, error)
}

// Emitter writes one EMF line per Interval for one durable consumer. Its
// fields are set before Run and not changed after.
type Emitter struct {
	// JS reads the consumer's info. Required.
	JS ConsumerSource
	// Stream and Consumer name the durable consumer. Required.
	Stream, Consumer string
	// Parts, when set, are the consumers on Stream whose backlogs add up
	// to Consumer's: the recorder's lanes (events.LaneConsumers), reported
	// as one "recorder" backlog, or the encoder's encodes and loudness
	// measures, as one "encoder" backlog. A line is written only when
	// every part could be read.
	Parts []string
	// Deployment is the Deployment dimension's value. Required.
	Deployment string
	// Service is the "service" attribute of the line, as the process's
	// other log lines carry it.
	Service string
	// W receives the lines, one Write each. Share the *os.File the logger
	// writes to (os.Stderr): concurrent Writes on one *os.File do not
	// interleave, so the lines stay whole among the log's.
	W io.Writer
	// Interval between lines; 0 means DefaultInterval.
	Interval time.Duration
	// Log gets the failures to read the consumer (at debug: a consumer
	// that does not exist yet is normal at start); nil means none.
	Log *slog.Logger
	// Now is the clock of the lines' timestamps; nil means time.Now.
	Now func() time.Time
	// YTDLPAge, when set, is yt-dlp's age in days (ok false while unknown):
	// each tick then also writes an AgeLine.
	YTDLPAge func(now time.Time) (days int, ok bool)
}

// Run emits a line at once and then every Interval until ctx is done. A
// consumer that cannot be read gives no line for that tick rather than a
// guessed value. Until the first line, Run tries every second (at most
// every Interval): the service creates its consumer just after start. It
// returns nil when ctx is done.
func (e *Emitter) Run(ctx context.Context) error {
	every := e.Interval
	if every <= 0 {
		every = DefaultInterval
	}
	first := min(time.Second, every)
	emitted := false
	for {
		wait := every
		if err := e.Emit(ctx); err != nil {
			if ctx.Err() == nil && e.Log != nil {
				e.Log.Debug("consumer backlog not emitted", "consumer", e.Consumer, "error", err)
			}
			if !emitted {
				wait = first
			}
		} else {
			emitted = true
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// Emit reads the consumer's info (or its parts') and writes one line.
func (e *Emitter) Emit(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, infoTimeout)
	defer cancel()
	parts := e.Parts
	if len(parts) == 0 {
		parts = []string{e.Consumer}
	}
	var pending, ackPending uint64
	for _, name := range parts {
		c, err := e.JS.Consumer(ctx, e.Stream, name)
		if err != nil {
			return fmt.Errorf("emf: consumer %s: %w", name, err)
		}
		info, err := c.Info(ctx)
		if err != nil {
			return fmt.Errorf("emf: consumer %s info: %w", name, err)
		}
		pending += info.NumPending
		ackPending += uint64(info.NumAckPending)
	}
	now := time.Now
	if e.Now != nil {
		now = e.Now
	}
	line, err := Line(now(), e.Service, e.Deployment, e.Consumer, pending, ackPending)
	if err != nil {
		return err
	}
	if _, err := e.W.Write(line); err != nil {
		return err
	}
	if e.YTDLPAge != nil {
		if days, ok := e.YTDLPAge(now()); ok {
			line, err := AgeLine(now(), e.Service, e.Deployment, days)
			if err != nil {
				return err
			}
			_, err = e.W.Write(line)
			return err
		}
	}
	return nil
}

// AgeLine is the EMF log line of yt-dlp's age in days, by Deployment and
// Service.
func AgeLine(t time.Time, service, deployment string, days int) ([]byte, error) {
	return marshalLine(ageRecord{
		header:  newHeader(t, "yt-dlp age", metricDef{Name: MetricYTDLPAge, Unit: "None"}, DimensionDeployment, DimensionService),
		Service: service, Deployment: deployment, AgeDays: days,
	})
}

// ageRecord is AgeLine's line; the JSON names of Service, Deployment and
// AgeDays are the constants above.
type ageRecord struct {
	header
	Service    string `json:"Service"`
	Deployment string `json:"Deployment"`
	AgeDays    int    `json:"YtDlpAgeDays"`
}

// Line is the EMF log line for one reading of a consumer: a JSON object
// and a newline. Beside the metric it carries the two counts it adds up
// and the time, level and msg of the process's slog JSON lines.
func Line(t time.Time, service, deployment, consumer string, numPending, numAckPending uint64) ([]byte, error) {
	return marshalLine(record{
		header:        newHeader(t, "consumer backlog", metricDef{Name: MetricConsumerBacklog, Unit: "Count"}, DimensionDeployment, DimensionConsumer),
		Service:       service,
		Deployment:    deployment,
		Consumer:      consumer,
		Backlog:       numPending + numAckPending,
		NumPending:    numPending,
		NumAckPending: numAckPending,
	})
}

// record is one EMF line. The JSON names of Deployment, Consumer and
// Backlog must be the constants above: EMF reads a dimension's and a
// metric's value from the top-level member of that name.
type record struct {
	header
	Service       string `json:"service,omitempty"`
	Deployment    string `json:"Deployment"`
	Consumer      string `json:"Consumer"`
	Backlog       uint64 `json:"ConsumerBacklog"`
	NumPending    uint64 `json:"num_pending"`
	NumAckPending uint64 `json:"num_ack_pending"`
}

// header begins every line: the EMF directive of its one metric, by the
// dimensions named, and the time, level and msg of a slog JSON line.
type header struct {
	AWS struct {
		Timestamp         int64       `json:"Timestamp"`
		CloudWatchMetrics []directive `json:"CloudWatchMetrics"`
	} `json:"_aws"`
	Time  string `json:"time"`
	Level string `json:"level"`
	Msg   string `json:"msg"`
}

func newHeader(t time.Time, msg string, metric metricDef, dimensions ...string) header {
	h := header{Time: t.UTC().Format(time.RFC3339Nano), Level: "INFO", Msg: msg}
	h.AWS.Timestamp = t.UnixMilli()
	h.AWS.CloudWatchMetrics = []directive{{Namespace: Namespace, Dimensions: [][]string{dimensions}, Metrics: []metricDef{metric}}}
	return h
}

// marshalLine is rec as JSON and a newline.
func marshalLine(rec any) ([]byte, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("emf: %w", err)
	}
	return append(b, '\n'), nil
}

type directive struct {
	Namespace  string      `json:"Namespace"`
	Dimensions [][]string  `json:"Dimensions"`
	Metrics    []metricDef `json:"Metrics"`
}

type metricDef struct {
	Name string `json:"Name"`
	Unit string `json:"Unit"`
}
