package ecs_test

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/butakero/butakero/deploy/ecs/tfload"
	"github.com/butakero/butakero/platform/runtime/config"
)

// TestEveryServiceIsAComponent: each service of services/ (a directory
// with a main package) is one cmd/butakero runs alone and one of the
// components the other tests check, so a new service is not left out of
// deploy/ecs unnoticed.
func TestEveryServiceIsAComponent(t *testing.T) {
	entries, err := os.ReadDir(filepath.Join(repo, "services"))
	if err != nil {
		t.Fatal(err)
	}
	var services []string
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(repo, "services", e.Name(), "main.go")); e.IsDir() && err == nil {
			services = append(services, e.Name())
		}
	}
	runAlone := slices.Sorted(maps.Keys(mapKeys(t, "cmd/butakero", "components")))
	want := slices.Sorted(slices.Values(componentNames))
	slices.Sort(services)
	if !slices.Equal(services, want) {
		t.Errorf("services/ has %v; the components checked are %v", services, want)
	}
	if !slices.Equal(runAlone, want) {
		t.Errorf("cmd/butakero runs %v alone; the components checked are %v", runAlone, want)
	}
}

// TestNoNotifierWithoutWebhookURL: a stage without webhook_urls has no
// notifier service at all (no task idling, no role, no log group, no
// WEBHOOK_SECRET to provide), and no alarm on its log; the other
// components are there as before.
func TestNoNotifierWithoutWebhookURL(t *testing.T) {
	for _, st := range stageNames {
		t.Run(st, func(t *testing.T) {
			dir := filepath.Join("stages", st)
			vars, err := tfload.LoadVarsFile(filepath.Join(dir, "terraform.tfvars.example"))
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := vars["webhook_urls"]; !ok {
				t.Fatalf("%s's tfvars set no webhook_urls: the other tests would not see the notifier", st)
			}
			for k := range vars {
				if strings.HasPrefix(k, "webhook_") {
					delete(vars, k)
				}
			}
			in, err := tfload.Load(dir, vars)
			if err != nil {
				t.Fatal(err)
			}
			b := in.Module("butakero")
			if b == nil {
				t.Fatal("no module butakero")
			}
			if n := len(b.Modules["notifier"]); n != 0 {
				t.Errorf("%d notifier instances without a webhook URL, want none", n)
			}
			for _, typ := range []string{"aws_cloudwatch_log_metric_filter", "aws_cloudwatch_metric_alarm"} {
				for _, f := range b.Find("resource", typ) {
					if strings.Contains(f.Addr(), "webhook") {
						t.Errorf("%s without a notifier", f.Addr())
					}
				}
			}
			for _, name := range componentNames {
				if name != "notifier" && b.Module(name) == nil {
					t.Errorf("no %s without a webhook URL", name)
				}
			}
		})
	}
}

// TestNotifierConfigurationLoads: the notifier's task environment, with a
// well-formed secret where WEBHOOK_SECRET comes from Secrets Manager, is
// one config.Load accepts (every WEBHOOK_URL on a host
// WEBHOOK_ALLOWED_HOSTS lists, a valid WEBHOOK_MAX_AGE), with the stage's
// URLs: a task that would refuse to start fails here, not in a rollout.
func TestNotifierConfigurationLoads(t *testing.T) {
	for _, st := range stageNames {
		t.Run(st, func(t *testing.T) {
			c := mainContainer(t, st, "notifier")
			env := c.env()
			for k := range c.secrets() {
				env[k] = "secret"
			}
			env["WEBHOOK_SECRET"] = config.WebhookSecretPrefix + "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
			cfg, err := config.Load(config.FromMap(env))
			if err != nil {
				t.Fatalf("config.Load refuses the notifier's environment: %v", err)
			}
			want := strings.Split(str(t, "var.webhook_urls", stage(t, st).Vars["webhook_urls"]), ",")
			if !cfg.Webhooks.Enabled() || !slices.Equal(cfg.Webhooks.URLs, want) {
				t.Errorf("webhook URLs %v, want %v", cfg.Webhooks.URLs, want)
			}
		})
	}
}
