package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/testkit/loopback"
	"github.com/butakero/butakero/platform/testkit/wait"
	"github.com/butakero/butakero/services/encoder/dcafile"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestFaults inflicts real faults on real butakero processes: the binary
// is built once, and each case runs it (and, for the cluster, nats-server)
// as subprocesses that are killed, stopped, starved or paused for real.
// The cases run in parallel: most of their time is spent waiting for
// JetStream's AckWait to hand a dead process's message to a live one.
func TestFaults(t *testing.T) {
	bin := buildButakero(t)
	cases := []struct {
		name string
		run  func(t *testing.T, bin string)
	}{
		{"SIGKILL mid-encode, restart on the same data", faultKillMidEncode},
		{"a publish lost at every stage, a SIGKILL between two", faultLostPublish},
		{"SIGTERM mid-encode", faultTermMidEncode},
		{"a NATS node and a process killed in a cluster", faultCluster},
		{"DynamoDB paused", faultDynamoDBPaused},
		{"a source that never answers", faultSilentSource},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, bin)
		})
	}
}

// proc is one butakero process run by a fault test.
type proc struct {
	name string
	cmd  *exec.Cmd
	// base is the gateway's URL, http://127.0.0.1:<port>.
	base   string
	logs   *wait.Output
	exited <-chan struct{}
}

// buildButakero builds the butakero binary into a temp dir of t's and
// returns its path.
func buildButakero(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "butakero")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/butakero/butakero/cmd/butakero").CombinedOutput(); err != nil {
		t.Fatalf("go build butakero: %v\n%s", err, out)
	}
	return bin
}

// processEnv is what every butakero a fault test runs sees, besides its
// case's variables: nothing of the test's own environment but what
// ffmpeg and yt-dlp need to run.
func processEnv(vars map[string]string) []string {
	env := []string{}
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	base := map[string]string{
		"ALLOWED_MEDIA_HOSTS": "127.0.0.1:*",
		"LOG_LEVEL":           "warn",
		"LOG_FORMAT":          "text",
		"RATE_LIMIT":          "0",
	}
	for k, v := range vars {
		base[k] = v
	}
	for k, v := range base {
		env = append(env, k+"="+v)
	}
	return env
}

// startProc runs bin with vars (HTTP_ADDR, unless set, is chosen here) and waits until
// its gateway answers /readyz with 200. The process is stopped (SIGTERM,
// then SIGKILL) when the test ends, and its log tail is shown if the test
// failed.
func startProc(t *testing.T, bin, name string, vars map[string]string) *proc {
	t.Helper()
	p := launchProc(t, bin, name, vars)
	p.waitReady(t, 90*time.Second)
	return p
}

// launchProc is startProc without the wait.
func launchProc(t *testing.T, bin, name string, vars map[string]string, args ...string) *proc {
	t.Helper()
	all := map[string]string{"HTTP_ADDR": loopback.Addr(t)}
	for k, v := range vars {
		all[k] = v
	}
	p := &proc{name: name, base: "http://" + all["HTTP_ADDR"], logs: &wait.Output{}}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = processEnv(all)
	p.cmd.Stdout = p.logs
	p.cmd.Stderr = p.logs
	// Registered first, so that it runs once the process has stopped.
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("FAULTS_DEBUG") != "" {
			t.Logf("last lines of %s's log:\n%s", name, p.logs.Tail(40))
		}
	})
	p.exited = wait.StartTerm(t, p.cmd, 30*time.Second)
	return p
}

// exitErr is how the process exited, as cmd.Wait says it (nil for exit
// status 0); it is known once exited is closed.
func (p *proc) exitErr() error {
	if st := p.cmd.ProcessState; st != nil && !st.Success() {
		return &exec.ExitError{ProcessState: st}
	}
	return nil
}

func (p *proc) done() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// waitReady polls /readyz until it answers 200.
func (p *proc) waitReady(t *testing.T, within time.Duration) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(within)
	for {
		resp, err := client.Get(p.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			err = fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		if p.done() {
			t.Fatalf("%s exited before it was ready (%v):\n%s", p.name, p.exitErr(), p.logs.Tail(40))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready within %s: %v", p.name, within, err)
		}
		<-time.After(50 * time.Millisecond)
	}
}

// kill ends the process with SIGKILL, as a crash or the OOM killer would.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL %s: %v", p.name, err)
	}
	<-p.exited
}

// terminate sends SIGTERM and waits for the exit, at most within.
func (p *proc) terminate(t *testing.T, within time.Duration) error {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM %s: %v", p.name, err)
	}
	select {
	case <-p.exited:
		return p.exitErr()
	case <-time.After(within):
		t.Fatalf("%s still running %s after SIGTERM", p.name, within)
		return nil
	}
}

// start asks for song and returns the operation id.
func (p *proc) start(t *testing.T, song string) string {
	t.Helper()
	resp, err := http.Post(p.base+"/api/audio/start?song="+url.QueryEscape(song), "", nil)
	if err != nil {
		t.Fatalf("start %s on %s: %v", song, p.name, err)
	}
	defer resp.Body.Close()
	var body struct {
		OperationID string `json:"operation_id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK || body.OperationID == "" {
		t.Fatalf("start %s on %s: HTTP %d, %v", song, p.name, resp.StatusCode, err)
	}
	return body.OperationID
}

// operation reads an operation's state; ok is false when the gateway did
// not answer 200 (not projected yet, or the store unreachable).
func (p *proc) operation(id string) (op v1Op, ok bool) {
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(p.base + "/v1/operations/" + url.PathEscape(id))
	if err != nil {
		return op, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return op, false
	}
	return op, json.NewDecoder(resp.Body).Decode(&op) == nil
}

// waitFinal polls the operation until it has ended, tolerating answers
// other than 200 in between (a cluster electing a leader, a store coming
// back).
func (p *proc) waitFinal(t *testing.T, id string, within time.Duration) v1Op {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		op, ok := p.operation(id)
		if ok && op.Status != "in_progress" {
			return op
		}
		if time.Now().After(deadline) {
			t.Fatalf("operation %s not ended after %s on %s (last seen: %+v)", id, within, p.name, op)
		}
		<-time.After(100 * time.Millisecond)
	}
}

// dca downloads a song's DCA from the gateway and parses it.
func (p *proc) dca(t *testing.T, songID string) dcafile.Info {
	t.Helper()
	return getDCA(t, p.base, songID)
}

// checkCovers fails t unless the DCA's frames cover want within 1 %.
func checkCovers(t *testing.T, what string, info dcafile.Info, want time.Duration) {
	t.Helper()
	if diff := (info.Duration - want).Abs(); float64(diff) > 0.01*float64(want) {
		t.Errorf("%s: the DCA covers %s (%d frames), the source %s", what, info.Duration, info.Frames, want)
	}
}

// observer is a NATS client beside the processes: it sees the stream and
// the progress messages.
type observer struct {
	nc *nats.Conn
	js jetstream.JetStream
}

// natsToken is NATS_TOKEN for the processes whose embedded server listens
// (NATS_LISTEN needs credentials); the observer presents it too. Servers
// without authentication, like the cluster's, ignore it.
const natsToken = "fault-tests-nats-token"

// observe connects to url (one or more, comma-separated).
func observe(t *testing.T, url string) *observer {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(200*time.Millisecond), nats.RetryOnFailedConnect(true), nats.Token(natsToken))
	if err != nil {
		t.Fatalf("observer: connect %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return &observer{nc: nc, js: js}
}

// count is how many events of kind k operation opID has in the stream.
func (o *observer) count(ctx context.Context, k events.Kind, opID string) (int, error) {
	s, err := o.js.Stream(ctx, events.StreamName)
	if err != nil {
		return 0, err
	}
	subject := events.Subject(k, opID)
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return 0, err
	}
	return int(info.State.Subjects[subject]), nil
}

// last is the last event of kind k of operation opID.
func (o *observer) last(ctx context.Context, t *testing.T, k events.Kind, opID string) events.Envelope {
	t.Helper()
	s, err := o.js.Stream(ctx, events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := s.GetLastMsgForSubject(ctx, events.Subject(k, opID))
	if err != nil {
		t.Fatalf("%s of %s: %v", k, opID, err)
	}
	env, _, err := events.Decode(raw.Data)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// waitEvents polls the stream until every operation of ids has an event
// of kind k.
func (o *observer) waitEvents(t *testing.T, k events.Kind, ids []string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for _, id := range ids {
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			n, err := o.count(ctx, k, id)
			cancel()
			if err == nil && n > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %s for operation %s in the stream after %s (last error: %v)", k, id, within, err)
			}
			<-time.After(100 * time.Millisecond)
		}
	}
}

// progress subscribes to every operation's progress messages.
func (o *observer) progress(t *testing.T) <-chan events.Progress {
	t.Helper()
	ch := make(chan events.Progress, 256)
	sub, err := o.nc.Subscribe(events.ProgressSubject("*"), func(m *nats.Msg) {
		var p events.Progress
		if json.Unmarshal(m.Data, &p) == nil {
			select {
			case ch <- p:
			default: // the test reads what it needs; the rest may go
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := o.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return ch
}

// waitProgress waits for a progress message of stage for operation opID
// with a percentage from least up to, not including, 100: the stage is
// under way.
func waitProgress(t *testing.T, ch <-chan events.Progress, opID, stage string, least float64, within time.Duration) events.Progress {
	t.Helper()
	timeout := time.After(within)
	for {
		select {
		case p := <-ch:
			if p.OperationID == opID && p.Stage == stage && p.Percent >= least && p.Percent > 0 && p.Percent < 100 {
				return p
			}
		case <-timeout:
			t.Fatalf("no %s progress for %s within %s", stage, opID, within)
		}
	}
}
