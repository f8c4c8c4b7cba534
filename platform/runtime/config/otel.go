package config

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Tracing is the OpenTelemetry trace export, read from the standard OTEL_*
// variables (the OpenTelemetry SDK specification's names and meanings), so
// that a collector is wired the way it is for any other service. Tracing is
// off, and nothing is exported, unless an OTLP endpoint is set.
//
// The variables read here are the ones an operator sets; the SDK's tuning
// knobs (OTEL_BSP_*, OTEL_ATTRIBUTE_*_LIMIT) keep their specified defaults.
type Tracing struct {
	// Endpoint is where spans go: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as
	// given, else OTEL_EXPORTER_OTLP_ENDPOINT (for http/protobuf with
	// "/v1/traces" appended, as the specification says). Empty: tracing off.
	Endpoint string
	// Protocol is "http/protobuf" (the default) or "grpc"
	// (OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL).
	Protocol string
	// Insecure is true for an http:// endpoint: no TLS.
	Insecure bool
	// Headers are sent with every export (OTEL_EXPORTER_OTLP_[TRACES_]HEADERS,
	// key=value pairs, URL-encoded values), e.g. a vendor's API key.
	Headers map[string]string
	// Timeout bounds one export (OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT, in
	// milliseconds; 10 s).
	Timeout time.Duration
	// Compression is "gzip" or "" (OTEL_EXPORTER_OTLP_[TRACES_]COMPRESSION).
	Compression string
	// Certificate is a PEM file of the CAs the collector's certificate is
	// checked against; ClientCertificate and ClientKey a client certificate
	// for a collector that verifies clients
	// (OTEL_EXPORTER_OTLP_[TRACES_]CERTIFICATE, _CLIENT_CERTIFICATE, _CLIENT_KEY).
	Certificate, ClientCertificate, ClientKey string
	// ServiceName is OTEL_SERVICE_NAME; empty means the component's own
	// name (butakero for the all-in-one, butakero-<service> alone).
	ServiceName string
	// ResourceAttributes are OTEL_RESOURCE_ATTRIBUTES' key=value pairs
	// (deployment.environment=prod,…).
	ResourceAttributes map[string]string
	// Sampler is OTEL_TRACES_SAMPLER (parentbased_always_on by default):
	// always_on, always_off, traceidratio or their parentbased_ forms;
	// SamplerRatio is OTEL_TRACES_SAMPLER_ARG for the ratio samplers (1).
	Sampler      string
	SamplerRatio float64
}

// Enabled reports whether spans are exported.
func (t Tracing) Enabled() bool { return t.Endpoint != "" }

// loadTracing reads the OTEL_* variables through get (see Load) and
// returns the problems it found.
func loadTracing(get func(k, def string) string) (Tracing, []error) {
	var errs []error
	// signal is the traces-specific variable, else the general one.
	signal := func(name string) string {
		return get("OTEL_EXPORTER_OTLP_TRACES_"+name, get("OTEL_EXPORTER_OTLP_"+name, ""))
	}
	t := Tracing{
		Protocol:          signal("PROTOCOL"),
		Compression:       strings.ToLower(signal("COMPRESSION")),
		Certificate:       signal("CERTIFICATE"),
		ClientCertificate: signal("CLIENT_CERTIFICATE"),
		ClientKey:         signal("CLIENT_KEY"),
		ServiceName:       get("OTEL_SERVICE_NAME", ""),
		Sampler:           strings.ToLower(get("OTEL_TRACES_SAMPLER", "parentbased_always_on")),
		SamplerRatio:      1,
		Timeout:           10 * time.Second,
	}
	if t.Protocol == "" {
		t.Protocol = "http/protobuf"
	}
	switch t.Protocol {
	case "http/protobuf", "grpc":
	default:
		errs = append(errs, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL=%q: want http/protobuf or grpc", t.Protocol))
	}
	switch t.Compression {
	case "", "none":
		t.Compression = ""
	case "gzip":
	default:
		errs = append(errs, fmt.Errorf("OTEL_EXPORTER_OTLP_COMPRESSION=%q: want gzip or none", t.Compression))
	}
	if s := signal("TIMEOUT"); s != "" {
		ms, err := strconv.Atoi(s)
		if err != nil || ms <= 0 {
			errs = append(errs, fmt.Errorf("OTEL_EXPORTER_OTLP_TIMEOUT=%q: want milliseconds, such as 10000", s))
		} else {
			t.Timeout = time.Duration(ms) * time.Millisecond
		}
	}
	var err error
	if t.Headers, err = keyValues(signal("HEADERS")); err != nil {
		errs = append(errs, fmt.Errorf("OTEL_EXPORTER_OTLP_HEADERS: %w", err))
	}
	if t.ResourceAttributes, err = keyValues(get("OTEL_RESOURCE_ATTRIBUTES", "")); err != nil {
		errs = append(errs, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err))
	}
	switch t.Sampler {
	case "always_on", "always_off", "parentbased_always_on", "parentbased_always_off":
	case "traceidratio", "parentbased_traceidratio":
		if s := get("OTEL_TRACES_SAMPLER_ARG", ""); s != "" {
			r, err := strconv.ParseFloat(s, 64)
			if err != nil || r < 0 || r > 1 {
				errs = append(errs, fmt.Errorf("OTEL_TRACES_SAMPLER_ARG=%q: want a ratio from 0 to 1", s))
			} else {
				t.SamplerRatio = r
			}
		}
	default:
		errs = append(errs, fmt.Errorf("OTEL_TRACES_SAMPLER=%q: want always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio", t.Sampler))
	}

	// Where to: nowhere when the SDK is disabled, the exporter is none,
	// or no endpoint is set.
	if disabled, _ := strconv.ParseBool(get("OTEL_SDK_DISABLED", "false")); disabled {
		return t, errs
	}
	switch exp := strings.ToLower(get("OTEL_TRACES_EXPORTER", "otlp")); exp {
	case "none":
		return t, errs
	case "otlp":
	default:
		errs = append(errs, fmt.Errorf("OTEL_TRACES_EXPORTER=%q: want otlp or none", exp))
		return t, errs
	}
	endpoint := get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	if endpoint == "" {
		if base := get("OTEL_EXPORTER_OTLP_ENDPOINT", ""); base != "" {
			endpoint = base
			if t.Protocol == "http/protobuf" {
				endpoint = strings.TrimSuffix(base, "/") + "/v1/traces"
			}
		}
	}
	if endpoint == "" {
		return t, errs
	}
	u, err := url.Parse(endpoint)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https"):
		errs = append(errs, fmt.Errorf("OTEL_EXPORTER_OTLP_ENDPOINT=%q: want a URL such as http://collector:4318 (http/protobuf) or http://collector:4317 (grpc)", endpoint))
		return t, errs
	case u.Scheme == "http":
		t.Insecure = true
	}
	if (t.ClientCertificate == "") != (t.ClientKey == "") {
		errs = append(errs, fmt.Errorf("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and OTEL_EXPORTER_OTLP_CLIENT_KEY: set both or neither"))
	}
	t.Endpoint = endpoint
	return t, errs
}

// keyValues reads the W3C Baggage-like list the OTEL_* variables use:
// key=value pairs separated by commas, values URL-encoded.
func keyValues(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, pair := range strings.Split(s, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		k, v, ok := strings.Cut(pair, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("%q is not key=value", pair)
		}
		dv, err := url.PathUnescape(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("%q: %w", pair, err)
		}
		out[k] = dv
	}
	return out, nil
}
