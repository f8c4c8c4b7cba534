// Package tracing installs the OpenTelemetry SDK that turns Butakero's
// spans into OTLP exports: the gateway's request spans, one span per stage
// attempt and the yt-dlp and ffmpeg runs inside them.
//
// The code everywhere else only uses OpenTelemetry's API through the global
// tracer provider (otel.Tracer): with no SDK installed, those spans are
// no-ops that still carry the W3C trace context from the HTTP request onto
// every event. Start, called once by each main with the configuration it
// read (config.Tracing), installs the SDK's provider in their place when an
// OTLP endpoint is configured.
package tracing

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/runtime/config"
	"github.com/butakero/butakero/platform/runtime/versions"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"google.golang.org/grpc/credentials"
)

// shutdownTimeout bounds the flush of the spans still buffered at exit.
const shutdownTimeout = 5 * time.Second

// Start installs, when cfg has an endpoint, an SDK tracer provider that
// batches spans to it over OTLP, as the global provider, and returns the
// function that flushes and stops it: call it once, at exit, after every
// component has stopped. Without an endpoint it installs nothing and the
// returned function does nothing. service is the service.name resource
// attribute when OTEL_SERVICE_NAME is unset.
//
// The exporter sends in the background and never blocks a span's end: a
// collector out of reach costs dropped spans (logged by the SDK's error
// handler, through log), not a slower pipeline.
func Start(cfg config.Tracing, service string, log *slog.Logger) (shutdown func(), err error) {
	// The W3C propagator is installed either way, so that any library
	// using the global one reads and writes traceparent as events does.
	otel.SetTextMapPropagator(events.TracePropagator)
	if !cfg.Enabled() {
		return func() {}, nil
	}
	exp, err := exporter(cfg)
	if err != nil {
		return nil, err
	}
	res, err := newResource(cfg, service)
	if err != nil {
		return nil, err
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sampler(cfg)),
	)
	otel.SetTracerProvider(tp)
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("tracing: export", "error", err)
	}))
	log.Info("tracing: exporting spans", "protocol", cfg.Protocol, "sampler", cfg.Sampler)
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if err := tp.Shutdown(ctx); err != nil {
			log.Warn("tracing: flush at exit", "error", err)
		}
	}, nil
}

// exporter is the OTLP exporter cfg names, with every option given
// explicitly so that what main read is what is used.
func exporter(cfg config.Tracing) (sdktrace.SpanExporter, error) {
	tlsCfg, err := tlsConfig(cfg)
	if err != nil {
		return nil, err
	}
	var client otlptrace.Client
	switch cfg.Protocol {
	case "grpc":
		opts := []otlptracegrpc.Option{
			otlptracegrpc.WithEndpointURL(cfg.Endpoint),
			otlptracegrpc.WithTimeout(cfg.Timeout),
			otlptracegrpc.WithHeaders(cfg.Headers),
		}
		if cfg.Insecure {
			opts = append(opts, otlptracegrpc.WithInsecure())
		} else if tlsCfg != nil {
			opts = append(opts, otlptracegrpc.WithTLSCredentials(credentials.NewTLS(tlsCfg)))
		}
		if cfg.Compression == "gzip" {
			opts = append(opts, otlptracegrpc.WithCompressor("gzip"))
		}
		client = otlptracegrpc.NewClient(opts...)
	default:
		opts := []otlptracehttp.Option{
			otlptracehttp.WithEndpointURL(cfg.Endpoint),
			otlptracehttp.WithTimeout(cfg.Timeout),
			otlptracehttp.WithHeaders(cfg.Headers),
		}
		if cfg.Insecure {
			opts = append(opts, otlptracehttp.WithInsecure())
		} else if tlsCfg != nil {
			opts = append(opts, otlptracehttp.WithTLSClientConfig(tlsCfg))
		}
		if cfg.Compression == "gzip" {
			opts = append(opts, otlptracehttp.WithCompression(otlptracehttp.GzipCompression))
		} else {
			opts = append(opts, otlptracehttp.WithCompression(otlptracehttp.NoCompression))
		}
		client = otlptracehttp.NewClient(opts...)
	}
	// New only builds the client: the first export connects, so a
	// collector that is not up yet does not stop the start.
	return otlptrace.New(context.Background(), client)
}

// tlsConfig is the TLS configuration cfg's certificate files make, or nil
// for the system's CAs and no client certificate.
func tlsConfig(cfg config.Tracing) (*tls.Config, error) {
	if cfg.Certificate == "" && cfg.ClientCertificate == "" {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.Certificate != "" {
		pem, err := os.ReadFile(cfg.Certificate)
		if err != nil {
			return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_CERTIFICATE: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("OTEL_EXPORTER_OTLP_CERTIFICATE: no PEM certificate in the file")
		}
		c.RootCAs = pool
	}
	if cfg.ClientCertificate != "" {
		cert, err := tls.LoadX509KeyPair(cfg.ClientCertificate, cfg.ClientKey)
		if err != nil {
			return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// newResource describes the process: its service name and version and
// OTEL_RESOURCE_ATTRIBUTES, with the host and process the SDK detects.
func newResource(cfg config.Tracing, service string) (*resource.Resource, error) {
	attrs := make([]attribute.KeyValue, 0, len(cfg.ResourceAttributes)+2)
	for k, v := range cfg.ResourceAttributes {
		attrs = append(attrs, attribute.String(k, v))
	}
	name := service
	if cfg.ServiceName != "" {
		name = cfg.ServiceName
	}
	attrs = append(attrs, semconv.ServiceName(name), semconv.ServiceVersion(versions.ButakeroVersion()))
	return resource.New(context.Background(),
		resource.WithHost(), resource.WithProcessPID(), resource.WithTelemetrySDK(),
		resource.WithAttributes(attrs...))
}

// sampler is cfg's OTEL_TRACES_SAMPLER.
func sampler(cfg config.Tracing) sdktrace.Sampler {
	switch cfg.Sampler {
	case "always_on":
		return sdktrace.AlwaysSample()
	case "always_off":
		return sdktrace.NeverSample()
	case "traceidratio":
		return sdktrace.TraceIDRatioBased(cfg.SamplerRatio)
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample())
	case "parentbased_traceidratio":
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SamplerRatio))
	default:
		return sdktrace.ParentBased(sdktrace.AlwaysSample())
	}
}
