package app_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/butakero/butakero/platform/runtime/natsconn"
	"github.com/butakero/butakero/platform/runtime/natsembed"
	"github.com/butakero/butakero/platform/testkit/audiofixture"
	"github.com/butakero/butakero/platform/testkit/loopback"
	"github.com/butakero/butakero/platform/testkit/wait"
)

// services are the services that also run alone, each from its own main.
var services = []string{"gateway", "resolver", "fetcher", "encoder", "recorder"}

// buildServices builds each of services into a temp dir of t's, the
// binary named for the service, and returns the dir.
func buildServices(t *testing.T) string {
	t.Helper()
	bin := t.TempDir()
	args := []string{"build", "-o", bin + string(os.PathSeparator)}
	for _, s := range services {
		args = append(args, "github.com/butakero/butakero/services/"+s)
	}
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startTokenNATS starts a NATS server for t that listens on loopback and
// requires natsToken, as a cluster would, for services run alone.
func startTokenNATS(t *testing.T) *natsembed.Server {
	t.Helper()
	srv, err := natsembed.Start(natsembed.Options{StoreDir: t.TempDir(), Listen: "127.0.0.1:0", Auth: natsconn.Auth{Token: natsToken}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

// TestServicesAlone runs the production shape on one machine: the five
// services as separate processes (their own main, as in a container)
// against a NATS server reached over TCP on loopback.
func TestServicesAlone(t *testing.T) {
	bin := buildServices(t)
	// The services present NATS_TOKEN, as they would to a cluster that
	// requires it.
	srv := startTokenNATS(t)

	media := t.TempDir()
	audiofixture.Make(t, media, audiofixture.M4A("alone.m4a", 3*time.Second))
	files := audiofixture.Serve(t, media)

	httpAddr, encoderMetrics := loopback.Addr(t), loopback.Addr(t)
	env := append(os.Environ(),
		"NATS_URL="+srv.ClientURL(),
		"NATS_TOKEN="+natsToken,
		"HTTP_ADDR="+httpAddr,
		"ALLOWED_MEDIA_HOSTS=127.0.0.1:*",
		"LOG_LEVEL=warn",
		"SHUTDOWN_GRACE=5s",
	)
	type proc struct {
		name   string
		cmd    *exec.Cmd
		stderr *wait.Output
		done   chan error
	}
	var procs []*proc
	for _, s := range services {
		p := &proc{name: s, cmd: exec.Command(filepath.Join(bin, s)), stderr: &wait.Output{}, done: make(chan error, 1)}
		p.cmd.Env = env
		switch s {
		case "encoder":
			// A service alone serves its metrics on METRICS_ADDR, and
			// logs its consumer's backlog as EMF with METRICS_EMF.
			p.cmd.Env = append(slices.Clone(env), "METRICS_ADDR="+encoderMetrics, "METRICS_EMF=true", "METRICS_DEPLOYMENT=test")
		case "fetcher":
			p.cmd.Env = append(slices.Clone(env), "METRICS_EMF=true", "METRICS_DEPLOYMENT=test")
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
					errs = append(errs, fmt.Errorf("%s exited with %v:\n%s", p.name, err, p.stderr.Tail(50)))
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

	// The fetcher and the encoder, run with METRICS_EMF, log their
	// consumer's backlog (once it exists, then every 30 s; the encoder's
	// is its encodes' and its loudness measures' consumers added up, and
	// written only when both could be read); the others do not.
	withEMF := map[string]bool{"fetcher": true, "encoder": true}
	for _, p := range procs {
		if !withEMF[p.name] {
			continue
		}
		emfLine := `"Deployment":"test","Consumer":"` + p.name + `","ConsumerBacklog":`
		if !p.stderr.Contains(10*time.Second, emfLine) {
			t.Errorf("the %s with METRICS_EMF=true wrote no EMF line of its consumer:\n%s", p.name, p.stderr.Tail(20))
		}
	}

	stopped = true
	for _, err := range stopAll() {
		t.Error(err)
	}
	for _, p := range procs {
		if !withEMF[p.name] && strings.Contains(p.stderr.Tail(1000), `"_aws":`) {
			t.Errorf("%s wrote EMF lines without METRICS_EMF", p.name)
		}
	}
}
