// Package apptest runs the all-in-one inside a test process, on
// 127.0.0.1:0 with a temp DATA_DIR, for the end-to-end tests of the app,
// the Go client and the CLI.
package apptest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/butakero/butakero/cmd/butakero/app"
	"github.com/butakero/butakero/platform/runtime/config"
)

// Defaults are the settings every test instance starts from; Launch's env
// adds to and overrides them.
var Defaults = map[string]string{
	// Fixture servers listen on loopback on ports chosen at random.
	"ALLOWED_MEDIA_HOSTS": "127.0.0.1:*",
	"STAGE_TIMEOUT":       "60s",
	"SHUTDOWN_GRACE":      "5s",
	"LOG_LEVEL":           "warn",
	"RATE_LIMIT":          "0", // tests create operations faster than a user
}

// Instance is one all-in-one running in the test process.
type Instance struct {
	// Base is the gateway's URL, "http://127.0.0.1:<port>".
	Base string
	stop func() error
}

// Stop cancels the instance and waits until it has shut down, returning
// what Run returned. A second call returns nil at once.
func (in *Instance) Stop() error { return in.stop() }

// Start is Launch, then a wait until /readyz answers 200.
func Start(t testing.TB, env map[string]string) *Instance {
	t.Helper()
	in := Launch(t, env, nil)
	in.WaitReady(t)
	return in
}

// Launch runs the all-in-one until the test ends or Stop is called, and
// returns once its services run, ready or not. DATA_DIR defaults to a temp
// dir of the test. The log goes to the test's output, and to logs too when
// it is not nil.
func Launch(t testing.TB, env map[string]string, logs io.Writer) *Instance {
	t.Helper()
	vars := map[string]string{"DATA_DIR": t.TempDir()}
	for k, v := range Defaults {
		vars[k] = v
	}
	for k, v := range env {
		vars[k] = v
	}
	cfg, err := config.Load(config.FromMap(vars))
	if err != nil {
		t.Fatal(err)
	}
	var logTo io.Writer = t.Output()
	if logs != nil {
		logTo = io.MultiWriter(logTo, logs)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &app.Main{Config: cfg, Log: slog.New(slog.NewTextHandler(logTo, &slog.HandlerOptions{Level: slog.LevelWarn})), Listener: ln, Ready: make(chan struct{})}
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	select {
	case <-m.Ready:
	case err := <-done:
		cancel()
		t.Fatalf("all-in-one did not start: %v", err)
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatal("all-in-one not started within 60s")
	}
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(60 * time.Second):
			return fmt.Errorf("all-in-one did not stop within 60s")
		}
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return &Instance{Base: "http://" + ln.Addr().String(), stop: stop}
}

// WaitReady polls /readyz until it answers 200, for at most 30 s.
func (in *Instance) WaitReady(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(in.Base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never answered 200 (last error %v)", err)
		}
		<-time.After(20 * time.Millisecond)
	}
}
