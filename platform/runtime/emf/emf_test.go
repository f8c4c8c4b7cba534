package emf_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/runtime/emf"
	"github.com/butakero/butakero/platform/testkit/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

// emfLine is what CloudWatch reads of a line: the _aws directive and the
// top-level members it names.
type emfLine struct {
	AWS struct {
		Timestamp         int64 `json:"Timestamp"`
		CloudWatchMetrics []struct {
			Namespace  string     `json:"Namespace"`
			Dimensions [][]string `json:"Dimensions"`
			Metrics    []struct {
				Name string `json:"Name"`
				Unit string `json:"Unit"`
			} `json:"Metrics"`
		} `json:"CloudWatchMetrics"`
	} `json:"_aws"`
	Fields map[string]any `json:"-"`
}

func parse(t *testing.T, b []byte) emfLine {
	t.Helper()
	var l emfLine
	if err := json.Unmarshal(b, &l); err != nil {
		t.Fatalf("line %q: %v", b, err)
	}
	if err := json.Unmarshal(b, &l.Fields); err != nil {
		t.Fatalf("line %q: %v", b, err)
	}
	return l
}

// TestEmitReadsTheConsumer publishes five video.resolved events, takes two
// of them without acking, and checks that the line says 3 pending + 2 ack
// pending = 5, as an EMF directive CloudWatch can read.
func TestEmitReadsTheConsumer(t *testing.T) {
	env := natstest.Start(t)
	ctx := context.Background()
	c, err := events.EnsureConsumer(ctx, env.JS, events.ConsumerFetcher, 3)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		e, err := events.New(events.NewID(), "dQw4w9WgXcQ", events.VideoResolved{Song: events.Song{ID: "dQw4w9WgXcQ"}})
		if err != nil {
			t.Fatal(err)
		}
		env.Publish(t, e)
	}
	batch, err := c.Fetch(2, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for range batch.Messages() {
	}
	// The server counts a consumer's pending messages as they arrive;
	// wait until it has counted them all.
	for deadline := time.Now().Add(5 * time.Second); ; {
		info, err := c.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.NumPending == 3 && info.NumAckPending == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer info: %d pending, %d ack pending; want 3 and 2", info.NumPending, info.NumAckPending)
		}
		time.Sleep(10 * time.Millisecond)
	}

	var out bytes.Buffer
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	e := &emf.Emitter{
		JS: env.JS, Stream: events.StreamName, Consumer: events.ConsumerFetcher,
		Deployment: "prod", Service: "fetcher", W: &out, Now: func() time.Time { return now },
	}
	if err := e.Emit(ctx); err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSuffix(out.Bytes(), []byte("\n")), []byte("\n"))
	if len(lines) != 1 {
		t.Fatalf("want one line, got %q", out.String())
	}
	l := parse(t, lines[0])

	if l.AWS.Timestamp != now.UnixMilli() {
		t.Errorf("Timestamp = %d, want %d", l.AWS.Timestamp, now.UnixMilli())
	}
	if len(l.AWS.CloudWatchMetrics) != 1 {
		t.Fatalf("CloudWatchMetrics = %+v, want one directive", l.AWS.CloudWatchMetrics)
	}
	d := l.AWS.CloudWatchMetrics[0]
	if d.Namespace != emf.Namespace {
		t.Errorf("Namespace = %q, want %q", d.Namespace, emf.Namespace)
	}
	if len(d.Dimensions) != 1 || len(d.Dimensions[0]) != 2 ||
		d.Dimensions[0][0] != emf.DimensionDeployment || d.Dimensions[0][1] != emf.DimensionConsumer {
		t.Errorf("Dimensions = %v, want [[%s %s]]", d.Dimensions, emf.DimensionDeployment, emf.DimensionConsumer)
	}
	if len(d.Metrics) != 1 || d.Metrics[0].Name != emf.MetricConsumerBacklog || d.Metrics[0].Unit != "Count" {
		t.Errorf("Metrics = %+v, want %s in Count", d.Metrics, emf.MetricConsumerBacklog)
	}
	// EMF takes each dimension's and metric's value from the top-level
	// member of that name; a missing one drops the metric silently.
	want := map[string]any{
		emf.DimensionDeployment:   "prod",
		emf.DimensionConsumer:     "fetcher",
		emf.MetricConsumerBacklog: float64(5),
		"num_pending":             float64(3),
		"num_ack_pending":         float64(2),
		"service":                 "fetcher",
		"msg":                     "consumer backlog",
	}
	for k, v := range want {
		if got, ok := l.Fields[k]; !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, v)
		}
	}
}

// TestRunSkipsAMissingConsumer: before the service has created its
// consumer there is nothing to read, and no line (no guessed zero) is
// written; once it exists, lines follow each interval until ctx ends.
func TestRunSkipsAMissingConsumer(t *testing.T) {
	env := natstest.Start(t)
	out := &syncBuffer{}
	e := &emf.Emitter{
		JS: env.JS, Stream: events.StreamName, Consumer: events.ConsumerEncoder,
		Deployment: "dev", W: out, Interval: 20 * time.Millisecond,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()

	time.Sleep(100 * time.Millisecond)
	if n := out.lines(); n != 0 {
		t.Fatalf("%d lines before the consumer exists, want none", n)
	}
	if _, err := events.EnsureConsumer(context.Background(), env.JS, events.ConsumerEncoder, 3); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for out.lines() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if out.lines() < 2 {
		t.Fatalf("%d lines after the consumer exists, want at least 2", out.lines())
	}
	first, _, _ := bytes.Cut(out.bytes(), []byte("\n"))
	if l := parse(t, first); l.Fields[emf.MetricConsumerBacklog] != float64(0) || l.Fields[emf.DimensionConsumer] != "encoder" {
		t.Errorf("first line %s: want backlog 0 of encoder", first)
	}
}
