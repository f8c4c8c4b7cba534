package config_test

import (
	"testing"
	"time"

	"github.com/butakero/butakero/platform/runtime/config"
)

func TestLoadTracing(t *testing.T) {
	cases := []struct {
		name    string
		env     map[string]string
		want    config.Tracing // compared field by field below
		wantErr string
	}{
		{name: "unset: off", env: nil,
			want: config.Tracing{Protocol: "http/protobuf", Sampler: "parentbased_always_on", SamplerRatio: 1, Timeout: 10 * time.Second}},
		{name: "endpoint: http/protobuf to /v1/traces", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"},
			want: config.Tracing{Endpoint: "http://collector:4318/v1/traces", Insecure: true, Protocol: "http/protobuf",
				Sampler: "parentbased_always_on", SamplerRatio: 1, Timeout: 10 * time.Second}},
		{name: "grpc endpoint as given, TLS", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector:4317",
			"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TIMEOUT": "2500", "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip"},
			want: config.Tracing{Endpoint: "https://collector:4317", Protocol: "grpc", Compression: "gzip",
				Sampler: "parentbased_always_on", SamplerRatio: 1, Timeout: 2500 * time.Millisecond}},
		{name: "traces endpoint wins, as given", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318",
			"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://b:4318/custom", "OTEL_SERVICE_NAME": "bk",
			"OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod,team=audio%20ops", "OTEL_EXPORTER_OTLP_HEADERS": "api-key=s3cr%3Dt",
			"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"},
			want: config.Tracing{Endpoint: "http://b:4318/custom", Insecure: true, Protocol: "http/protobuf", ServiceName: "bk",
				Sampler: "parentbased_traceidratio", SamplerRatio: 0.25, Timeout: 10 * time.Second,
				ResourceAttributes: map[string]string{"deployment.environment": "prod", "team": "audio ops"},
				Headers:            map[string]string{"api-key": "s3cr=t"}}},
		{name: "OTEL_SDK_DISABLED", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_SDK_DISABLED": "true"},
			want: config.Tracing{Protocol: "http/protobuf", Sampler: "parentbased_always_on", SamplerRatio: 1, Timeout: 10 * time.Second}},
		{name: "OTEL_TRACES_EXPORTER=none", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_TRACES_EXPORTER": "none"},
			want: config.Tracing{Protocol: "http/protobuf", Sampler: "parentbased_always_on", SamplerRatio: 1, Timeout: 10 * time.Second}},
		{name: "bad protocol", env: map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, wantErr: "OTEL_EXPORTER_OTLP_PROTOCOL"},
		{name: "endpoint without scheme", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4317"}, wantErr: "OTEL_EXPORTER_OTLP_ENDPOINT"},
		{name: "bad sampler", env: map[string]string{"OTEL_TRACES_SAMPLER": "jaeger_remote"}, wantErr: "OTEL_TRACES_SAMPLER"},
		{name: "bad ratio", env: map[string]string{"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"}, wantErr: "OTEL_TRACES_SAMPLER_ARG"},
		{name: "bad timeout", env: map[string]string{"OTEL_EXPORTER_OTLP_TIMEOUT": "10s"}, wantErr: "OTEL_EXPORTER_OTLP_TIMEOUT"},
		{name: "bad headers", env: map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "novalue"}, wantErr: "OTEL_EXPORTER_OTLP_HEADERS"},
		{name: "client certificate without key", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://a:4318",
			"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": "/c.pem"}, wantErr: "OTEL_EXPORTER_OTLP_CLIENT_KEY"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, ok := load(t, tc.env, tc.wantErr)
			if !ok {
				return
			}
			got, want := c.Tracing, tc.want
			if got.Endpoint != want.Endpoint || got.Protocol != want.Protocol || got.Insecure != want.Insecure ||
				got.Compression != want.Compression || got.Timeout != want.Timeout || got.ServiceName != want.ServiceName ||
				got.Sampler != want.Sampler || got.SamplerRatio != want.SamplerRatio || !sameMap(got.Headers, want.Headers) ||
				!sameMap(got.ResourceAttributes, want.ResourceAttributes) {
				t.Errorf("Tracing = %+v\nwant      %+v", got, want)
			}
			if got.Enabled() != (want.Endpoint != "") {
				t.Errorf("Enabled() = %v with endpoint %q", got.Enabled(), got.Endpoint)
			}
		})
	}
}

func sameMap(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
