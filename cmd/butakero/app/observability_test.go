package app_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/butakero/butakero/platform/testkit/audiofixture"
	"github.com/butakero/butakero/services/resolver/youtubetest"
	"go.yaml.in/yaml/v3"
)

// EnvPromtool names Prometheus's promtool; the test command (make test,
// scripts/test.sh) builds it into .tools/bin and sets it.
const EnvPromtool = "BUTAKERO_PROMTOOL"

// observability is deploy/observability, from this package's directory.
var observability = filepath.Join("..", "..", "..", "deploy", "observability")

var (
	rulesFile     = filepath.Join(observability, "prometheus", "butakero.rules.yml")
	rulesTestFile = filepath.Join(observability, "prometheus", "butakero.rules.test.yml")
	dashboardFile = filepath.Join(observability, "grafana", "butakero.json")
)

// metricName is a Butakero metric a rule or a panel's query names.
var metricName = regexp.MustCompile(`\bbutakero_[a-z0-9_]+`)

// TestAlertRules: the shipped rules are valid (promtool check rules) and
// their unit tests pass (promtool test rules), and every alert has a test
// of its own in which it fires.
func TestAlertRules(t *testing.T) {
	promtool := os.Getenv(EnvPromtool)
	if promtool == "" {
		t.Fatalf("%s is not set: run make test (scripts/test.sh), which builds promtool into .tools/bin and sets it", EnvPromtool)
	}
	for _, args := range [][]string{{"check", "rules", rulesFile}, {"test", "rules", rulesTestFile}} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	rules := readRules(t)
	if len(rules) < 6 {
		t.Fatalf("%d alerts in %s, want at least the six of the README", len(rules), rulesFile)
	}
	var tests struct {
		Tests []struct {
			Name   string `yaml:"name"`
			Alerts []struct {
				Name      string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	readYAML(t, rulesTestFile, &tests)
	for alert := range rules {
		fires := false
		named := false
		for _, tc := range tests.Tests {
			named = named || tc.Name == alert
			for _, a := range tc.Alerts {
				fires = fires || (tc.Name == alert && a.Name == alert && len(a.ExpAlerts) > 0)
			}
		}
		if !named {
			t.Errorf("alert %s has no unit test named after it in %s", alert, rulesTestFile)
		} else if !fires {
			t.Errorf("the unit test of %s never expects it to fire", alert)
		}
	}
}

// readRules are the alerting rules' expressions by alert name.
func readRules(t *testing.T) map[string]string {
	t.Helper()
	var file struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	readYAML(t, rulesFile, &file)
	rules := map[string]string{}
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			rules[r.Alert] = r.Expr
		}
	}
	return rules
}

// dashboardQueries are the expressions of every panel's targets.
func dashboardQueries(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	var exprs []string
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	return exprs
}

func readYAML(t *testing.T, file string, v any) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

// TestRulesAndDashboardNameExportedMetrics scrapes the all-in-one's
// /metrics after it has stored a song, failed one and resolved a video
// twice through the (fake) Data API, and checks that every Butakero metric
// the alerting rules or the dashboard's panels name is one it exports: a
// renamed metric breaks this test, not the operator's alerts.
func TestRulesAndDashboardNameExportedMetrics(t *testing.T) {
	yt := youtubetest.Start(t)
	yt.AddVideo(youtubetest.Video{ID: "dQw4w9WgXcQ", Title: "Never Gonna Give You Up", Channel: "Rick Astley", Duration: "PT3M33S"})
	media := t.TempDir()
	audiofixture.Make(t, media, audiofixture.M4A("exported.m4a", 2*time.Second))
	files := audiofixture.Serve(t, media)
	in := start(t, t.TempDir(), map[string]string{
		"ALLOWED_MEDIA_HOSTS":  "127.0.0.1:*",
		"YOUTUBE_API_KEY":      youtubetest.Key,
		"YOUTUBE_API_BASE_URL": yt.URL,
		"MAX_ATTEMPTS":         "1",
	})
	// A song stored (upload.done), one missing (a failure), and a YouTube
	// video resolved twice (a cache miss, then a hit; its fetch fails).
	for _, song := range []string{files.URL("exported.m4a"), files.URL("missing.m4a"), "https://youtu.be/dQw4w9WgXcQ", "https://youtu.be/dQw4w9WgXcQ"} {
		in.waitFinal(t, in.startSong(t, song).OperationID, 2*time.Minute)
	}

	// yt-dlp's version is probed in the background at start.
	var exported map[string]bool
	for deadline := time.Now().Add(time.Minute); ; {
		exported = scrapeNames(t, in.base+"/metrics")
		if exported["butakero_ytdlp_info"] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("/metrics has no butakero_ytdlp_info a minute after start")
		}
		<-time.After(100 * time.Millisecond)
	}
	queries := map[string][]string{dashboardFile: dashboardQueries(t)}
	for _, expr := range readRules(t) {
		queries[rulesFile] = append(queries[rulesFile], expr)
	}
	for file, exprs := range queries {
		if len(exprs) == 0 {
			t.Errorf("%s has no query", file)
		}
		for _, expr := range exprs {
			names := metricName.FindAllString(expr, -1)
			if len(names) == 0 {
				t.Errorf("%s: %q names no butakero metric", file, expr)
			}
			for _, name := range names {
				if !exported[name] {
					t.Errorf("%s names %s, which /metrics does not export", file, name)
				}
			}
		}
	}
}

// scrapeNames are the sample names /metrics at url serves.
func scrapeNames(t *testing.T, url string) map[string]bool {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, b)
	}
	names := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, _, _ := strings.Cut(line, "{")
		name, _, _ = strings.Cut(name, " ")
		names[name] = true
	}
	return names
}
