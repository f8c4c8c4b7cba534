package compose_test

import (
	"context"
	"errors"
	"flag"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/butakero/butakero/platform/runtime/config"
	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/nats-io/nats-server/v2/server"
)

// The files under test, relative to this directory.
const (
	baseFile = "compose.yaml"
	awsFile  = "compose.aws.yaml"
)

// TestComposeFiles loads the compose files with compose-go, as docker
// compose does, and checks them against the code: every component (each
// directory under services/) has a service that runs it from the image;
// config.Load accepts each component's environment and finds a cluster with
// three replicas, the NATS credentials the nodes require and, in the AWS
// overlay, S3 and DynamoDB on services of the stack; the NATS cluster has
// three nodes, each one's command read by nats-server's own flag parser,
// with unique names, JetStream, routes to all three, a volume of its own and
// a health check.
func TestComposeFiles(t *testing.T) {
	cases := []struct {
		name  string
		files []string
		env   map[string]string
		aws   bool
	}{
		{"defaults", []string{baseFile}, nil, false},
		{"a password and a port chosen", []string{baseFile}, map[string]string{"NATS_PASSWORD": "chosen-secret", "BUTAKERO_PORT": "9999"}, false},
		{"the AWS profile", []string{baseFile, awsFile}, nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := load(t, tc.env, tc.files...)
			image := checkComponents(t, p, tc.aws)
			checkNATS(t, p, image)
			checkImages(t, p)
			if tc.env["BUTAKERO_PORT"] != "" {
				if got := p.Services["gateway"].Ports[0].Published; got != tc.env["BUTAKERO_PORT"] {
					t.Errorf("gateway published on %s, want BUTAKERO_PORT %s", got, tc.env["BUTAKERO_PORT"])
				}
			}
		})
	}
}

// load is the project docker compose -f files… would run, with env as the
// only environment.
func load(t *testing.T, env map[string]string, files ...string) *types.Project {
	t.Helper()
	var vars []string
	for k, v := range env {
		vars = append(vars, k+"="+v)
	}
	opts, err := cli.NewProjectOptions(files, cli.WithWorkingDirectory("."), cli.WithEnv(vars), cli.WithInterpolation(true))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("compose-go: %v", err)
	}
	return p
}

// components are the directories under services/: each is one component
// that `butakero <name>` and `go run ./services/<name>` run.
func components(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join("..", "..", "services"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	if len(names) != 6 {
		t.Fatalf("services/ holds %q: the check expects the six components", names)
	}
	return names
}

// natsNodes are the services that run `butakero nats-server`, by name.
func natsNodes(p *types.Project) map[string]types.ServiceConfig {
	nodes := map[string]types.ServiceConfig{}
	for name, s := range p.Services {
		if len(s.Command) > 0 && s.Command[0] == "nats-server" {
			nodes[name] = s
		}
	}
	return nodes
}

// checkComponents checks every component's service and returns the image
// they share.
func checkComponents(t *testing.T, p *types.Project, aws bool) string {
	t.Helper()
	nodes := natsNodes(p)
	image := ""
	for _, name := range components(t) {
		s, ok := p.Services[name]
		if !ok {
			t.Errorf("no service for the component %s", name)
			continue
		}
		if !slices.Equal(s.Command, []string{name}) {
			t.Errorf("%s runs %q, want [%s] (butakero %s)", name, s.Command, name, name)
		}
		if image == "" {
			image = s.Image
		}
		if s.Image != image || image == "" {
			t.Errorf("%s runs image %q, want the one image %q", name, s.Image, image)
		}
		if s.Build == nil || filepath.Clean(s.Build.Context) != filepath.Clean(mustAbs(t, "../..")) {
			t.Errorf("%s builds from %+v, want the repository's root", name, s.Build)
		} else if _, err := os.Stat(filepath.Join(s.Build.Context, s.Build.Dockerfile)); err != nil {
			t.Errorf("%s's Dockerfile: %v", name, err)
		}

		env := map[string]string{}
		for k, v := range s.Environment {
			if v != nil {
				env[k] = *v
			}
		}
		cfg, err := config.Load(config.FromMap(env))
		if err != nil {
			t.Errorf("%s: config.Load refuses its environment:\n%v", name, err)
			continue
		}
		if cfg.Embedded() || cfg.StreamReplicas != 3 {
			t.Errorf("%s: embedded %t, STREAM_REPLICAS %d; want the cluster and 3", name, cfg.Embedded(), cfg.StreamReplicas)
		}
		var hosts []string
		for _, raw := range strings.Split(cfg.NATSURL, ",") {
			u, err := url.Parse(raw)
			if err != nil || u.Scheme != "nats" || u.Port() != "4222" {
				t.Errorf("%s: NATS_URL entry %q is not nats://<node>:4222", name, raw)
				continue
			}
			hosts = append(hosts, u.Hostname())
		}
		if want := sortedKeys(nodes); !slices.Equal(slices.Sorted(slices.Values(hosts)), want) {
			t.Errorf("%s: NATS_URL names %q, want every node %q", name, hosts, want)
		}
		for node, n := range nodes {
			opts := natsOptions(t, node, n)
			if cfg.NATSUser != opts.Username || cfg.NATSPassword != opts.Password || cfg.NATSUser == "" {
				t.Errorf("%s: NATS_USER %q and its password are not what %s requires (%q)", name, cfg.NATSUser, node, opts.Username)
			}
			if dep, ok := s.DependsOn[node]; !ok || dep.Condition != types.ServiceConditionHealthy {
				t.Errorf("%s does not wait for %s to be healthy (%+v)", name, node, dep)
			}
		}

		if aws {
			if !cfg.BlobsInS3() || !cfg.ProjectionsInDynamoDB() || !cfg.AWSAutoCreate {
				t.Errorf("%s: blobs in S3 %t, projections in DynamoDB %t, auto-create %t; want all", name, cfg.BlobsInS3(), cfg.ProjectionsInDynamoDB(), cfg.AWSAutoCreate)
			}
			for _, v := range []string{"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_DYNAMODB"} {
				u, err := url.Parse(env[v])
				if err != nil || u.Host == "" {
					t.Errorf("%s: %s=%q", name, v, env[v])
					continue
				}
				if _, ok := p.Services[u.Hostname()]; !ok {
					t.Errorf("%s: %s names %q, no service of the stack", name, v, u.Hostname())
				}
			}
			if s3 := p.Services["s3"]; s3.Environment["ROOT_ACCESS_KEY"] == nil || *s3.Environment["ROOT_ACCESS_KEY"] != cfg.AccessKey ||
				s3.Environment["ROOT_SECRET_KEY"] == nil || *s3.Environment["ROOT_SECRET_KEY"] != cfg.SecretKey {
				t.Errorf("%s: ACCESS_KEY/SECRET_KEY are not the S3 server's root credentials", name)
			}
			if dep, ok := s.DependsOn["s3"]; !ok || dep.Condition != types.ServiceConditionHealthy {
				t.Errorf("%s does not wait for s3 to be healthy", name)
			}
		} else if cfg.BlobsInS3() || cfg.ProjectionsInDynamoDB() {
			t.Errorf("%s: AWS stores without the AWS overlay", name)
		}

		// The gateway's port, and only the gateway's, is published, on
		// loopback, and it is the one the gateway listens on.
		if name == "gateway" {
			_, port, _ := net.SplitHostPort(cfg.HTTPAddr)
			if len(s.Ports) != 1 || s.Ports[0].Target != mustPort(t, port) || s.Ports[0].HostIP != "127.0.0.1" {
				t.Errorf("gateway publishes %+v, want its HTTP_ADDR port %s on 127.0.0.1", s.Ports, port)
			}
		} else if len(s.Ports) > 0 {
			t.Errorf("%s publishes %+v: only the gateway should", name, s.Ports)
		}
	}
	return image
}

// checkNATS checks the cluster: three nodes of the components' image, each
// command as nats-server parses it.
func checkNATS(t *testing.T, p *types.Project, image string) {
	t.Helper()
	nodes := natsNodes(p)
	if len(nodes) != 3 {
		t.Fatalf("%d NATS nodes (%q), want 3", len(nodes), sortedKeys(nodes))
	}
	names, clusters, volumes := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for node, s := range nodes {
		if s.Image != image {
			t.Errorf("%s runs %q, want the components' image %q", node, s.Image, image)
		}
		opts := natsOptions(t, node, s)
		if !opts.JetStream {
			t.Errorf("%s: JetStream off (-js missing)", node)
		}
		if opts.ServerName == "" || names[opts.ServerName] {
			t.Errorf("%s: server name %q is empty or not unique", node, opts.ServerName)
		}
		names[opts.ServerName] = true
		clusters[opts.Cluster.Name] = true
		if opts.Cluster.Port != 6222 {
			t.Errorf("%s: cluster port %d, want 6222", node, opts.Cluster.Port)
		}
		var routes []string
		for _, r := range opts.Routes {
			if r.Port() != "6222" {
				t.Errorf("%s: route %s is not to a node's 6222", node, r)
			}
			routes = append(routes, r.Hostname())
		}
		if want := sortedKeys(nodes); !slices.Equal(slices.Sorted(slices.Values(routes)), want) {
			t.Errorf("%s: routes to %q, want every node %q", node, routes, want)
		}
		// The store is on a named volume of this node's own.
		stored := false
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeVolume && (opts.StoreDir == v.Target || strings.HasPrefix(opts.StoreDir, v.Target+"/")) {
				if volumes[v.Source] {
					t.Errorf("%s shares the volume %s", node, v.Source)
				}
				volumes[v.Source] = true
				stored = true
			}
		}
		if !stored {
			t.Errorf("%s: the store dir %q is on no named volume (%+v)", node, opts.StoreDir, s.Volumes)
		}
		hc := s.HealthCheck
		if hc == nil || hc.Disable || !slices.Contains(hc.Test, "http://127.0.0.1:8222/healthz") || opts.HTTPPort != 8222 {
			t.Errorf("%s: health check %+v with monitoring on %d, want butakero healthcheck of its /healthz on 8222", node, hc, opts.HTTPPort)
		}
		if len(s.Ports) > 0 {
			t.Errorf("%s publishes %+v: only the gateway should", node, s.Ports)
		}
	}
	if len(clusters) != 1 {
		t.Errorf("the nodes name clusters %v, want one", sortedKeys(clusters))
	}
}

// checkImages: every image is pinned (a tag, never latest).
func checkImages(t *testing.T, p *types.Project) {
	t.Helper()
	for name, s := range p.Services {
		ref := s.Image
		if i := strings.LastIndex(ref, "/"); i >= 0 {
			ref = ref[i+1:]
		}
		_, tag, ok := strings.Cut(ref, ":")
		if !ok || tag == "" || tag == "latest" {
			t.Errorf("%s: image %q is not pinned to a tag", name, s.Image)
		}
	}
}

// natsOptions parses node's command (after "nats-server") with
// nats-server's own flags, as `butakero nats-server` does.
func natsOptions(t *testing.T, node string, s types.ServiceConfig) *server.Options {
	t.Helper()
	fs := flag.NewFlagSet("nats-server", flag.ContinueOnError)
	fail := func() { t.Fatalf("%s: the command %q asks nats-server to print and exit", node, s.Command) }
	opts, err := server.ConfigureOptions(fs, s.Command[1:], fail, fail, fail)
	if err != nil {
		t.Fatalf("%s: nats-server refuses %q: %v", node, s.Command, err)
	}
	return opts
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	})
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func mustPort(t *testing.T, s string) uint32 {
	t.Helper()
	p, err := net.LookupPort("tcp", s)
	if err != nil {
		t.Fatal(errors.Join(errors.New("HTTP_ADDR port"), err))
	}
	return uint32(p)
}
