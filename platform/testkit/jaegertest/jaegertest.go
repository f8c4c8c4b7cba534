// Package jaegertest runs a real Jaeger v2 (the OpenTelemetry
// Collector-based jaeger binary, with its in-memory store) for tests that
// check what a trace backend receives: it takes OTLP over HTTP and gRPC and
// answers its query API, every port on loopback.
//
// The binary is named by BUTAKERO_JAEGER; the test command (make test,
// scripts/test.sh) builds it into .tools/bin and sets it.
package jaegertest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/butakero/butakero/platform/testkit/loopback"
)

// EnvJaeger names the jaeger binary.
const EnvJaeger = "BUTAKERO_JAEGER"

// Jaeger is one running jaeger process.
type Jaeger struct {
	// OTLPHTTP is the base URL of its OTLP/HTTP receiver
	// (OTEL_EXPORTER_OTLP_ENDPOINT for http/protobuf), OTLPGRPC that of
	// its OTLP/gRPC receiver.
	OTLPHTTP, OTLPGRPC string
	// Query is the base URL of its query API (/api/traces/<id>).
	Query string
	logs  *buffer
}

// config is Jaeger's collector configuration: OTLP in, the memory store,
// the query API; no other receiver, extension or telemetry port.
const config = `service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 10000
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: %s
    grpc:
      endpoint: %s
receivers:
  otlp:
    protocols:
      http:
        endpoint: %s
      grpc:
        endpoint: %s
processors:
  batch:
    timeout: 100ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
`

// Start runs jaeger until the test ends and returns once its query API
// answers. It fails the test when BUTAKERO_JAEGER is unset or the binary
// does not start.
func Start(t testing.TB) *Jaeger {
	t.Helper()
	return start(t, loopback.Addr(t), loopback.Addr(t))
}

// StartOnDefaultPorts is Start with the OTLP receivers on the ports an
// OpenTelemetry SDK sends to when nothing says where (127.0.0.1:4318 for
// HTTP, :4317 for gRPC): a test that nothing is exported by default
// listens there.
func StartOnDefaultPorts(t testing.TB) *Jaeger {
	t.Helper()
	return start(t, "127.0.0.1:4318", "127.0.0.1:4317")
}

func start(t testing.TB, otlpHTTP, otlpGRPC string) *Jaeger {
	t.Helper()
	bin := os.Getenv(EnvJaeger)
	if bin == "" {
		t.Fatalf("%s is not set: run make test (scripts/test.sh), which builds jaeger into .tools/bin and sets it", EnvJaeger)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s: %v (run make test, which builds it)", EnvJaeger, err)
	}
	query, queryGRPC := loopback.Addr(t), loopback.Addr(t)
	conf := filepath.Join(t.TempDir(), "jaeger.yaml")
	if err := os.WriteFile(conf, fmt.Appendf(nil, config, query, queryGRPC, otlpHTTP, otlpGRPC), 0o600); err != nil {
		t.Fatal(err)
	}
	j := &Jaeger{OTLPHTTP: "http://" + otlpHTTP, OTLPGRPC: "http://" + otlpGRPC, Query: "http://" + query, logs: &buffer{}}
	cmd := exec.Command(bin, "--config", conf)
	cmd.Stdout, cmd.Stderr = j.logs, j.logs
	// Jaeger traces itself through the OpenTelemetry SDK, to
	// localhost:4317 by default: not in a test.
	cmd.Env = append(os.Environ(), "OTEL_SDK_DISABLED=true", "OTEL_TRACES_EXPORTER=none")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start jaeger: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("jaeger's log:\n%s", j.logs.String())
		}
	})
	client := &http.Client{Timeout: 2 * time.Second}
	for deadline := time.Now().Add(2 * time.Minute); ; {
		select {
		case <-exited:
			t.Fatalf("jaeger exited at start:\n%s", j.logs.String())
		default:
		}
		if resp, err := client.Get(j.Query + "/api/services"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && portOpen(otlpHTTP) {
				return j
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("jaeger's query API did not answer within 2m:\n%s", j.logs.String())
		}
		<-time.After(100 * time.Millisecond)
	}
}

// Span is one span of a trace as Jaeger's query API returns it.
type Span struct {
	TraceID, SpanID string
	// ParentID is the span's CHILD_OF reference, "" for a root.
	ParentID string
	Name     string
	// Service is the service.name of the process that sent it.
	Service string
	// Tags are the span's attributes (and otel.status_code, error…).
	Tags map[string]any
	// Logs are its events' fields (an exception's message…).
	Logs []map[string]any
	// Start is when it started.
	Start time.Time
}

// Error reports whether the span's status is Error.
func (s Span) Error() bool {
	v, _ := s.Tags["error"].(bool)
	return v || s.Tags["otel.status_code"] == "ERROR"
}

// Tag is the span's attribute key as a string ("" when absent).
func (s Span) Tag(key string) string {
	v, ok := s.Tags[key]
	if !ok {
		return ""
	}
	if str, ok := v.(string); ok {
		return str
	}
	return fmt.Sprint(v)
}

// Trace returns the spans Jaeger holds of traceID (32 hex digits); none
// when it holds none yet.
func (j *Jaeger) Trace(ctx context.Context, traceID string) ([]Span, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.Query+"/api/traces/"+traceID, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, nil
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jaeger: GET /api/traces/%s: HTTP %d", traceID, resp.StatusCode)
	}
	var body struct {
		Data []struct {
			Spans []struct {
				TraceID       string `json:"traceID"`
				SpanID        string `json:"spanID"`
				OperationName string `json:"operationName"`
				References    []struct {
					RefType string `json:"refType"`
					SpanID  string `json:"spanID"`
				} `json:"references"`
				StartTime int64 `json:"startTime"` // µs
				Tags      []kv  `json:"tags"`
				Logs      []struct {
					Fields []kv `json:"fields"`
				} `json:"logs"`
				ProcessID string `json:"processID"`
			} `json:"spans"`
			Processes map[string]struct {
				ServiceName string `json:"serviceName"`
			} `json:"processes"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("jaeger: decode trace: %w", err)
	}
	var spans []Span
	for _, tr := range body.Data {
		for _, s := range tr.Spans {
			sp := Span{TraceID: s.TraceID, SpanID: s.SpanID, Name: s.OperationName,
				Service: tr.Processes[s.ProcessID].ServiceName, Tags: map[string]any{},
				Start: time.UnixMicro(s.StartTime)}
			for _, r := range s.References {
				if r.RefType == "CHILD_OF" {
					sp.ParentID = r.SpanID
				}
			}
			for _, t := range s.Tags {
				sp.Tags[t.Key] = t.Value
			}
			for _, l := range s.Logs {
				fields := map[string]any{}
				for _, f := range l.Fields {
					fields[f.Key] = f.Value
				}
				sp.Logs = append(sp.Logs, fields)
			}
			spans = append(spans, sp)
		}
	}
	return spans, nil
}

type kv struct {
	Key   string `json:"key"`
	Value any    `json:"value"`
}

// WaitTrace polls traceID until done says its spans are complete, and
// returns them; it fails the test after within, showing what arrived.
func (j *Jaeger) WaitTrace(t testing.TB, traceID string, within time.Duration, done func([]Span) bool) []Span {
	t.Helper()
	deadline := time.Now().Add(within)
	var spans []Span
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		got, err := j.Trace(ctx, traceID)
		cancel()
		if err == nil {
			spans = got
			if done(spans) {
				return spans
			}
		}
		if time.Now().After(deadline) {
			var names []string
			for _, s := range spans {
				names = append(names, s.Service+"/"+s.Name)
			}
			t.Fatalf("trace %s incomplete after %s (last error %v); spans: %v", traceID, within, err, names)
		}
		<-time.After(200 * time.Millisecond)
	}
}

func portOpen(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// buffer is a bytes.Buffer safe for the process's two writers.
type buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
