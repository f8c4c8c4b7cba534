package emf_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/runtime/emf"
	"github.com/butakero/butakero/platform/testkit/natstest"
	"github.com/butakero/butakero/platform/testkit/wait"
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
	wait.Until(t, 5*time.Second, "consumer info", func() error {
		info, err := c.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.NumPending != 3 || info.NumAckPending != 2 {
			return fmt.Errorf("%d pending, %d ack pending; want 3 and 2", info.NumPending, info.NumAckPending)
		}
		return nil
	})

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
	out, log := &wait.Output{}, &wait.Output{}
	e := &emf.Emitter{
		JS: env.JS, Stream: events.StreamName, Consumer: events.ConsumerEncoder,
		Deployment: "dev", W: out, Interval: 20 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()

	// Two readings have found no consumer (Run logs each at debug level).
	if !log.Await(10*time.Second, func(s string) bool { return strings.Count(s, "consumer backlog not emitted") >= 2 }) {
		t.Fatalf("Run did not try twice to read the missing consumer; log:\n%s", log)
	}
	if n := out.Lines(); n != 0 {
		t.Fatalf("%d lines before the consumer exists, want none", n)
	}
	if _, err := events.EnsureConsumer(context.Background(), env.JS, events.ConsumerEncoder, 3); err != nil {
		t.Fatal(err)
	}
	twoLines := out.Await(10*time.Second, func(s string) bool { return strings.Count(s, "\n") >= 2 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !twoLines {
		t.Fatalf("%d lines after the consumer exists, want at least 2", out.Lines())
	}
	first, _, _ := bytes.Cut(out.Bytes(), []byte("\n"))
	if l := parse(t, first); l.Fields[emf.MetricConsumerBacklog] != float64(0) || l.Fields[emf.DimensionConsumer] != "encoder" {
		t.Errorf("first line %s: want backlog 0 of encoder", first)
	}
}

// TestAgeLine: with YTDLPAge, each tick also writes yt-dlp's age as a
// metric of its own, by Deployment and Service, after the backlog line.
func TestAgeLine(t *testing.T) {
	env := natstest.Start(t)
	ctx := context.Background()
	if _, err := events.EnsureConsumer(ctx, env.JS, events.ConsumerFetcher, 3); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	e := &emf.Emitter{JS: env.JS, Stream: events.StreamName, Consumer: events.ConsumerFetcher,
		Deployment: "prod", Service: "fetcher", W: &buf,
		YTDLPAge: func(time.Time) (int, bool) { return 91, true }}
	if err := e.Emit(ctx); err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	if len(lines) != 2 {
		t.Fatalf("%d lines, want the backlog's and the age's:\n%s", len(lines), buf.Bytes())
	}
	l := parse(t, lines[1])
	d := l.AWS.CloudWatchMetrics
	if len(d) != 1 || d[0].Namespace != emf.Namespace || len(d[0].Metrics) != 1 || d[0].Metrics[0].Name != emf.MetricYTDLPAge ||
		len(d[0].Dimensions) != 1 || len(d[0].Dimensions[0]) != 2 ||
		d[0].Dimensions[0][0] != emf.DimensionDeployment || d[0].Dimensions[0][1] != emf.DimensionService {
		t.Fatalf("directive %+v", d)
	}
	if l.Fields[emf.MetricYTDLPAge] != 91.0 || l.Fields[emf.DimensionDeployment] != "prod" || l.Fields[emf.DimensionService] != "fetcher" {
		t.Errorf("fields %v", l.Fields)
	}
}

// TestEmitAddsUpParts: the recorder reads its lanes, so its one backlog
// line is the sum of several consumers' (here the fetcher's five and the
// encoder's two), under the recorder's name.
func TestEmitAddsUpParts(t *testing.T) {
	env := natstest.Start(t)
	ctx := context.Background()
	var parts []jetstream.Consumer
	for _, name := range []string{events.ConsumerFetcher, events.ConsumerEncoder} {
		c, err := events.EnsureConsumer(ctx, env.JS, name, 3)
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, c)
	}
	for i := range 7 {
		var data events.Event = events.VideoResolved{Song: events.Song{ID: "dQw4w9WgXcQ"}}
		if i >= 5 {
			data = events.AudioDownloaded{Song: events.Song{ID: "dQw4w9WgXcQ"}, Key: "k", Size: 1}
		}
		e, err := events.New(events.NewID(), "dQw4w9WgXcQ", data)
		if err != nil {
			t.Fatal(err)
		}
		env.Publish(t, e)
	}
	wait.Until(t, 5*time.Second, "consumer info", func() error {
		var n uint64
		for _, c := range parts {
			info, err := c.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			n += info.NumPending
		}
		if n != 7 {
			return fmt.Errorf("%d pending, want 7", n)
		}
		return nil
	})

	var out bytes.Buffer
	e := &emf.Emitter{
		JS: env.JS, Stream: events.StreamName, Consumer: events.ConsumerRecorder,
		Parts:      []string{events.ConsumerFetcher, events.ConsumerEncoder},
		Deployment: "prod", Service: "recorder", W: &out,
	}
	if err := e.Emit(ctx); err != nil {
		t.Fatal(err)
	}
	l := parse(t, bytes.TrimSuffix(out.Bytes(), []byte("\n")))
	if got := l.Fields[emf.MetricConsumerBacklog]; got != float64(7) {
		t.Errorf("%s = %v, want 7", emf.MetricConsumerBacklog, got)
	}
	if got := l.Fields[emf.DimensionConsumer]; got != events.ConsumerRecorder {
		t.Errorf("%s = %v, want %s", emf.DimensionConsumer, got, events.ConsumerRecorder)
	}
}
