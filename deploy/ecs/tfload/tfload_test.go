package tfload_test

import (
	"strings"
	"testing"

	"github.com/butakero/butakero/deploy/ecs/tfload"
	"github.com/zclconf/go-cty/cty"
)

// TestLoad evaluates a module with an optional attribute's default, count,
// for_each, a dynamic block, synthesized ARNs and placeholders, and a counted module
// call whose output comes back through a splat.
func TestLoad(t *testing.T) {
	in, err := tfload.Load("testdata/root", map[string]cty.Value{
		"size": cty.ObjectVal(map[string]cty.Value{"cpu": cty.NumberIntVal(512)}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if !in.Vars["size"].GetAttr("spot").False() {
		t.Errorf("size.spot = %#v, want the optional default false", in.Vars["size"].GetAttr("spot"))
	}
	n1 := in.Resource("aws_thing.n[1]")
	if n1 == nil {
		t.Fatal("no aws_thing.n[1]")
	}
	keyed := in.Resource(`aws_thing.keyed["first"]`)
	if keyed == nil {
		t.Fatal(`no aws_thing.keyed["first"]`)
	}
	cases := []struct {
		name string
		got  cty.Value
		want string
	}{
		{"count.index", n1.Get("name"), "b"},
		{"synthesized bucket ARN", n1.Get("bucket"), "arn:aws:s3:::bucket-512"},
		{"dynamic block", n1.Get("rule", 1, "id"), "y"},
		{"each.key and each.value", keyed.Get("name"), "first-a"},
		{"a for_each instance by key", in.Outputs["keyed"], "second-b"},
		{"module output through a placeholder", in.Outputs["from_child"], "AWS_THING.N[0].ID,AWS_THING.N[1].ID"},
	}
	for _, c := range cases {
		if c.got == cty.NilVal || !c.got.IsKnown() || c.got.AsString() != c.want {
			t.Errorf("%s = %#v, want %q", c.name, c.got, c.want)
		}
	}
}

// TestLoadRefuses: a function tfload does not have, an input no variable
// declares, and a required variable left out all fail to load.
func TestLoadRefuses(t *testing.T) {
	cases := []struct {
		name, dir string
		inputs    map[string]cty.Value
		want      string
	}{
		{"unknown function", "testdata/badfunc", nil, "templatefile"},
		{"undeclared input", "testdata/root/child", map[string]cty.Value{"in": cty.StringVal("x"), "nope": cty.True}, `no variable "nope"`},
		{"missing variable", "testdata/root/child", nil, `variable "in" has no default`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := tfload.Load(c.dir, c.inputs)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want one naming %s", err, c.want)
			}
		})
	}
}
