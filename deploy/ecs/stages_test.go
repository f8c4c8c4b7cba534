package ecs_test

// Loading the stages, and reading what the checks compare out of them.

import (
	"encoding/json"
	"path/filepath"
	"sync"
	"testing"

	"github.com/butakero/butakero/deploy/ecs/tfload"
	"github.com/zclconf/go-cty/cty"
)

// stageNames are the configurations under stages/.
var stageNames = []string{"dev", "prod"}

// componentNames are the services of services/, each its own ECS service
// (TestEveryServiceIsAComponent). The stages' tfvars set webhook_urls, so
// the notifier, which runs only with one, is among them.
var componentNames = []string{"gateway", "resolver", "fetcher", "encoder", "recorder", "notifier"}

var (
	loadOnce sync.Once
	loaded   map[string]*tfload.Instance
	loadErr  error
)

// stage returns stage name evaluated with its terraform.tfvars.example.
func stage(t *testing.T, name string) *tfload.Instance {
	t.Helper()
	loadOnce.Do(func() {
		loaded = map[string]*tfload.Instance{}
		for _, s := range stageNames {
			dir := filepath.Join("stages", s)
			vars, err := tfload.LoadVarsFile(filepath.Join(dir, "terraform.tfvars.example"))
			if err != nil {
				loadErr = err
				return
			}
			in, err := tfload.Load(dir, vars)
			if err != nil {
				loadErr = err
				return
			}
			loaded[s] = in
		}
	})
	if loadErr != nil {
		t.Fatal(loadErr)
	}
	return loaded[name]
}

// stack is a stage's modules/butakero instance.
func stack(t *testing.T, st string) *tfload.Instance {
	t.Helper()
	in := stage(t, st).Module("butakero")
	if in == nil {
		t.Fatalf("%s: no module butakero", st)
	}
	return in
}

// component returns the component's module instance and its service
// module instance in stage st.
func component(t *testing.T, st, name string) (comp, svc *tfload.Instance) {
	t.Helper()
	comp = stack(t, st).Module(name)
	if comp == nil {
		t.Fatalf("%s: no module %s", st, name)
	}
	svc = comp.Module("service")
	if svc == nil {
		t.Fatalf("%s: module %s has no service module", st, name)
	}
	return comp, svc
}

// resource returns in's resource at addr or fails.
func resource(t *testing.T, in *tfload.Instance, addr string) *tfload.Resource {
	t.Helper()
	r := in.Resource(addr)
	if r == nil {
		t.Fatalf("%s: no %s", in.Addr, addr)
	}
	return r
}

// str is a known string value or fails.
func str(t *testing.T, what string, v cty.Value) string {
	t.Helper()
	if v == cty.NilVal || v.IsNull() || !v.IsKnown() || v.Type() != cty.String {
		t.Fatalf("%s: want a known string, got %#v", what, v)
	}
	return v.AsString()
}

// num is a known number value or fails.
func num(t *testing.T, what string, v cty.Value) float64 {
	t.Helper()
	if v == cty.NilVal || v.IsNull() || !v.IsKnown() || v.Type() != cty.Number {
		t.Fatalf("%s: want a known number, got %#v", what, v)
	}
	f, _ := v.AsBigFloat().Float64()
	return f
}

// strings_ is a known list of strings.
func strList(t *testing.T, what string, v cty.Value) []string {
	t.Helper()
	if v == cty.NilVal || v.IsNull() || !v.IsWhollyKnown() || !(v.Type().IsTupleType() || v.Type().IsListType() || v.Type().IsSetType()) {
		t.Fatalf("%s: want a known list, got %#v", what, v)
	}
	var out []string
	for _, e := range v.AsValueSlice() {
		out = append(out, str(t, what, e))
	}
	return out
}

// container is the part of an ECS container definition the checks read.
type container struct {
	Name        string   `json:"name"`
	Image       string   `json:"image"`
	Command     []string `json:"command"`
	EntryPoint  []string `json:"entryPoint"`
	Essential   bool     `json:"essential"`
	StopTimeout int      `json:"stopTimeout"`
	Environment []struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	} `json:"environment"`
	Secrets []struct {
		Name      string `json:"name"`
		ValueFrom string `json:"valueFrom"`
	} `json:"secrets"`
	PortMappings []struct {
		ContainerPort int `json:"containerPort"`
	} `json:"portMappings"`
	MountPoints []struct {
		SourceVolume  string `json:"sourceVolume"`
		ContainerPath string `json:"containerPath"`
		ReadOnly      bool   `json:"readOnly"`
	} `json:"mountPoints"`
	DependsOn []struct {
		ContainerName string `json:"containerName"`
		Condition     string `json:"condition"`
	} `json:"dependsOn"`
	LogConfiguration struct {
		LogDriver string            `json:"logDriver"`
		Options   map[string]string `json:"options"`
	} `json:"logConfiguration"`
}

// env is the container's plain environment.
func (c container) env() map[string]string {
	m := map[string]string{}
	for _, e := range c.Environment {
		m[e.Name] = e.Value
	}
	return m
}

// secrets is the container's environment from secrets: name -> ARN.
func (c container) secrets() map[string]string {
	m := map[string]string{}
	for _, s := range c.Secrets {
		m[s.Name] = s.ValueFrom
	}
	return m
}

// containers returns the service's task definition's containers.
func containers(t *testing.T, svc *tfload.Instance) []container {
	t.Helper()
	td := resource(t, svc, "aws_ecs_task_definition.this")
	var cs []container
	if err := json.Unmarshal([]byte(str(t, svc.Addr+" container_definitions", td.Get("container_definitions"))), &cs); err != nil {
		t.Fatalf("%s: container_definitions: %v", svc.Addr, err)
	}
	return cs
}

// mainContainer returns the component's own container.
func mainContainer(t *testing.T, st, name string) container {
	t.Helper()
	_, svc := component(t, st, name)
	for _, c := range containers(t, svc) {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("%s/%s: no container named %s", st, name, name)
	return container{}
}

// TestStagesShareTheirRoot: a stage differs from another only by its
// stage.tf; the rest of its configuration is root/'s, linked, so that a
// variable or an output added for one stage is there for every stage, and
// every component module declares its inputs as modules/service does.
func TestStagesShareTheirRoot(t *testing.T) {
	linked := map[string][]string{}
	for _, s := range stageNames {
		linked[filepath.Join("stages", s)] = []string{"main.tf", "variables.tf", "versions.tf", "outputs.tf"}
	}
	for _, c := range componentNames {
		linked[filepath.Join("modules", c)] = []string{"inputs.tf"}
	}
	shared := map[string]string{
		"main.tf": "root/main.tf", "variables.tf": "root/variables.tf", "versions.tf": "root/versions.tf",
		"outputs.tf": "root/outputs.tf", "inputs.tf": "modules/service/inputs.tf",
	}
	for dir, files := range linked {
		for _, f := range files {
			got, err := filepath.EvalSymlinks(filepath.Join(dir, f))
			if err != nil {
				t.Errorf("%s/%s: %v", dir, f, err)
				continue
			}
			if want := filepath.Clean(shared[f]); got != want {
				t.Errorf("%s/%s is %s; want a link to %s", dir, f, got, want)
			}
		}
	}
}
