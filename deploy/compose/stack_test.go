//go:build deploy

package compose_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/butakero/butakero/client"
	"github.com/butakero/butakero/platform/blob"
	"github.com/butakero/butakero/platform/runtime/config"
	"github.com/butakero/butakero/platform/store/dynamostore"
	"github.com/butakero/butakero/platform/store/s3blob"
	"github.com/butakero/butakero/platform/testkit/audiofixture"
	"github.com/butakero/butakero/platform/testkit/loopback"
	"github.com/butakero/butakero/services/encoder/dcafile"
)

// EnvImage names the image the stack runs; make test-deploy
// (scripts/test-deploy.sh) builds it from the Dockerfile and sets it.
const EnvImage = "BUTAKERO_IMAGE"

// TestStack runs compose.yaml with podman-compose on a network of its own:
// the three NATS nodes and the six components from the image, the gateway
// published on 127.0.0.1. A file server on that network (the image's
// Python, at a fixed address that ALLOWED_MEDIA_HOSTS names) serves tones
// ffmpeg makes here. One song requested through the published port ends
// success and its DCA is valid; then the stream's leader node is stopped
// with a long song in flight and another requested after it, and both end
// success with one copy of each event and at most one retried attempt (see
// checkSong's callers), their DCA whole. Every
// container's health check passes (run by hand: podman runs them from
// systemd timers, and this machine has no systemd). Everything the test
// made, the network included, is removed at the end.
func TestStack(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 7*time.Minute)
	defer cancel()
	short := audiofixture.M4A("tone.m4a", 5*time.Second)
	long := audiofixture.MP3("long.mp3", 3*time.Minute)
	after := audiofixture.OggVorbis("after.ogg", 7*time.Second)
	st := startStack(t, ctx, []string{baseFile}, short, long, after)

	info := st.info(t, ctx)
	if p := info.Profile; p.NATS != "cluster" || p.Projections != "kv" || p.Blobs != "object_store" || p.StreamReplicas != 3 ||
		info.Versions.YTDLP.Stale || info.Versions.FFmpeg.Version == "" || !slices.Contains(info.Features, "nats_auth") {
		t.Errorf("GET /v1/info: %+v, want a cluster of 3 with NATS credentials, a current yt-dlp and ffmpeg", info)
	}

	// One song through the published port.
	first := st.song(t, ctx, short)
	checkSong(t, ctx, st.client, first, short, 0)

	// The stream's leader node stopped with a long song in flight, and a
	// song requested while it is down.
	inFlight := st.song(t, ctx, long)
	leader := streamLeader(t, ctx, st.project, st.names)
	if op, err := st.client.Operation(ctx, inFlight); err != nil || op.Done() {
		t.Fatalf("%s before the node stops: %+v, %v; want it in progress", long.Name, op, err)
	}
	stopped := time.Now()
	podman(t, "stop", "-t", "10", containerOf(t, st.names, leader))
	diagnose = func() {
		for _, c := range st.names {
			if !strings.Contains(c, "_nats-") || strings.Contains(c, "_"+leader+"_") {
				continue
			}
			var raw json.RawMessage
			err := getJSONErr(ctx, "http://"+net.JoinHostPort(st.ip(t, c), "8222")+"/jsz?accounts=true&streams=true&raft=true", &raw)
			t.Logf("%s jsz: %v %s", c, err, raw)
		}
	}
	op, err := st.client.Operation(ctx, inFlight)
	if err != nil {
		t.Fatalf("%s once the node stopped: %v", long.Name, err)
	}
	t.Logf("stopped %s, the stream's leader, in %s with %s in flight (then at %s, %s)",
		leader, time.Since(stopped).Round(100*time.Millisecond), long.Name, op.Stage, op.Status)
	later := st.song(t, ctx, after)
	// A stage may fail one attempt, retried at once. Nothing else may
	// fail or repeat.
	checkSong(t, ctx, st.client, inFlight, long, 1)
	checkSong(t, ctx, st.client, later, after, 1)
	t.Logf("both songs stored %s after the node stopped", time.Since(stopped).Round(time.Second))
}

// TestStackAWS brings the AWS profile up as the README says, with one
// command (compose.yaml and compose.aws.yaml): the same cluster and
// components with audio in versitygw (S3) and the projections in DynamoDB
// Local, each created at start (AWS_AUTO_CREATE). One song requested
// through the published port ends success with its DCA valid, and the
// data is where the profile puts it: GET /v1/info says S3 and DynamoDB,
// the bucket holds the DCA (read from versitygw over the stack's network),
// and the tables hold the operation, ended success, and the song, naming
// that DCA (read from DynamoDB Local).
func TestStackAWS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	tone := audiofixture.OggVorbis("aws.ogg", 6*time.Second)
	st := startStack(t, ctx, []string{baseFile, awsFile}, tone)

	info := st.info(t, ctx)
	if p := info.Profile; p.NATS != "cluster" || p.Projections != "dynamodb" || p.Blobs != "s3" || p.StreamReplicas != 3 {
		t.Errorf("GET /v1/info: profile %+v, want a cluster of 3 with projections in DynamoDB and blobs in S3", p)
	}
	id := st.song(t, ctx, tone)
	dca := checkSong(t, ctx, st.client, id, tone, 0)

	// What the stores hold, read over the stack's network with the
	// profile's own settings (compose.aws.yaml's environment).
	p := load(t, map[string]string{}, baseFile, awsFile)
	env := map[string]string{}
	for k, v := range p.Services["gateway"].Environment {
		if v != nil {
			env[k] = *v
		}
	}
	env["AWS_ENDPOINT_URL_S3"] = "http://" + net.JoinHostPort(st.ip(t, containerOf(t, st.names, "s3")), "7070")
	env["AWS_ENDPOINT_URL_DYNAMODB"] = "http://" + net.JoinHostPort(st.ip(t, containerOf(t, st.names, "dynamodb")), "8000")
	env["AWS_AUTO_CREATE"] = "false"
	for k, v := range env {
		if strings.HasPrefix(k, "AWS_ENDPOINT_URL_") {
			t.Setenv(k, v) // the AWS SDK reads the endpoints from the environment
		}
	}
	cfg, err := config.Load(config.FromMap(env))
	if err != nil {
		t.Fatal(err)
	}
	op, err := st.client.Operation(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := s3blob.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := blobs.Stat(ctx, blob.DCAKey(op.SongID))
	if err != nil || obj.Size != dca.Size {
		t.Fatalf("bucket %s: the DCA %s: %+v, %v; want the %d bytes downloaded", cfg.BucketName, blob.DCAKey(op.SongID), obj, err, dca.Size)
	}
	tables, err := dynamostore.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := tables.Operation(ctx, id)
	if err != nil || rec.Status != "success" || rec.SongID != op.SongID {
		t.Errorf("table %s: operation %s: %+v, %v; want success for song %s", cfg.OperationsTable, id, rec, err, op.SongID)
	}
	song, err := tables.Song(ctx, op.SongID)
	if err != nil || song.DCAKey != blob.DCAKey(op.SongID) || song.DCASize != dca.Size {
		t.Errorf("table %s: song %s: %+v, %v; want its DCA %s of %d bytes", cfg.SongsTable, op.SongID, song, err, blob.DCAKey(op.SongID), dca.Size)
	}
	t.Logf("S3 bucket %s holds %s (%d bytes); DynamoDB holds the operation (%s) and the song", cfg.BucketName, obj.Key, obj.Size, rec.Status)
}

// stack is a compose project the test brought up.
type stack struct {
	project string
	names   []string // the project's containers
	base    string   // the gateway's published URL
	client  *client.Client
	media   func(audiofixture.Spec) string
}

// startStack brings files up with podman-compose as project
// butakero-stack-<random>, on a network the test makes, beside a file
// server of the given tones on that network, and waits until the gateway
// is ready and every container's health check passes. Everything is
// removed when t ends.
func startStack(t *testing.T, ctx context.Context, files []string, tones ...audiofixture.Spec) *stack {
	t.Helper()
	image := os.Getenv(EnvImage)
	if image == "" {
		t.Fatalf("%s is not set: run make test-deploy, which builds the image and sets it", EnvImage)
	}
	for _, tool := range []string{"podman", "podman-compose"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s: %v (make test-deploy installs it)", tool, err)
		}
	}
	project := "butakero-stack-" + randomHex(t, 4)

	// The network everything runs on, made here so that the file server
	// can have a fixed address on it.
	podman(t, "network", "create", "--label", "butakero-test="+project, project)
	t.Cleanup(func() { podmanQuiet(t, "network", "rm", "-f", project) })
	var subnets []struct {
		Subnet  string `json:"subnet"`
		Gateway string `json:"gateway"`
	}
	if err := json.Unmarshal([]byte(podman(t, "network", "inspect", project, "--format", "{{json .Subnets}}")), &subnets); err != nil || len(subnets) == 0 {
		t.Fatalf("network %s: subnets %v: %v", project, subnets, err)
	}
	prefix, err := netip.ParsePrefix(subnets[0].Subnet)
	if err != nil {
		t.Fatal(err)
	}
	mediaIP := nthAddr(prefix, 200)

	// The media: tones served from the image itself, read-only.
	media := t.TempDir()
	if err := os.Chmod(media, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, s := range tones {
		if err := os.Chmod(audiofixture.Make(t, media, s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mediaName := project + "-media"
	podman(t, "run", "-d", "--name", mediaName, "--network", project, "--ip", mediaIP.String(),
		"--label", "butakero-test="+project, "-v", media+":/media:ro",
		"--entrypoint", "python3", image, "-m", "http.server", "8000", "--bind", mediaIP.String(), "--directory", "/media")
	t.Cleanup(func() { podmanQuiet(t, "rm", "-f", "-t", "1", mediaName) })

	// The stack: the files, on that network.
	overlay := filepath.Join(t.TempDir(), "network.yaml")
	if err := os.WriteFile(overlay, []byte(fmt.Sprintf("networks:\n  default:\n    name: %s\n    external: true\n", project)), 0o644); err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(loopback.MustPort(t))
	env := append(os.Environ(),
		EnvImage+"="+image,
		"BUTAKERO_PORT="+port,
		"ALLOWED_MEDIA_HOSTS="+net.JoinHostPort(mediaIP.String(), "8000"),
		"NATS_PASSWORD="+randomHex(t, 16),
	)
	args := []string{"-p", project}
	for _, f := range append(files, overlay) {
		args = append(args, "-f", f)
	}
	compose := func(ctx context.Context, more ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "podman-compose", append(args, more...)...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, c := range containers(t, project) {
				t.Logf("--- %s (last lines of its log)\n%s", c, podmanQuiet(t, "logs", "--tail", "25", c))
			}
		}
		// down: stop and remove the containers, and the volumes (-v).
		if out, err := compose(context.Background(), "down", "-v"); err != nil {
			t.Errorf("podman-compose down: %v\n%s", err, out)
		}
		// Whatever down left (it was cut short, or a container was
		// created twice), by the project's label.
		label := "label=io.podman.compose.project=" + project
		for _, c := range containers(t, project) {
			podmanQuiet(t, "rm", "-f", "-t", "1", c)
		}
		for _, v := range strings.Fields(podmanQuiet(t, "volume", "ls", "-q", "--filter", label)) {
			podmanQuiet(t, "volume", "rm", "-f", v)
		}
	})
	start := time.Now()
	if out, err := compose(ctx, "up", "-d", "--no-build"); err != nil {
		t.Fatalf("podman-compose up: %v\n%s", err, out)
	}
	names := containers(t, project)
	t.Logf("podman-compose %s up: %d containers: %s", strings.Join(files, " + "), len(names), strings.Join(names, " "))

	base := "http://127.0.0.1:" + port
	waitFor(t, ctx, 3*time.Minute, "the gateway's /readyz", func() error { return getOK(ctx, base+"/readyz") })
	t.Logf("ready %s after up", time.Since(start).Round(time.Second))
	for _, c := range names {
		waitFor(t, ctx, 2*time.Minute, c+"'s health check", func() error {
			_, err := podmanErr("healthcheck", "run", c)
			if err != nil && strings.Contains(c, "_dynamodb_") {
				// compose.aws.yaml gives DynamoDB Local no health check.
				return nil
			}
			return err
		})
	}
	return &stack{
		project: project,
		names:   names,
		base:    base,
		client:  &client.Client{BaseURL: base, HTTPClient: &http.Client{Timeout: time.Minute}},
		media: func(s audiofixture.Spec) string {
			return "http://" + net.JoinHostPort(mediaIP.String(), "8000") + "/" + s.Name
		},
	}
}

// song requests tone s through the published port and returns the
// operation's id.
func (st *stack) song(t *testing.T, ctx context.Context, s audiofixture.Spec) string {
	t.Helper()
	op, err := st.client.Start(ctx, st.media(s), "")
	if err != nil {
		t.Fatalf("start %s: %v", s.Name, err)
	}
	return op.ID
}

// ip is container c's address on the stack's network.
func (st *stack) ip(t *testing.T, c string) string {
	t.Helper()
	return strings.TrimSpace(podmanQuiet(t, "inspect", c, "--format", "{{(index .NetworkSettings.Networks \""+st.project+"\").IPAddress}}"))
}

// info is what the processes say of themselves, GET /v1/info.
type info struct {
	Versions struct {
		Butakero string `json:"butakero"`
		YTDLP    struct {
			Version string `json:"version"`
			Stale   bool   `json:"stale"`
		} `json:"yt_dlp"`
		FFmpeg struct {
			Version string `json:"version"`
		} `json:"ffmpeg"`
	} `json:"versions"`
	Profile struct {
		NATS           string `json:"nats"`
		Projections    string `json:"projections"`
		Blobs          string `json:"blobs"`
		StreamReplicas int    `json:"stream_replicas"`
	} `json:"profile"`
	Features []string `json:"features"`
}

func (st *stack) info(t *testing.T, ctx context.Context) info {
	t.Helper()
	var i info
	getJSON(t, ctx, st.base+"/v1/info", &i)
	t.Logf("GET /v1/info: %+v", i)
	return i
}

// diagnose, when set, logs what each NATS node holds of the blobs' stream.
var diagnose func()

// checkSong waits for operation id to end and checks that it succeeded with
// at most maxFailures failed attempts and one copy of each event, and that
// its DCA downloads and parses with the source's duration.
func checkSong(t *testing.T, ctx context.Context, c *client.Client, id string, s audiofixture.Spec, maxFailures int) dcafile.Info {
	t.Helper()
	var op client.Operation
	waitFor(t, ctx, 3*time.Minute, s.Name+" to end", func() error {
		var err error
		if op, err = c.Operation(ctx, id); err != nil {
			return err
		}
		if !op.Done() {
			return fmt.Errorf("%s at %s", op.Status, op.Stage)
		}
		return nil
	})
	if op.Status != client.StatusSuccess {
		t.Fatalf("%s: operation %s ended %s (%s): %s", s.Name, id, op.Status, op.ErrorCode, op.Message)
	}
	if op.Failures > maxFailures {
		t.Errorf("%s: %d failed attempts (%d attempts), want at most %d", s.Name, op.Failures, op.Attempts, maxFailures)
	}
	kinds := map[string]int{}
	for _, e := range op.Events {
		kinds[e.Kind]++
	}
	for _, k := range []string{"song.requested", "video.resolved", "audio.downloaded", "dca.encoded", "upload.done"} {
		if kinds[k] != 1 {
			t.Errorf("%s: %d %s events, want 1 (history %v)", s.Name, kinds[k], k, kinds)
		}
	}
	var buf bytes.Buffer
	if _, err := c.DownloadDCA(ctx, op.SongID, &buf); err != nil {
		if diagnose != nil {
			diagnose()
		}
		t.Fatalf("%s: download the DCA: %v", s.Name, err)
	}
	info, err := dcafile.Parse(&buf)
	if err != nil {
		t.Fatalf("%s: the DCA does not parse: %v", s.Name, err)
	}
	if d := info.Duration - s.Duration; d < -100*time.Millisecond || d > 100*time.Millisecond {
		t.Errorf("%s: the DCA lasts %s (%d frames), want %s", s.Name, info.Duration, info.Frames, s.Duration)
	}
	t.Logf("%s: success, %d attempts, DCA of %d frames (%d bytes)", s.Name, op.Attempts, info.Frames, info.Size)
	return info
}

// streamLeader asks the NATS nodes' monitoring (over the stack's network)
// which node leads the BUTAKERO stream.
func streamLeader(t *testing.T, ctx context.Context, project string, names []string) string {
	t.Helper()
	var leader string
	waitFor(t, ctx, time.Minute, "the stream's leader", func() error {
		for _, c := range names {
			if !strings.Contains(c, "_nats-") {
				continue
			}
			ip := strings.TrimSpace(podmanQuiet(t, "inspect", c, "--format", "{{(index .NetworkSettings.Networks \""+project+"\").IPAddress}}"))
			var jsz struct {
				Accounts []struct {
					Streams []struct {
						Name    string `json:"name"`
						Cluster struct {
							Leader string `json:"leader"`
						} `json:"cluster"`
					} `json:"stream_detail"`
				} `json:"account_details"`
			}
			if err := getJSONErr(ctx, "http://"+net.JoinHostPort(ip, "8222")+"/jsz?accounts=true&streams=true", &jsz); err != nil {
				continue
			}
			for _, a := range jsz.Accounts {
				for _, s := range a.Streams {
					if s.Name == "BUTAKERO" && s.Cluster.Leader != "" {
						leader = s.Cluster.Leader
						return nil
					}
				}
			}
		}
		return fmt.Errorf("no node names the BUTAKERO stream's leader")
	})
	return leader
}

// containers are the names of the project's containers.
func containers(t *testing.T, project string) []string {
	t.Helper()
	out := podmanQuiet(t, "ps", "-a", "--filter", "label=io.podman.compose.project="+project, "--format", "{{.Names}}")
	return strings.Fields(out)
}

// containerOf is the container of compose service svc.
func containerOf(t *testing.T, names []string, svc string) string {
	t.Helper()
	for _, n := range names {
		if strings.Contains(n, "_"+svc+"_") {
			return n
		}
	}
	t.Fatalf("no container for %s among %q", svc, names)
	return ""
}

// waitFor polls check until it returns nil, failing t after limit.
func waitFor(t *testing.T, ctx context.Context, limit time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("waiting %s for %s: %v", limit, what, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// get GETs url and returns its 200 response, whose body the caller
// closes; any other status is an error.
func get(ctx context.Context, url string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return resp, nil
}

func getOK(ctx context.Context, url string) error {
	resp, err := get(ctx, url)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

func getJSONErr(ctx context.Context, url string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := get(ctx, url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

func getJSON(t *testing.T, ctx context.Context, url string, v any) {
	t.Helper()
	if err := getJSONErr(ctx, url, v); err != nil {
		t.Fatal(err)
	}
}

// podman runs podman with args and returns its output, failing t on error.
func podman(t *testing.T, args ...string) string {
	t.Helper()
	out, err := podmanErr(args...)
	if err != nil {
		t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// podmanQuiet is podman for cleanups and diagnostics: an error is logged.
func podmanQuiet(t *testing.T, args ...string) string {
	t.Helper()
	out, err := podmanErr(args...)
	if err != nil {
		t.Logf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func podmanErr(args ...string) (string, error) {
	out, err := exec.Command("podman", args...).CombinedOutput()
	return string(out), err
}

// nthAddr is the n-th address of p.
func nthAddr(p netip.Prefix, n int) netip.Addr {
	a := p.Masked().Addr()
	for range n {
		a = a.Next()
	}
	return a
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
