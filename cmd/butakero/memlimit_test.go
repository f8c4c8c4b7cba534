package main

import (
	"testing"

	"github.com/butakero/butakero/platform/runtime/config"
)

// TestDefaultMemoryLimit: serve with its embedded server gets a soft
// memory limit that grows with ENCODE_CONCURRENCY, unless GOMEMLIMIT says
// otherwise (a value or "off") or the process runs against a NATS cluster.
func TestDefaultMemoryLimit(t *testing.T) {
	cases := []struct {
		name  string
		env   map[string]string
		limit int64 // 0: no default
	}{
		{"embedded, 2 encodes", map[string]string{"ENCODE_CONCURRENCY": "2"}, 48 << 20},
		{"embedded, 8 encodes", map[string]string{"ENCODE_CONCURRENCY": "8"}, 96 << 20},
		{"GOMEMLIMIT set", map[string]string{"ENCODE_CONCURRENCY": "2", "GOMEMLIMIT": "200MiB"}, 0},
		{"GOMEMLIMIT off", map[string]string{"ENCODE_CONCURRENCY": "2", "GOMEMLIMIT": "off"}, 0},
		{"against a cluster", map[string]string{"ENCODE_CONCURRENCY": "2", "NATS_URL": "nats://127.0.0.1:4222"}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			lookup := func(k string) (string, bool) { v, ok := c.env[k]; return v, ok }
			cfg, err := config.Load(lookup)
			if err != nil {
				t.Fatal(err)
			}
			limit, ok := defaultMemoryLimit(cfg, lookup)
			if ok != (c.limit != 0) || limit != c.limit {
				t.Fatalf("defaultMemoryLimit = %d, %v; want %d", limit, ok, c.limit)
			}
		})
	}
}
