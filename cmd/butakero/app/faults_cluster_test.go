package app_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/testkit/audiofixture"
	"github.com/butakero/butakero/platform/testkit/loopback"
	"github.com/butakero/butakero/platform/testkit/wait"
)

// EnvNATSServer names the nats-server binary the cluster test runs; the
// test command (make test, scripts/test.sh) installs it under .tools/bin.
const EnvNATSServer = "BUTAKERO_NATS_SERVER"

// faultCluster runs the production shape: three nats-server processes
// clustered on loopback and two butakero processes sharing the work
// through them (STREAM_REPLICAS=3: the stream, the KV buckets and the
// object store on every node). With a dozen songs in flight, the stream's
// leader node and one butakero process are killed (SIGKILL); every song
// still succeeds, each DCA stored once, as the surviving gateway reports.
func faultCluster(t *testing.T, bin string) {
	cluster := startNATSCluster(t, 3)
	obs := observe(t, cluster.urls())

	media := t.TempDir()
	var songs []audiofixture.Spec
	makers := []func(string, time.Duration) audiofixture.Spec{audiofixture.M4A, audiofixture.MP3, audiofixture.OggVorbis, audiofixture.WebMOpus}
	exts := []string{"m4a", "mp3", "ogg", "webm"}
	for i := range 12 {
		d := time.Duration(3000+250*i) * time.Millisecond
		songs = append(songs, makers[i%4](fmt.Sprintf("cluster-%02d.%s", i, exts[i%4]), d))
	}
	var wg sync.WaitGroup
	for _, s := range songs {
		wg.Add(1)
		go func() { defer wg.Done(); audiofixture.Make(t, media, s) }()
	}
	wg.Wait()
	files := audiofixture.Serve(t, media)

	vars := map[string]string{
		"NATS_URL":        cluster.urls(),
		"STREAM_REPLICAS": "3",
		"STAGE_TIMEOUT":   "2m",
		"SHUTDOWN_GRACE":  "5s",
	}
	// Both at once on the fresh cluster: each creates the stream, buckets
	// and consumers or finds them (platform/jsbucket creates before it
	// updates, which a 2.15 cluster needs).
	a := launchProc(t, bin, "butakero A", vars)
	b := launchProc(t, bin, "butakero B", vars)
	a.waitReady(t, 90*time.Second)
	b.waitReady(t, 90*time.Second)

	ops := make([]string, len(songs))
	for i, s := range songs {
		via := a
		if i%2 == 1 {
			via = b
		}
		ops[i] = via.start(t, files.URL(s.Name))
	}

	// In flight: some audio is downloaded, not every song stored.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for {
		downloaded, stored := 0, 0
		for _, id := range ops {
			if n, err := obs.count(ctx, events.KindAudioDownloaded, id); err == nil && n > 0 {
				downloaded++
			}
			if n, err := obs.count(ctx, events.KindUploadDone, id); err == nil && n > 0 {
				stored++
			}
		}
		if stored == len(ops) {
			t.Fatal("every song was stored before the faults: nothing was in flight")
		}
		if downloaded > 0 {
			t.Logf("faults with %d of %d songs downloaded and %d stored", downloaded, len(ops), stored)
			break
		}
		if ctx.Err() != nil {
			t.Fatal("no song downloaded within 2 minutes")
		}
		<-time.After(50 * time.Millisecond)
	}
	stream, err := obs.js.Stream(ctx, events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	leader := stream.CachedInfo().Cluster.Leader
	cluster.kill(t, leader)
	b.kill(t)
	t.Logf("killed nats-server %s (the stream's leader) and butakero B", leader)

	killed := time.Now()
	defer func() { t.Logf("every song ended %s after the kills", time.Since(killed).Round(time.Second)) }()
	for i, id := range ops {
		op := a.waitFinal(t, id, 3*time.Minute)
		if op.Status != "success" {
			t.Errorf("%s: operation %s ended %q (%s: %s)", songs[i].Name, id, op.Status, op.ErrorCode, op.Message)
			continue
		}
		checkCovers(t, songs[i].Name, a.dca(t, op.SongID), songs[i].Duration)
		cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
		n, err := obs.count(cctx, events.KindUploadDone, id)
		ccancel()
		if err != nil || n != 1 {
			t.Errorf("%s: %d upload.done events (%v), want 1", songs[i].Name, n, err)
		}
	}
}

// natsCluster is nats-server processes clustered on loopback.
type natsCluster struct {
	nodes []*natsNode
}

type natsNode struct {
	name   string
	client string // 127.0.0.1:<port>
	cmd    *exec.Cmd
	logs   *wait.Output
	exited <-chan struct{}
}

// startNATSCluster starts n JetStream nodes routed to each other (one
// standalone server for n = 1), their stores in the test's temp dirs, and
// waits until JetStream answers.
func startNATSCluster(t *testing.T, n int) *natsCluster {
	t.Helper()
	bin := os.Getenv(EnvNATSServer)
	if bin == "" {
		t.Fatalf("%s is not set: run make test, which installs nats-server into .tools/bin and sets it", EnvNATSServer)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s: %v (run make test, which installs it)", EnvNATSServer, err)
	}
	c := &natsCluster{}
	routes := make([]string, n)
	for i := range n {
		routes[i] = "nats-route://" + loopback.Addr(t)
	}
	for i := range n {
		dir := t.TempDir()
		node := &natsNode{name: fmt.Sprintf("n%d", i+1), client: loopback.Addr(t), logs: &wait.Output{}}
		conf := fmt.Sprintf(`server_name: %s
listen: %s
jetstream { store_dir: %q }
`, node.name, node.client, filepath.Join(dir, "js"))
		if n > 1 {
			conf += fmt.Sprintf(`cluster {
  name: butakero
  listen: %s
  routes: [%s]
}
`, strings.TrimPrefix(routes[i], "nats-route://"), strings.Join(routes, ", "))
		}
		confPath := filepath.Join(dir, "nats.conf")
		if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		node.cmd = exec.Command(bin, "-c", confPath)
		node.cmd.Stdout, node.cmd.Stderr = node.logs, node.logs
		// Registered first, so that it runs once the node has stopped.
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("last lines of nats-server %s's log:\n%s", node.name, node.logs.Tail(15))
			}
		})
		node.exited = wait.StartTerm(t, node.cmd, 15*time.Second)
		c.nodes = append(c.nodes, node)
	}

	// Ready once the cluster has a meta leader: JetStream answers.
	obs := observe(t, c.urls())
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := obs.js.AccountInfo(ctx)
		cancel()
		if err == nil {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("the NATS cluster's JetStream did not answer within a minute: %v", err)
		}
		<-time.After(100 * time.Millisecond)
	}
}

// urls is NATS_URL for the cluster: every node.
func (c *natsCluster) urls() string {
	var u []string
	for _, n := range c.nodes {
		u = append(u, "nats://"+n.client)
	}
	return strings.Join(u, ",")
}

// kill ends the node called name with SIGKILL.
func (c *natsCluster) kill(t *testing.T, name string) {
	t.Helper()
	for _, n := range c.nodes {
		if n.name == name {
			if err := n.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatalf("SIGKILL nats-server %s: %v", name, err)
			}
			<-n.exited
			return
		}
	}
	t.Fatalf("no nats-server called %q", name)
}
