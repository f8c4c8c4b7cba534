package ecs_test

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/butakero/butakero/deploy/ecs/tfload"
	"github.com/butakero/butakero/events"
	"github.com/butakero/butakero/platform/runtime/emf"
	"github.com/butakero/butakero/platform/store/dynamostore"
	"github.com/zclconf/go-cty/cty"
)

// TestEveryComponentHasAServiceInEveryStage: one ECS service per
// component and stage, running the image with the component's name as
// its command, which is how cmd/butakero's image starts one service alone.
func TestEveryComponentHasAServiceInEveryStage(t *testing.T) {
	for _, st := range stageNames {
		image := str(t, "var.image", stage(t, st).Vars["image"])
		for _, name := range componentNames {
			t.Run(st+"/"+name, func(t *testing.T) {
				_, svc := component(t, st, name)
				s := resource(t, svc, "aws_ecs_service.this")
				if got := str(t, "service name", s.Get("name")); got != name {
					t.Errorf("service name %q, want %q", got, name)
				}
				c := mainContainer(t, st, name)
				if c.Image != image || !slices.Equal(c.Command, []string{name}) || !c.Essential {
					t.Errorf("container: image %q command %v essential %v; want %q [%s] true", c.Image, c.Command, c.Essential, image, name)
				}
				if c.LogConfiguration.LogDriver != "awslogs" {
					t.Errorf("log driver %q, want awslogs (the EMF lines reach CloudWatch through it)", c.LogConfiguration.LogDriver)
				}
				lg := resource(t, svc, "aws_cloudwatch_log_group.this")
				if got := str(t, "log group", lg.Get("name")); got != c.LogConfiguration.Options["awslogs-group"] {
					t.Errorf("container logs to %q, the log group is %q", c.LogConfiguration.Options["awslogs-group"], got)
				}
				if days := num(t, "retention_in_days", lg.Get("retention_in_days")); days <= 0 {
					t.Errorf("log group keeps logs forever; want a retention")
				}
				// SHUTDOWN_GRACE plus the drain must fit before SIGKILL.
				if c.StopTimeout < 30 || c.StopTimeout > 120 {
					t.Errorf("stopTimeout %d s: want 30 (SHUTDOWN_GRACE 20 s and the 10 s drain) to 120 (Fargate's limit)", c.StopTimeout)
				}
			})
		}
	}
}

// requirement is an environment variable a component needs in this
// deployment, and why.
type requirement struct {
	name   string
	why    string
	secret bool // from Secrets Manager, never plain
	// value checks the value of a plain variable; nil accepts any
	// non-empty one.
	value func(t *testing.T, st, comp, v string)
}

func equals(want func(t *testing.T, st, comp string) string) func(t *testing.T, st, comp, v string) {
	return func(t *testing.T, st, comp, v string) {
		t.Helper()
		if w := want(t, st, comp); v != w {
			t.Errorf("= %q, want %q", v, w)
		}
	}
}

func literal(s string) func(t *testing.T, st, comp, v string) {
	return equals(func(*testing.T, string, string) string { return s })
}

// every is what each component needs: standalone.Main runs the same
// start-up in all of them. The stores' variables go only to the
// components that open those stores (storeEnvironment).
var every = []requirement{
	{name: "NATS_URL", why: "natsconn.Connect refuses an empty NATS_URL: a service alone needs the cluster",
		value: equals(func(t *testing.T, st, _ string) string { return str(t, "nats_url", stack(t, st).Outputs["nats_url"]) })},
	{name: "STREAM_REPLICAS", why: "events.EnsureStream and every bucket take it; the default 1 would lose the stream with one node",
		value: equals(func(t *testing.T, st, _ string) string { return strconv.Itoa(natsNodes(t, st)) })},
	{name: "REGION", why: "awsconfig.Load fails without a region",
		value: equals(func(t *testing.T, st, _ string) string { return str(t, "var.region", stage(t, st).Vars["region"]) })},
	{name: "AWS_AUTO_CREATE", why: "the tables and bucket come from Terraform; no role may create them", value: literal("false")},
	{name: "LOG_FORMAT", why: "JSON lines, which CloudWatch Logs Insights reads beside the EMF lines", value: literal("json")},
	{name: "NATS_USER", why: "the cluster of modules/nats authenticates every client",
		value: equals(func(t *testing.T, st, _ string) string {
			return str(t, "client_user", stack(t, st).Module("nats").Outputs["client_user"])
		})},
	{name: "NATS_PASSWORD", why: "as NATS_USER", secret: true},
}

// bucketName and tableNames select the AWS stores (platform/store).
var (
	bucketName = requirement{name: "BUCKET_NAME", why: "store.Blobs puts blobs in S3 only when it is set (else in the JetStream Object Store)",
		value: equals(func(t *testing.T, st, _ string) string {
			return str(t, "bucket", resource(t, storage(t, st), "aws_s3_bucket.blobs").Get("bucket"))
		})}
	tableNames = []requirement{
		{name: "DYNAMODB_TABLE_NAME_OPERATION", why: "the projections and the search cache are in DynamoDB only when both table names are set (config.Load refuses one alone)",
			value: equals(func(t *testing.T, st, _ string) string { return tableName(t, st, "operations") })},
		{name: "DYNAMODB_TABLE_NAME_SONGS", why: "as DYNAMODB_TABLE_NAME_OPERATION",
			value: equals(func(t *testing.T, st, _ string) string { return tableName(t, st, "songs") })},
	}
)

// storeEnvironment is what each opener of platform/store needs set.
var storeEnvironment = map[string][]requirement{
	"Blobs":       {bucketName},
	"Projections": tableNames,
	"Cache":       tableNames, // dynamostore's cache is in the songs table
}

// storeless are the components that open no store: they talk to NATS
// alone.
var storeless = map[string]bool{"notifier": true}

// opens are the store openers component calls when it runs alone
// (services/<name>/<name>/alone.go), read from its source.
func opens(t *testing.T, component string) []string {
	t.Helper()
	got := storeOpeners(t, "services/"+component+"/"+component)
	switch {
	case len(got) == 0 && !storeless[component]:
		t.Fatalf("%s opens no store (services/%s/%s calls no platform/store opener): if it is meant to, add it to storeless", component, component, component)
	case len(got) > 0 && storeless[component]:
		t.Fatalf("%s opens store.%s: remove it from storeless", component, strings.Join(got, ", store."))
	}
	for _, o := range got {
		if _, ok := storeEnvironment[o]; !ok {
			t.Fatalf("%s calls store.%s, which the test does not know: add its variables to storeEnvironment", component, o)
		}
	}
	return got
}

// emits is what a service with a durable consumer needs to report its
// backlog (standalone, package emf): those of standalone's stageConsumers,
// not the gateway (no consumer) nor the notifier (one consumer per
// WEBHOOK_URL, whose backlog it does not report).
var emits = []requirement{
	{name: "METRICS_EMF", why: "the backlog the service scales on, or that shows the recorder's lag", value: literal("true")},
	{name: "METRICS_DEPLOYMENT", why: "the Deployment dimension the scaling policy reads",
		value: equals(func(t *testing.T, st, _ string) string { return st })},
}

var required = map[string][]requirement{
	"gateway": {
		{name: "HTTP_ADDR", why: "the port the load balancer's target group sends to",
			value: equals(func(t *testing.T, st, comp string) string {
				c := mainContainer(t, st, comp)
				if len(c.PortMappings) != 1 {
					t.Fatalf("gateway: want one port mapping, got %v", c.PortMappings)
				}
				return ":" + strconv.Itoa(c.PortMappings[0].ContainerPort)
			})},
		{name: "PUBLIC_URL", why: "behind the load balancer the listen address is not the users' origin: without it the WebSocket origin check refuses browsers",
			value: equals(func(t *testing.T, st, _ string) string {
				return str(t, "var.public_url", stage(t, st).Vars["public_url"])
			})},
		{name: "API_KEYS", why: "without keys /api and /v1 are open to anyone who finds the load balancer", secret: true},
	},
	"resolver": {
		{name: "YOUTUBE_API_KEY", why: "searches from a data center through yt-dlp alone meet YouTube's bot checks", secret: true},
		{name: "YTDLP_COOKIES_FILE", why: "the stage's tfvars give cookies: the yt-dlp search fallback must find them"},
	},
	"fetcher": {
		{name: "FETCH_CONCURRENCY", why: "the downloads per task the backlog target is sized for"},
		{name: "YTDLP_COOKIES_FILE", why: "the stage's tfvars give cookies: yt-dlp must find them"},
	},
	"encoder": {
		{name: "ENCODE_CONCURRENCY", why: "one ffmpeg per vCPU of the task, not per CPU the runtime sees",
			value: equals(func(t *testing.T, st, comp string) string {
				_, svc := component(t, st, comp)
				return strconv.Itoa(max(1, int(num(t, "size.cpu", svc.Vars["size"].GetAttr("cpu")))/1024))
			})},
	},
	"recorder": {},
	"notifier": {
		{name: "WEBHOOK_URL", why: "without it the notifier delivers nothing",
			value: equals(func(t *testing.T, st, _ string) string {
				return str(t, "var.webhook_urls", stage(t, st).Vars["webhook_urls"])
			})},
		{name: "WEBHOOK_SECRET", why: "it signs every delivery: whoever has it can forge one", secret: true},
		{name: "WEBHOOK_ALLOWED_HOSTS", why: "config.Load refuses a WEBHOOK_URL on a host it does not list",
			value: equals(func(t *testing.T, st, _ string) string {
				return str(t, "var.webhook_allowed_hosts", stage(t, st).Vars["webhook_allowed_hosts"])
			})},
		{name: "WEBHOOK_MAX_AGE", why: "how long a failing receiver is retried"},
	},
}

// TestRequiredEnvironment: every variable a component needs is set, plain
// or from a secret as it should be, with the value the rest of the
// configuration implies.
func TestRequiredEnvironment(t *testing.T) {
	for _, st := range stageNames {
		for _, name := range componentNames {
			t.Run(st+"/"+name, func(t *testing.T) {
				c := mainContainer(t, st, name)
				env, secrets := c.env(), c.secrets()
				reqs := append(append([]requirement{}, every...), required[name]...)
				if backlogReporters(t)[name] {
					reqs = append(reqs, emits...)
				}
				storeVars := map[string]bool{}
				for _, o := range opens(t, name) {
					reqs = append(reqs, storeEnvironment[o]...)
					for _, r := range storeEnvironment[o] {
						storeVars[r.name] = true
					}
				}
				// A store the component does not open gets no name: its task
				// knows of no bucket or table it has no use for.
				for _, r := range append([]requirement{bucketName}, tableNames...) {
					if _, set := env[r.name]; set && !storeVars[r.name] {
						t.Errorf("%s is set, but %s opens no store it selects (it calls store.%s)", r.name, name, strings.Join(opens(t, name), ", store."))
					}
				}
				for _, r := range reqs {
					v, plain := env[r.name]
					_, secret := secrets[r.name]
					switch {
					case r.secret && !secret:
						t.Errorf("%s: not set from a secret (%s)", r.name, r.why)
					case r.secret && plain:
						t.Errorf("%s: also set in plain text", r.name)
					case !r.secret && !plain:
						t.Errorf("%s: not set (%s)", r.name, r.why)
					case !r.secret && r.value != nil:
						t.Run(r.name, func(t *testing.T) { r.value(t, st, name, v) })
					case !r.secret && v == "":
						t.Errorf("%s: empty (%s)", r.name, r.why)
					}
				}
			})
		}
	}
}

// TestEveryVariableIsOneTheCodeReads: a misspelt name would be ignored
// silently, leaving the default.
func TestEveryVariableIsOneTheCodeReads(t *testing.T) {
	known := configVariables(t)
	for _, st := range stageNames {
		for _, name := range componentNames {
			c := mainContainer(t, st, name)
			var names []string
			for k := range c.env() {
				names = append(names, k)
			}
			for k := range c.secrets() {
				names = append(names, k)
			}
			for _, k := range names {
				if !known[k] {
					t.Errorf("%s/%s: %s is not a variable platform/runtime/config reads", st, name, k)
				}
			}
		}
	}
}

// TestSecretFilesAreWrittenBeforeTheServiceStarts: a variable naming a
// file read from a secret points into the task's volume, which the init
// container writes from that secret before the service starts.
func TestSecretFilesAreWrittenBeforeTheServiceStarts(t *testing.T) {
	for _, st := range stageNames {
		for _, name := range componentNames {
			_, svc := component(t, st, name)
			files := svc.Vars["secret_files"]
			if files.LengthInt() == 0 {
				continue
			}
			var main, init container
			for _, c := range containers(t, svc) {
				switch c.Name {
				case name:
					main = c
				case "secret-files":
					init = c
				}
			}
			if init.Name == "" || init.Essential {
				t.Fatalf("%s/%s: secret files without a non-essential secret-files container", st, name)
			}
			if len(main.DependsOn) != 1 || main.DependsOn[0].ContainerName != "secret-files" || main.DependsOn[0].Condition != "SUCCESS" {
				t.Errorf("%s/%s: the service does not wait for secret-files to succeed: %+v", st, name, main.DependsOn)
			}
			script := strings.Join(init.Command, " ")
			for file, f := range files.AsValueMap() {
				env := str(t, "env", f.GetAttr("env"))
				arn := str(t, "secret_arn", f.GetAttr("secret_arn"))
				path := main.env()[env]
				if !strings.HasSuffix(path, "/"+file) || len(main.MountPoints) != 1 || !strings.HasPrefix(path, main.MountPoints[0].ContainerPath+"/") {
					t.Errorf("%s/%s: %s=%q is not %s in the mounted volume %+v", st, name, env, path, file, main.MountPoints)
				}
				var from string
				for k, v := range init.secrets() {
					if v == arn {
						from = k
					}
				}
				if from == "" || !strings.Contains(script, `"$`+from+`" >`+path) {
					t.Errorf("%s/%s: secret-files does not write %s from %s: %q", st, name, path, arn, script)
				}
			}
		}
	}
}

// storage is a stage's modules/storage instance.
func storage(t *testing.T, st string) *tfload.Instance {
	t.Helper()
	in := stack(t, st).Module("storage")
	if in == nil {
		t.Fatalf("%s: no module storage", st)
	}
	return in
}

// tableName is the name of the operations or songs table.
func tableName(t *testing.T, st, which string) string {
	t.Helper()
	return str(t, which+" table", resource(t, storage(t, st), "aws_dynamodb_table."+which).Get("name"))
}

// natsNodes is how many NATS nodes the stage runs.
func natsNodes(t *testing.T, st string) int {
	t.Helper()
	nats := stack(t, st).Module("nats")
	if nats == nil {
		t.Fatalf("%s: the stage's tfvars use an existing cluster; the checks expect the default, modules/nats", st)
	}
	n := 0
	for _, r := range nats.Resources {
		if r.Mode == "resource" && r.Type == "aws_instance" {
			n++
		}
	}
	return n
}

// TestTablesAreTheOnesDynamostoreCreates: keys, attribute types, indexes,
// projections, billing and the TTL attribute of each table are those of
// dynamostore.Definitions, the requests AWS_AUTO_CREATE sends; and the
// table each variable names is the one defined for it.
func TestTablesAreTheOnesDynamostoreCreates(t *testing.T) {
	for _, st := range stageNames {
		env := mainContainer(t, st, "recorder").env()
		defs := dynamostore.Definitions(env["DYNAMODB_TABLE_NAME_OPERATION"], env["DYNAMODB_TABLE_NAME_SONGS"])
		if len(defs) != 2 {
			t.Fatalf("dynamostore defines %d tables; this test knows two", len(defs))
		}
		byName := map[string]*tfload.Resource{}
		for _, r := range storage(t, st).Resources {
			if r.Type == "aws_dynamodb_table" {
				byName[str(t, "table name", r.Get("name"))] = r
			}
		}
		if len(byName) != len(defs) {
			t.Errorf("%s: %d tables in Terraform, dynamostore creates %d", st, len(byName), len(defs))
		}
		for variable, def := range defs {
			t.Run(st+"/"+variable, func(t *testing.T) {
				r := byName[*def.TableName]
				if r == nil {
					t.Fatalf("no table %q (%s)", *def.TableName, variable)
				}
				if got, want := str(t, "billing_mode", r.Get("billing_mode")), string(def.BillingMode); got != want {
					t.Errorf("billing_mode %s, want %s", got, want)
				}
				for _, k := range def.KeySchema {
					attr := map[types.KeyType]string{types.KeyTypeHash: "hash_key", types.KeyTypeRange: "range_key"}[k.KeyType]
					if got := str(t, attr, r.Get(attr)); got != *k.AttributeName {
						t.Errorf("%s %s, want %s", attr, got, *k.AttributeName)
					}
				}
				if len(def.KeySchema) == 1 && r.Get("range_key") != cty.NilVal {
					t.Errorf("range_key set; dynamostore's key is %s alone", *def.KeySchema[0].AttributeName)
				}
				want := map[string]string{}
				for _, a := range def.AttributeDefinitions {
					want[*a.AttributeName] = string(a.AttributeType)
				}
				got := map[string]string{}
				for i := 0; r.Get("attribute", i) != cty.NilVal; i++ {
					got[str(t, "attribute name", r.Get("attribute", i, "name"))] = str(t, "attribute type", r.Get("attribute", i, "type"))
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("attributes %v, want %v", got, want)
				}
				if n := r.Get("global_secondary_index").LengthInt(); n != len(def.GlobalSecondaryIndexes) {
					t.Errorf("%d GSIs, want %d", n, len(def.GlobalSecondaryIndexes))
				}
				for i, g := range def.GlobalSecondaryIndexes {
					gsi := func(a string) string { return str(t, "gsi "+a, r.Get("global_secondary_index", i, a)) }
					if gsi("name") != *g.IndexName || gsi("projection_type") != string(g.Projection.ProjectionType) {
						t.Errorf("GSI %d: %s (%s), want %s (%s)", i, gsi("name"), gsi("projection_type"), *g.IndexName, g.Projection.ProjectionType)
					}
					for _, k := range g.KeySchema {
						attr := map[types.KeyType]string{types.KeyTypeHash: "hash_key", types.KeyTypeRange: "range_key"}[k.KeyType]
						if gsi(attr) != *k.AttributeName {
							t.Errorf("GSI %s %s: %s, want %s", *g.IndexName, attr, gsi(attr), *k.AttributeName)
						}
					}
				}
				if ttl := str(t, "ttl attribute", r.Get("ttl", 0, "attribute_name")); ttl != dynamostore.ExpiresAttr || !r.Get("ttl", 0, "enabled").True() {
					t.Errorf("TTL on %q (enabled %v), want on %q", ttl, r.Get("ttl", 0, "enabled"), dynamostore.ExpiresAttr)
				}
			})
		}
	}
}

// TestBucket: encrypted, private, TLS only, and staged downloads expire.
func TestBucket(t *testing.T) {
	for _, st := range stageNames {
		s := storage(t, st)
		sse := resource(t, s, "aws_s3_bucket_server_side_encryption_configuration.blobs")
		if alg := str(t, "sse", sse.Get("rule", 0, "apply_server_side_encryption_by_default", 0, "sse_algorithm")); alg != "AES256" {
			t.Errorf("%s: encryption %s; want AES256 (SSE-S3: no KMS permission needed by the roles)", st, alg)
		}
		pab := resource(t, s, "aws_s3_bucket_public_access_block.blobs")
		for _, a := range []string{"block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"} {
			if !pab.Get(a).True() {
				t.Errorf("%s: %s is not true", st, a)
			}
		}
		lc := resource(t, s, "aws_s3_bucket_lifecycle_configuration.blobs")
		staging := false
		for i := 0; lc.Get("rule", i) != cty.NilVal; i++ {
			if p := lc.Get("rule", i, "filter", 0, "prefix"); p != cty.NilVal && p.AsString() == "staging/" &&
				str(t, "status", lc.Get("rule", i, "status")) == "Enabled" && num(t, "days", lc.Get("rule", i, "expiration", 0, "days")) > 0 {
				staging = true
			}
		}
		if !staging {
			t.Errorf("%s: no enabled lifecycle rule expiring staging/", st)
		}
	}
}

// TestGatewayLoadBalancer: the health check is /readyz, and the idle
// timeout outlasts the gateway's WebSocket ping interval (so a quiet
// socket is not cut) and is shorter than its keep-alive idle timeout (so
// the balancer never reuses a connection the gateway is closing).
func TestGatewayLoadBalancer(t *testing.T) {
	ping := durationConst(t, "services/gateway/gateway", "pingEvery")
	keepAlive := durationConst(t, "services/gateway/gateway", "idleTimeout")
	for _, st := range stageNames {
		gw, svc := component(t, st, "gateway")
		lb := resource(t, gw, "aws_lb.this")
		idle := num(t, "idle_timeout", lb.Get("idle_timeout"))
		if idle <= 2*ping.Seconds() || idle >= keepAlive.Seconds() {
			t.Errorf("%s: idle_timeout %v s; want above two pings (%v) and below the gateway's keep-alive timeout (%v)", st, idle, 2*ping, keepAlive)
		}
		tg := resource(t, gw, "aws_lb_target_group.gateway")
		if p := str(t, "health path", tg.Get("health_check", 0, "path")); p != "/readyz" {
			t.Errorf("%s: health check %s, want /readyz", st, p)
		}
		port := mainContainer(t, st, "gateway").PortMappings[0].ContainerPort
		if int(num(t, "target port", tg.Get("port"))) != port {
			t.Errorf("%s: target group port %v, container port %d", st, tg.Get("port"), port)
		}
		s := resource(t, svc, "aws_ecs_service.this")
		if got := str(t, "load_balancer", s.Get("load_balancer", 0, "target_group_arn")); got != str(t, "tg arn", tg.Get("arn")) {
			t.Errorf("%s: the service is not in the target group (%s)", st, got)
		}
	}
}

// TestScalingReadsTheEmittedMetric: resolver, fetcher and encoder each
// target-track their consumer's backlog, read from exactly the namespace,
// metric and dimensions package emf writes, divided by their running
// tasks; the target leaves each task its concurrency's worth of work.
func TestScalingReadsTheEmittedMetric(t *testing.T) {
	consumers := map[string]string{"resolver": events.ConsumerResolver, "fetcher": events.ConsumerFetcher, "encoder": events.ConsumerEncoder}
	concurrency := map[string]func(t *testing.T, st string) int{
		"resolver": func(t *testing.T, _ string) int { return intConst(t, "services/resolver/resolver", "Concurrency") },
		"fetcher": func(t *testing.T, st string) int {
			n, _ := strconv.Atoi(mainContainer(t, st, "fetcher").env()["FETCH_CONCURRENCY"])
			return n
		},
		"encoder": func(t *testing.T, st string) int {
			n, _ := strconv.Atoi(mainContainer(t, st, "encoder").env()["ENCODE_CONCURRENCY"])
			return n
		},
	}
	for _, st := range stageNames {
		cluster := stack(t, st).Module("cluster")
		ci := resource(t, cluster, "aws_ecs_cluster.this")
		if ci.Get("setting", 0, "name").AsString() != "containerInsights" || ci.Get("setting", 0, "value").AsString() != "enabled" {
			t.Errorf("%s: Container Insights is off: RunningTaskCount would be missing", st)
		}
		clusterName := str(t, "cluster name", ci.Get("name"))
		for _, name := range componentNames {
			t.Run(st+"/"+name, func(t *testing.T) {
				_, svc := component(t, st, name)
				target := resource(t, svc, "aws_appautoscaling_target.this")
				lo, hi := num(t, "min", target.Get("min_capacity")), num(t, "max", target.Get("max_capacity"))
				if lo < 1 || hi < lo {
					t.Errorf("bounds %v..%v: want 1 <= min <= max", lo, hi)
				}
				backlog := svc.Resource("aws_appautoscaling_policy.backlog[0]")
				consumer, scales := consumers[name]
				if !scales {
					if backlog != nil {
						t.Errorf("%s scales on a backlog; only the stages do", name)
					}
					if name == "recorder" && hi != lo {
						// Its tasks share the lanes (RECORDER_PARTITIONS);
						// no policy scales it, so bounds that differ would
						// only mislead.
						t.Errorf("recorder bounds %v..%v: it runs a fixed number of tasks, nothing scales it", lo, hi)
					}
					return
				}
				if backlog == nil {
					t.Fatal("no backlog scaling policy")
				}
				cfg := backlog.Get("target_tracking_scaling_policy_configuration", 0)
				spec := tfload.Get(cfg, "customized_metric_specification", 0)
				metrics := map[string]map[string]string{}
				var expr, exprID string
				for i := 0; tfload.Get(spec, "metrics", i) != cty.NilVal; i++ {
					m := tfload.Get(spec, "metrics", i)
					id := str(t, "metric id", tfload.Get(m, "id"))
					if e := tfload.Get(m, "expression"); e != cty.NilVal && !e.IsNull() {
						expr, exprID = e.AsString(), id
						if !tfload.Get(m, "return_data").True() {
							t.Errorf("the expression %s does not return data", id)
						}
						continue
					}
					ms := tfload.Get(m, "metric_stat", 0, "metric", 0)
					d := map[string]string{
						"namespace": str(t, "namespace", tfload.Get(ms, "namespace")),
						"metric":    str(t, "metric_name", tfload.Get(ms, "metric_name")),
					}
					for j := 0; tfload.Get(ms, "dimensions", j) != cty.NilVal; j++ {
						d["dim:"+str(t, "dim", tfload.Get(ms, "dimensions", j, "name"))] = str(t, "dim value", tfload.Get(ms, "dimensions", j, "value"))
					}
					metrics[id] = d
				}
				var backlogID, tasksID string
				for id, d := range metrics {
					switch {
					case d["namespace"] == emf.Namespace && d["metric"] == emf.MetricConsumerBacklog:
						backlogID = id
						want := map[string]string{
							"namespace": emf.Namespace, "metric": emf.MetricConsumerBacklog,
							"dim:" + emf.DimensionDeployment: mainContainer(t, st, name).env()["METRICS_DEPLOYMENT"],
							"dim:" + emf.DimensionConsumer:   consumer,
						}
						if fmt.Sprint(d) != fmt.Sprint(want) {
							t.Errorf("backlog metric %v, want %v (what package emf writes for this service)", d, want)
						}
					case d["namespace"] == "ECS/ContainerInsights" && d["metric"] == "RunningTaskCount":
						tasksID = id
						s := resource(t, svc, "aws_ecs_service.this")
						if d["dim:ClusterName"] != clusterName || d["dim:ServiceName"] != str(t, "service", s.Get("name")) {
							t.Errorf("running tasks of %v, want cluster %s service %s", d, clusterName, s.Get("name").AsString())
						}
					default:
						t.Errorf("metric %s reads %v, neither the backlog nor the running tasks", id, d)
					}
				}
				if backlogID == "" || tasksID == "" || strings.ReplaceAll(expr, " ", "") != backlogID+"/"+tasksID {
					t.Errorf("%s = %q; want %s / %s (backlog per running task)", exprID, expr, backlogID, tasksID)
				}
				goal := num(t, "target_value", tfload.Get(cfg, "target_value"))
				if n := concurrency[name](t, st); goal < float64(n) {
					t.Errorf("target %v per task is below the %d messages a task works on at once: it would scale out with slots free", goal, n)
				}
			})
		}
	}
}

// TestNATSNotOnEFSOrFargate: JetStream's file store runs on EBS volumes of
// three EC2 nodes in three subnets, never on EFS or in a task.
func TestNATSNotOnEFSOrFargate(t *testing.T) {
	for _, st := range stageNames {
		root := stage(t, st)
		for _, typ := range []string{"aws_efs_file_system", "aws_efs_mount_target", "aws_efs_access_point"} {
			if fs := root.Find("resource", typ); len(fs) > 0 {
				t.Errorf("%s: %s at %s: JetStream must not run on EFS", st, typ, fs[0].In.Addr)
			}
		}
		for _, f := range root.Find("resource", "aws_ecs_task_definition") {
			for _, c := range containers(t, f.In) {
				if strings.Contains(c.Image, "nats") || slices.Contains(c.Command, "nats-server") {
					t.Errorf("%s: %s runs NATS in a task (%s): Fargate's storage is ephemeral", st, f.In.Addr, c.Image)
				}
			}
		}
		nats := stack(t, st).Module("nats")
		if nats == nil {
			t.Fatalf("%s: no modules/nats: the default is the three-node cluster", st)
		}
		if n := natsNodes(t, st); n != 3 {
			t.Errorf("%s: %d nodes, want 3", st, n)
		}
		subnets := map[string]bool{}
		for _, r := range nats.Resources {
			switch r.Type {
			case "aws_network_interface":
				subnets[str(t, "subnet", r.Get("subnet_id"))] = true
			case "aws_ebs_volume":
				if !r.Get("encrypted").True() || str(t, "type", r.Get("type")) != "gp3" {
					t.Errorf("%s: %s: want an encrypted gp3 volume", st, r.Addr())
				}
			}
		}
		if len(subnets) != 3 {
			t.Errorf("%s: nodes in %d subnets, want one each in three", st, len(subnets))
		}
		if len(nats.Find("resource", "aws_ebs_volume")) != 3 || len(nats.Find("resource", "aws_volume_attachment")) != 3 {
			t.Errorf("%s: want an EBS volume attached to each node", st)
		}
	}
}

// s3Action and dynamoAction are the IAM actions of the SDK operations.
var s3Actions = map[string][]string{
	"PutObject":               {"s3:PutObject"},
	"CreateMultipartUpload":   {"s3:PutObject"},
	"UploadPart":              {"s3:PutObject"},
	"CompleteMultipartUpload": {"s3:PutObject"},
	"AbortMultipartUpload":    {"s3:AbortMultipartUpload"},
	// Without s3:ListBucket S3 answers a missing key with 403, not 404,
	// and s3blob tells "not found" (a song not stored yet) by the 404.
	"GetObject":     {"s3:GetObject", "s3:ListBucket"},
	"HeadObject":    {"s3:GetObject", "s3:ListBucket"},
	"DeleteObject":  {"s3:DeleteObject"},
	"ListObjectsV2": {"s3:ListBucket"},
	"HeadBucket":    {"s3:ListBucket"},
	"CreateBucket":  {"s3:CreateBucket"},
}

// port is one of a component's store ports and the adapter methods that
// back it in the AWS profile (what the component's platform/store opener
// returns; TestPortsAreTheStoresEachComponentOpens).
type port struct {
	dir, iface string // the service's package and interface
	adapter    string // "s3blob" or "dynamostore"
	recv       string // the adapter type: Store, Cache
}

var ports = map[string][]port{
	"gateway": {
		{"services/gateway/gateway", "Store", "dynamostore", "Store"},
		{"services/gateway/gateway", "Blobs", "s3blob", "Store"},
	},
	"resolver": {{"services/resolver/resolver", "Cache", "dynamostore", "Cache"}},
	"fetcher":  {{"services/fetcher/fetcher", "Blobs", "s3blob", "Store"}},
	"encoder":  {{"services/encoder/encoder", "Blobs", "s3blob", "Store"}},
	"recorder": {{"services/recorder/recorder", "Store", "dynamostore", "Store"}},
	"notifier": {},
}

// openerAdapter is the AWS adapter type each platform/store opener returns.
var openerAdapter = map[string]port{
	"Blobs":       {adapter: "s3blob", recv: "Store"},
	"Projections": {adapter: "dynamostore", recv: "Store"},
	"Cache":       {adapter: "dynamostore", recv: "Cache"},
}

// TestPortsAreTheStoresEachComponentOpens: the ports whose calls the roles
// are checked against are those of the stores each component opens when
// run alone (its alone.go's platform/store openers), no more, no fewer.
func TestPortsAreTheStoresEachComponentOpens(t *testing.T) {
	for _, name := range componentNames {
		var want, got []string
		for _, o := range opens(t, name) {
			a := openerAdapter[o]
			want = append(want, a.adapter+"."+a.recv)
		}
		for _, p := range ports[name] {
			got = append(got, p.adapter+"."+p.recv)
		}
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s: the ports checked are backed by %v; it opens %v (store.%s)", name, got, want, strings.Join(opens(t, name), ", store."))
		}
	}
}

// expectedGrants is what component's code calls, as "action resource"
// with resources "bucket", "bucket/*", "table:<t>", "table:<t>/index/<i>".
// A component also opens its stores at start (s3blob.Open and New,
// dynamostore.Open and New, through platform/store), which sends nothing
// unless AutoCreate is set.
func expectedGrants(t *testing.T, adapters map[string]*adapterPkg, component string) map[string][]string {
	t.Helper()
	grants := map[string][]string{}
	add := func(grant, why string) {
		if !slices.Contains(grants[grant], why) {
			grants[grant] = append(grants[grant], why)
		}
	}
	methods := map[string][]string{}
	for _, p := range ports[component] {
		if methods[p.adapter] == nil {
			methods[p.adapter] = []string{"Open", "New"}
		}
		for _, m := range interfaceMethods(t, p.dir, p.iface) {
			key := p.recv + "." + m
			if adapters[p.adapter].funcs[key] == nil {
				t.Errorf("%s.%s is backed by %s, which has no method %s", p.dir, p.iface, p.adapter, key)
				continue
			}
			methods[p.adapter] = append(methods[p.adapter], key)
		}
	}
	for adapter, keys := range methods {
		for _, key := range keys {
			for _, c := range adapters[adapter].calls(key) {
				why := adapter + "." + key + ": " + c.Op
				switch adapter {
				case "s3blob":
					acts, ok := s3Actions[c.Op]
					if !ok {
						t.Errorf("%s: no IAM action known for s3 %s: add it to s3Actions", why, c.Op)
					}
					for _, a := range acts {
						res := "bucket/*"
						if a == "s3:ListBucket" || a == "s3:CreateBucket" {
							res = "bucket"
						}
						add(a+" "+res, why)
					}
				case "dynamostore":
					tables := []string{c.Table}
					if c.Table == "" || strings.HasPrefix(c.Table, "param:") {
						tables = []string{"operations", "songs"}
					}
					for _, tbl := range tables {
						res := "table:" + tbl
						if c.Index != "" {
							res += "/index/" + c.Index
						}
						add("dynamodb:"+c.Op+" "+res, why)
					}
				}
			}
		}
	}
	return grants
}

// TestTaskRolesAreWhatTheCodeCalls: each component's task role allows
// exactly the actions its adapters send for the methods of its ports, on
// the stage's bucket and tables: no more, no less, no wildcard.
func TestTaskRolesAreWhatTheCodeCalls(t *testing.T) {
	adapters := map[string]*adapterPkg{
		"s3blob":      parseAdapter(t, repo+"/platform/store/s3blob"),
		"dynamostore": parseAdapter(t, repo+"/platform/store/dynamostore"),
	}
	for name, p := range adapters {
		for _, e := range p.errs {
			t.Errorf("%s: %s", name, e)
		}
		// What AutoCreate sends is never granted: AWS_AUTO_CREATE is false
		// in every stage (TestRequiredEnvironment).
		for _, key := range []string{"New", "Open"} {
			if fi := p.funcs[key]; fi != nil && len(fi.autoCreate) > 0 {
				t.Logf("%s.%s, only with AutoCreate: %v", name, key, fi.autoCreate)
			}
		}
	}
	for _, st := range stageNames {
		s := storage(t, st)
		symbols := map[string]string{}
		bucket := str(t, "bucket arn", resource(t, s, "aws_s3_bucket.blobs").Get("arn"))
		symbols[bucket], symbols[bucket+"/*"] = "bucket", "bucket/*"
		for _, tbl := range []string{"operations", "songs"} {
			arn := str(t, tbl+" arn", resource(t, s, "aws_dynamodb_table."+tbl).Get("arn"))
			symbols[arn] = "table:" + tbl
			for _, idx := range []string{dynamostore.BySongIndex, dynamostore.ByTitleIndex} {
				symbols[arn+"/index/"+idx] = "table:" + tbl + "/index/" + idx
			}
		}
		for _, name := range componentNames {
			t.Run(st+"/"+name, func(t *testing.T) {
				comp, svc := component(t, st, name)
				role := resource(t, svc, "aws_iam_role.task")
				if td := resource(t, svc, "aws_ecs_task_definition.this"); str(t, "task_role_arn", td.Get("task_role_arn")) != str(t, "role arn", role.Get("arn")) {
					t.Errorf("the task definition does not run as the task role")
				}
				want := expectedGrants(t, adapters, name)
				if len(want) == 0 {
					// A component whose code calls no AWS service: its role has
					// no policy at all (IAM refuses one with no statement).
					for _, r := range svc.Resources {
						if r.Type == "aws_iam_role_policy" && r.Name == "task" {
							t.Errorf("%s calls no AWS service, yet its task role has the policy %s", name, r.Addr())
						}
					}
					if doc := comp.Resource("data.aws_iam_policy_document.task"); doc != nil {
						t.Errorf("%s calls no AWS service, yet it has a task policy document", name)
					}
					return
				}
				doc := resource(t, comp, "data.aws_iam_policy_document.task")
				policy := resource(t, svc, "aws_iam_role_policy.task[0]")
				if got := str(t, "policy", policy.Get("policy")); got != str(t, "json", doc.Get("json")) {
					t.Fatalf("the task role's policy is %s, not the component's document", got)
				}
				got := map[string]bool{}
				for i := 0; doc.Get("statement", i) != cty.NilVal; i++ {
					stmt := doc.Get("statement", i)
					if e := tfload.Get(stmt, "effect"); e != cty.NilVal && e.AsString() != "Allow" {
						t.Errorf("statement %d: effect %s", i, e.AsString())
					}
					for _, a := range []string{"not_actions", "not_resources", "condition"} {
						if tfload.Get(stmt, a) != cty.NilVal {
							t.Errorf("statement %d has %s: this test compares plain grants", i, a)
						}
					}
					for _, a := range strList(t, "actions", tfload.Get(stmt, "actions")) {
						if strings.Contains(a, "*") {
							t.Errorf("wildcard action %s", a)
						}
						for _, r := range strList(t, "resources", tfload.Get(stmt, "resources")) {
							sym, ok := symbols[r]
							if !ok {
								t.Errorf("%s on %s: not the stage's bucket or tables", a, r)
								continue
							}
							got[a+" "+sym] = true
						}
					}
				}
				// The issue's own words, which the exact comparison below implies.
				for g := range got {
					switch {
					case name == "fetcher" && strings.HasPrefix(g, "dynamodb:"):
						t.Errorf("the fetcher writes no DynamoDB item, yet it may %s", g)
					case name == "gateway" && (strings.HasPrefix(g, "s3:PutObject") || strings.HasPrefix(g, "s3:DeleteObject")):
						t.Errorf("the gateway puts no object, yet it may %s", g)
					}
				}
				var missing, extra []string
				for g, why := range want {
					if !got[g] {
						missing = append(missing, g+"  ("+strings.Join(why, "; ")+")")
					}
				}
				for g := range got {
					if want[g] == nil {
						extra = append(extra, g)
					}
				}
				sort.Strings(missing)
				sort.Strings(extra)
				for _, m := range missing {
					t.Errorf("missing: %s", m)
				}
				for _, e := range extra {
					t.Errorf("granted but never called: %s", e)
				}
			})
		}
	}
}

// TestExecutionRolesReadOnlyTheirSecrets: ECS reads a task's secrets with
// its execution role, which may read those and no other.
func TestExecutionRolesReadOnlyTheirSecrets(t *testing.T) {
	for _, st := range stageNames {
		for _, name := range componentNames {
			_, svc := component(t, st, name)
			want := map[string]bool{}
			for _, c := range containers(t, svc) {
				for _, arn := range c.secrets() {
					want[arn] = true
				}
			}
			doc := resource(t, svc, "data.aws_iam_policy_document.secrets")
			got := map[string]bool{}
			for i := 0; doc.Get("statement", i) != cty.NilVal; i++ {
				if acts := strList(t, "actions", doc.Get("statement", i, "actions")); !slices.Equal(acts, []string{"secretsmanager:GetSecretValue"}) {
					t.Errorf("%s/%s: execution role actions %v", st, name, acts)
				}
				for _, r := range strList(t, "resources", doc.Get("statement", i, "resources")) {
					got[r] = true
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%s/%s: execution role reads %v, the task's secrets are %v", st, name, got, want)
			}
		}
	}
}
