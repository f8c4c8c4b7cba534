package app_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/butakero/butakero/platform/audiofixture"
	"github.com/butakero/butakero/platform/natsembed"
)

// TestServicesAlone runs the production shape on one machine: the five
// services as separate processes against a NATS server reached over TCP on
// loopback, once through each service's own main and once through the
// all-in-one binary's `butakero <service>`, as the image's containers run
// them. Each process's `butakero healthcheck` passes (the gateway's
// /healthz at HTTP_ADDR, the encoder's at METRICS_ADDR).
func TestServicesAlone(t *testing.T) {
	bin := t.TempDir()
	services := []string{"gateway", "resolver", "fetcher", "encoder", "recorder"}
	args := []string{"build", "-o", bin + string(os.PathSeparator), "github.com/butakero/butakero/cmd/butakero"}
	for _, s := range services {
		args = append(args, "github.com/butakero/butakero/services/"+s)
	}
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	butakero := filepath.Join(bin, "butakero")
	cases := []struct {
		name    string
		command func(service string) *exec.Cmd
	}{
		{"own mains", func(s string) *exec.Cmd { return exec.Command(filepath.Join(bin, s)) }},
		{"butakero <service>", func(s string) *exec.Cmd { return exec.Command(butakero, s) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { servicesAlone(t, services, tc.command, butakero) })
	}
}

func servicesAlone(t *testing.T, services []string, command func(string) *exec.Cmd, butakero string) {
	srv, err := natsembed.Start(natsembed.Options{StoreDir: t.TempDir(), Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)

	media := t.TempDir()
	audiofixture.Make(t, media, audiofixture.M4A("alone.m4a", 3*time.Second))
	files := audiofixture.Serve(t, media)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpAddr := ln.Addr().String()
	ln.Close()

	encoderMetrics := freeAddr(t)
	env := append(os.Environ(),
		"NATS_URL="+srv.ClientURL(),
		"HTTP_ADDR="+httpAddr,
		"ALLOWED_MEDIA_HOSTS=127.0.0.1:*",
		"LOG_LEVEL=warn",
		"SHUTDOWN_GRACE=5s",
	)
	type proc struct {
		name   string
		cmd    *exec.Cmd
		stderr *bytes.Buffer
		done   chan error
	}
	var procs []*proc
	for _, s := range services {
		p := &proc{name: s, cmd: command(s), stderr: &bytes.Buffer{}, done: make(chan error, 1)}
		p.cmd.Env = env
		if s == "encoder" {
			// A service alone serves its metrics on METRICS_ADDR.
			p.cmd.Env = append(slices.Clone(env), "METRICS_ADDR="+encoderMetrics)
		}
		p.cmd.Stderr = p.stderr
		if err := p.cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", s, err)
		}
		go func() { p.done <- p.cmd.Wait() }()
		procs = append(procs, p)
	}
	stopAll := func() []error {
		var errs []error
		for _, p := range procs {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
		}
		for _, p := range procs {
			select {
			case err := <-p.done:
				if err != nil {
					errs = append(errs, fmt.Errorf("%s exited with %v:\n%s", p.name, err, p.stderr))
				}
			case <-time.After(30 * time.Second):
				_ = p.cmd.Process.Kill()
				errs = append(errs, fmt.Errorf("%s did not stop within 30s of SIGTERM", p.name))
			}
		}
		return errs
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			stopAll()
		}
	})

	in := &instance{base: "http://" + httpAddr}
	in.waitReady(t)
	op := in.startSong(t, files.URL("alone.m4a"))
	st := in.waitFinal(t, op.OperationID, 90*time.Second)
	if st.Status != "success" {
		t.Fatalf("operation ended %q: %q", st.Status, st.Message)
	}
	if info := in.dca(t, st.SongID); info.Frames < 149 || info.Frames > 152 {
		t.Errorf("DCA of a 3 s song has %d frames, want about 150", info.Frames)
	}

	resp, err := http.Get("http://" + encoderMetrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := `butakero_stage_attempts_total{stage="encode"} 1`; !strings.Contains(string(body), want) {
		t.Errorf("the encoder's /metrics lacks %s", want)
	}

	// The image's health check, as its HEALTHCHECK runs it in each
	// container: with that container's environment.
	for _, p := range procs {
		if p.name != "gateway" && p.name != "encoder" {
			continue
		}
		check := exec.Command(butakero, "healthcheck")
		check.Env = p.cmd.Env
		if out, err := check.CombinedOutput(); err != nil {
			t.Errorf("butakero healthcheck with the %s's environment: %v\n%s", p.name, err, out)
		}
	}
	check := exec.Command(butakero, "healthcheck", "http://"+httpAddr+"/no/such/route")
	if out, err := check.CombinedOutput(); err == nil {
		t.Errorf("butakero healthcheck of a 404 passed:\n%s", out)
	}

	stopped = true
	for _, err := range stopAll() {
		t.Error(err)
	}
}
