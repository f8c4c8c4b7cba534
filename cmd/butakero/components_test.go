package main

import (
	"context"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/butakero/butakero/platform/runtime/config"
	"github.com/butakero/butakero/platform/runtime/natsconn"
	"github.com/nats-io/nats.go/jetstream"
)

// TestNATSServerCommand runs `butakero nats-server` as the compose file's
// nodes do (JetStream, a name, a user and password, monitoring), waits for
// `butakero healthcheck` of its monitoring /healthz to pass, and reaches
// its JetStream through natsconn with NATS_USER and NATS_PASSWORD. A wrong
// URL fails the health check; SIGTERM stops the node.
func TestNATSServerCommand(t *testing.T) {
	dir := t.TempDir()
	client, monitor := freePort(t), freePort(t)
	cmd := exec.Command(os.Args[0], "nats-server", "-js", "-sd", dir, "-n", "node-1",
		"-a", "127.0.0.1", "-p", strconv.Itoa(client), "-m", strconv.Itoa(monitor),
		"--user", "svc", "--pass", "s3cret")
	cmd.Env = []string{execEnv + "=1", "PATH=" + os.Getenv("PATH")}
	cmd.Stdout, cmd.Stderr = t.Output(), t.Output()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})

	health := "http://127.0.0.1:" + strconv.Itoa(monitor) + "/healthz"
	deadline := time.Now().Add(30 * time.Second)
	for butakero(t, dir, nil, "healthcheck", health).code != 0 {
		if time.Now().After(deadline) {
			t.Fatal("butakero healthcheck of the node did not pass within 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
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
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		if _, err = js.AccountInfo(ctx); err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("JetStream through the node: %v", err)
	}

	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(15 * time.Second):
		t.Fatal("the node did not stop within 15s of SIGTERM")
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
