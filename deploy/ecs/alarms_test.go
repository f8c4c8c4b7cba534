package ecs_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/butakero/butakero/deploy/ecs/tfload"
	"github.com/butakero/butakero/platform/runtime/emf"
	"github.com/zclconf/go-cty/cty"
)

// The conditions deploy/observability's Prometheus rules page for, each
// of which needs a CloudWatch alarm in every stage whose log level keeps
// the success lines (prod: info).
var alarmConditions = []string{"backlog-growing", "projection-lag", "ytdlp-stale", "failure-ratio", "youtube-refusing", "no-songs-finishing"}

// filterMessage is a log message a metric filter's pattern matches.
var filterMessage = regexp.MustCompile(`\$\.msg = "([^"]+)"`)

// TestAlarmsReadWhatTheCodeWrites: every alarm reads either an EMF metric
// package emf writes (its namespace, name and dimensions, the Deployment
// the service is given) or a metric one of the metric filters extracts;
// every filter reads a component's log group and matches only messages
// that the code logs, so a reworded log line breaks this test rather
// than an alarm. Each of the Prometheus rules' conditions has its alarm.
func TestAlarmsReadWhatTheCodeWrites(t *testing.T) {
	source := goSource(t, "services", "platform")
	for _, st := range stageNames {
		t.Run(st, func(t *testing.T) {
			in := stack(t, st)
			groups := map[string]string{}
			for _, name := range componentNames {
				_, svc := component(t, st, name)
				groups[str(t, "log group", resource(t, svc, "aws_cloudwatch_log_group.this").Get("name"))] = name
			}
			extracted := map[string]bool{} // namespace/metric
			for _, f := range in.Find("resource", "aws_cloudwatch_log_metric_filter") {
				if _, ok := groups[str(t, "log group", f.Get("log_group_name"))]; !ok {
					t.Errorf("%s reads log group %s, no component's", f.Addr(), f.Get("log_group_name").AsString())
				}
				pattern := str(t, "pattern", f.Get("pattern"))
				msgs := filterMessage.FindAllStringSubmatch(pattern, -1)
				if len(msgs) == 0 {
					t.Errorf("%s's pattern %s matches no message", f.Addr(), pattern)
				}
				for _, m := range msgs {
					if !strings.Contains(source, strconv.Quote(m[1])) {
						t.Errorf("%s matches the message %q, which no code logs", f.Addr(), m[1])
					}
				}
				mt := f.Get("metric_transformation", 0)
				extracted[str(t, "namespace", tfload.Get(mt, "namespace"))+"/"+str(t, "name", tfload.Get(mt, "name"))] = true
			}

			deployment := mainContainer(t, st, "fetcher").env()["METRICS_DEPLOYMENT"]
			emitted := map[string][]string{
				emf.MetricConsumerBacklog: {emf.DimensionDeployment, emf.DimensionConsumer},
				emf.MetricYTDLPAge:        {emf.DimensionDeployment, emf.DimensionService},
			}
			checkMetric := func(addr string, m cty.Value) {
				ns, name := str(t, "namespace", tfload.Get(m, "namespace")), str(t, "metric_name", tfload.Get(m, "metric_name"))
				if ns != emf.Namespace {
					if !extracted[ns+"/"+name] {
						t.Errorf("%s reads %s/%s, which no metric filter extracts", addr, ns, name)
					}
					return
				}
				dims, ok := emitted[name]
				if !ok {
					t.Errorf("%s reads %s/%s, which package emf does not write", addr, ns, name)
					return
				}
				got := tfload.Get(m, "dimensions").AsValueMap()
				if len(got) != len(dims) {
					t.Errorf("%s: dimensions %v, want %v", addr, got, dims)
				}
				for _, d := range dims {
					if v, ok := got[d]; !ok || (d == emf.DimensionDeployment && v.AsString() != deployment) {
						t.Errorf("%s: dimension %s = %v, want %s's (Deployment %q)", addr, d, v, name, deployment)
					}
				}
			}
			names := []string{}
			for _, a := range in.Find("resource", "aws_cloudwatch_metric_alarm") {
				names = append(names, str(t, "alarm_name", a.Get("alarm_name")))
				if v := a.Get("metric_name"); v != cty.NilVal && !v.IsNull() {
					checkMetric(a.Addr(), a.Value)
				}
				for i := 0; a.Get("metric_query", i) != cty.NilVal; i++ {
					if m := a.Get("metric_query", i, "metric", 0); m != cty.NilVal {
						checkMetric(a.Addr(), m)
					}
				}
			}
			for _, c := range alarmConditions {
				found := false
				for _, n := range names {
					found = found || strings.HasSuffix(n, "-"+c)
				}
				if !found && st == "prod" {
					t.Errorf("no alarm for %s (alarms: %v)", c, names)
				}
			}
		})
	}
}

// goSource is every non-test Go file under dirs, concatenated.
func goSource(t *testing.T, dirs ...string) string {
	t.Helper()
	var b strings.Builder
	for _, d := range dirs {
		err := filepath.WalkDir(filepath.Join(repo, d), func(path string, e os.DirEntry, err error) error {
			if err != nil || e.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			src, err := os.ReadFile(path)
			b.Write(src)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}
