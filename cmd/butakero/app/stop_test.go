package app_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/butakero/butakero/cmd/butakero/app"
	"github.com/butakero/butakero/platform/runtime/config"
)

// TestStoppedWhileStarting: an all-in-one told to stop before it has
// started (a Ctrl-C right after make run) returns no error, so the process
// exits 0 and prints no failure: what was starting ended with the
// context's error, and nothing failed.
func TestStoppedWhileStarting(t *testing.T) {
	cfg, err := config.Load(config.FromMap(map[string]string{"DATA_DIR": t.TempDir(), "HTTP_ADDR": "127.0.0.1:0"}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	m := &app.Main{Config: cfg, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := m.Run(ctx); err != nil {
		t.Fatalf("stopped before it started, Run returned %v, want nil", err)
	}
}
