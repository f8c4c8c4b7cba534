package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/butakero/butakero/platform/runtime/config"
	"github.com/butakero/butakero/platform/runtime/natsconn"
	"github.com/butakero/butakero/platform/testkit/loopback"
	"github.com/butakero/butakero/platform/testkit/wait"
	"github.com/nats-io/nats.go/jetstream"
)

// TestNATSServerCommand runs `butakero nats-server` as the compose file's
// nodes do (JetStream, a name, a user and password, monitoring), waits for
// `butakero healthcheck` of its monitoring /healthz to pass, and reaches
// its JetStream through natsconn with NATS_USER and NATS_PASSWORD. A wrong
// URL fails the health check; SIGTERM stops the node.
func TestNATSServerCommand(t *testing.T) {
	dir := t.TempDir()
	client, monitor := loopback.MustPort(t), loopback.MustPort(t)
	cmd := exec.Command(os.Args[0], "nats-server", "-js", "-sd", dir, "-n", "node-1",
		"-a", "127.0.0.1", "-p", strconv.Itoa(client), "-m", strconv.Itoa(monitor),
		"--user", "svc", "--pass", "s3cret")
	cmd.Env = []string{execEnv + "=1", "PATH=" + os.Getenv("PATH")}
	cmd.Stdout, cmd.Stderr = t.Output(), t.Output()
	exited := wait.Start(t, cmd)

	health := "http://127.0.0.1:" + strconv.Itoa(monitor) + "/healthz"
	wait.Until(t, 30*time.Second, "butakero healthcheck of the node", func() error {
		if r := butakero(t, dir, nil, "healthcheck", health); r.code != 0 {
			return fmt.Errorf("exit code %d", r.code)
		}
		return nil
	})
	if r := butakero(t, dir, nil, "healthcheck", "http://127.0.0.1:"+strconv.Itoa(monitor)+"/nosuchpage"); r.code == 0 {
		t.Error("healthcheck of a 404 passed")
	}

	cfg, err := config.Load(config.FromMap(map[string]string{
		"NATS_URL": "nats://127.0.0.1:" + strconv.Itoa(client), "NATS_USER": "svc", "NATS_PASSWORD": "s3cret",
	}))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := natsconn.Connect(cfg, "components-test", slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	wait.Until(t, 10*time.Second, "JetStream through the node", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := js.AccountInfo(ctx)
		return err
	})

	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(15 * time.Second):
		t.Fatal("the node did not stop within 15s of SIGTERM")
	}
}
