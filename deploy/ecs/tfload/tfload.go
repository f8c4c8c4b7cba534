// Package tfload reads a Terraform configuration with hashicorp/hcl and
// evaluates what can be known without a provider, so that tests can hold
// the deploy files to the code: variables (with their types, defaults and
// optional attributes), locals, resources and data sources (with count or
// for_each), module calls on local paths (with count), outputs, dynamic
// blocks, and the functions the configuration uses.
//
// What only a provider knows (a resource's id, an instance's address, a
// policy document's JSON) becomes a placeholder string naming it, such as
// "aws_network_interface.node[0].private_ip", or, for the ARNs the IAM
// checks compare, an ARN built from the resource's name with REGION and
// ACCOUNT in place of what the provider would fill in. Everything else is
// evaluated as Terraform would, by the same HCL library.
//
// It is a test helper, not Terraform: no provider schema is checked and
// for_each on modules is not supported (on resources and dynamic blocks
// it is).
package tfload

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// Placeholders of the provider's account and region in synthesized ARNs.
const (
	Account = "ACCOUNT"
	Region  = "REGION"
)

// Instance is one evaluated module instance: the root, or a module call
// (one per count index).
type Instance struct {
	// Addr is the instance's address: "" for the root, else like
	// "module.butakero.module.nats[0]".
	Addr string
	// Dir is the module's directory.
	Dir       string
	Vars      map[string]cty.Value
	Locals    map[string]cty.Value
	Outputs   map[string]cty.Value
	Resources []*Resource
	// Modules are the instances of each module call, by call name.
	Modules map[string][]*Instance
	// Calls are the module blocks, by call name, for their source.
	Calls map[string]*hclsyntax.Block
}

// Resource is one instance of a resource or data block.
type Resource struct {
	Mode  string // "resource" or "data"
	Type  string
	Name  string
	Index int    // the count index, -1 without count
	Key   string // the for_each key, "" without for_each
	// Value is the block's attributes and nested blocks (each block type
	// a tuple of objects), plus the provider-computed attributes this
	// package synthesizes.
	Value cty.Value
	Block *hclsyntax.Block
}

// Addr is the resource's address within its module instance.
func (r *Resource) Addr() string {
	a := r.Type + "." + r.Name
	if r.Mode == "data" {
		a = "data." + a
	}
	switch {
	case r.Key != "":
		a += fmt.Sprintf("[%q]", r.Key)
	case r.Index >= 0:
		a += fmt.Sprintf("[%d]", r.Index)
	}
	return a
}

// Get returns attribute path of r's value (nested blocks are tuples: use
// an int to index them), or cty.NilVal when a step is missing.
func (r *Resource) Get(path ...any) cty.Value { return Get(r.Value, path...) }

// Get walks v along path: strings are attributes or map keys, ints are
// indexes. It returns cty.NilVal when a step is missing or unknown.
func Get(v cty.Value, path ...any) cty.Value {
	for _, p := range path {
		if v == cty.NilVal || v.IsNull() || !v.IsKnown() {
			return cty.NilVal
		}
		ty := v.Type()
		switch k := p.(type) {
		case string:
			switch {
			case ty.IsObjectType():
				if !ty.HasAttribute(k) {
					return cty.NilVal
				}
				v = v.GetAttr(k)
			case ty.IsMapType():
				if !v.HasIndex(cty.StringVal(k)).True() {
					return cty.NilVal
				}
				v = v.Index(cty.StringVal(k))
			default:
				return cty.NilVal
			}
		case int:
			if !(ty.IsTupleType() || ty.IsListType()) || k >= v.LengthInt() {
				return cty.NilVal
			}
			v = v.Index(cty.NumberIntVal(int64(k)))
		default:
			panic(fmt.Sprintf("tfload.Get: path step %T", p))
		}
	}
	return v
}

// Walk calls fn for in and every module instance below it.
func (in *Instance) Walk(fn func(*Instance)) {
	fn(in)
	names := make([]string, 0, len(in.Modules))
	for n := range in.Modules {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		for _, c := range in.Modules[n] {
			c.Walk(fn)
		}
	}
}

// Find returns the resources of type typ (and mode "resource" or "data")
// in in and every instance below it, with the instance each is in.
func (in *Instance) Find(mode, typ string) []Found {
	var out []Found
	in.Walk(func(i *Instance) {
		for _, r := range i.Resources {
			if r.Mode == mode && r.Type == typ {
				out = append(out, Found{In: i, Resource: r})
			}
		}
	})
	return out
}

// Found is a resource and the module instance it is in.
type Found struct {
	In *Instance
	*Resource
}

// Resource returns the resource at addr ("aws_s3_bucket.blobs",
// "data.aws_iam_policy_document.task") in this instance, or nil.
func (in *Instance) Resource(addr string) *Resource {
	for _, r := range in.Resources {
		if r.Addr() == addr {
			return r
		}
	}
	return nil
}

// Module returns the only instance of module call name, or nil.
func (in *Instance) Module(name string) *Instance {
	if ms := in.Modules[name]; len(ms) == 1 {
		return ms[0]
	}
	return nil
}

// Load evaluates the module in dir as the root, with inputs as its
// variables' values. The error lists every diagnostic of every instance:
// a configuration that Terraform would refuse to evaluate (a missing
// variable, an unknown function, a reference to nothing) does not load.
func Load(dir string, inputs map[string]cty.Value) (*Instance, error) {
	l := &loader{parsed: map[string]*module{}}
	in, diags := l.instance(dir, "", inputs)
	if diags.HasErrors() {
		return in, diagError(diags)
	}
	return in, nil
}

// LoadVarsFile reads a .tfvars file (literal values only).
func LoadVarsFile(path string) (map[string]cty.Value, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f, diags := hclsyntax.ParseConfig(src, path, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, diagError(diags)
	}
	attrs, diags := f.Body.JustAttributes()
	if diags.HasErrors() {
		return nil, diagError(diags)
	}
	vals := map[string]cty.Value{}
	for name, a := range attrs {
		v, d := a.Expr.Value(nil)
		diags = append(diags, d...)
		vals[name] = v
	}
	if diags.HasErrors() {
		return nil, diagError(diags)
	}
	return vals, nil
}

func diagError(diags hcl.Diagnostics) error {
	var b strings.Builder
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		if d.Subject != nil {
			fmt.Fprintf(&b, "%s: ", d.Subject)
		}
		fmt.Fprintf(&b, "%s: %s\n", d.Summary, d.Detail)
	}
	return fmt.Errorf("tfload:\n%s", b.String())
}

// module is one directory's blocks.
type module struct {
	dir       string
	variables []*hclsyntax.Block
	locals    []*hclsyntax.Attribute
	resources []*hclsyntax.Block // resource and data
	calls     []*hclsyntax.Block
	outputs   []*hclsyntax.Block
}

type loader struct {
	parsed map[string]*module
}

func (l *loader) parse(dir string) (*module, hcl.Diagnostics) {
	if m, ok := l.parsed[dir]; ok {
		return m, nil
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.tf"))
	if err != nil || len(files) == 0 {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "no module", Detail: fmt.Sprintf("no .tf file in %s", dir)}}
	}
	sort.Strings(files)
	p := hclparse.NewParser()
	m := &module{dir: dir}
	var diags hcl.Diagnostics
	for _, name := range files {
		f, d := p.ParseHCLFile(name)
		diags = append(diags, d...)
		if f == nil {
			continue
		}
		for _, b := range f.Body.(*hclsyntax.Body).Blocks {
			switch b.Type {
			case "variable":
				m.variables = append(m.variables, b)
			case "locals":
				m.locals = append(m.locals, sortedAttrs(b.Body)...)
			case "resource", "data":
				m.resources = append(m.resources, b)
			case "module":
				m.calls = append(m.calls, b)
			case "output":
				m.outputs = append(m.outputs, b)
			case "terraform", "provider", "moved":
			default:
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "unknown block " + b.Type, Subject: b.DefRange().Ptr()})
			}
		}
	}
	l.parsed[dir] = m
	return m, diags
}

func sortedAttrs(b *hclsyntax.Body) []*hclsyntax.Attribute {
	out := make([]*hclsyntax.Attribute, 0, len(b.Attributes))
	for _, a := range b.Attributes {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// maxPasses bounds the evaluation: every value starts unknown and each
// pass evaluates every expression with the values of the one before, until
// nothing changes. A configuration's reference depth within one module is
// far below this.
const maxPasses = 30

// instance evaluates module dir at addr with inputs.
func (l *loader) instance(dir, addr string, inputs map[string]cty.Value) (*Instance, hcl.Diagnostics) {
	m, diags := l.parse(dir)
	if m == nil {
		return nil, diags
	}
	in := &Instance{
		Addr: addr, Dir: dir,
		Vars: map[string]cty.Value{}, Locals: map[string]cty.Value{}, Outputs: map[string]cty.Value{},
		Modules: map[string][]*Instance{}, Calls: map[string]*hclsyntax.Block{},
	}
	diags = append(diags, l.variables(m, in, inputs)...)
	if diags.HasErrors() {
		return in, diags
	}

	res := map[string]cty.Value{}  // "resource.type.name" / "data.type.name"
	mods := map[string]cty.Value{} // call name
	for _, a := range m.locals {
		in.Locals[a.Name] = cty.DynamicVal
	}
	for _, b := range m.resources {
		res[b.Type+"."+b.Labels[0]+"."+b.Labels[1]] = cty.DynamicVal
	}
	for _, b := range m.calls {
		mods[b.Labels[0]] = cty.DynamicVal
		in.Calls[b.Labels[0]] = b
	}

	var passDiags hcl.Diagnostics
	for pass := 0; pass < maxPasses; pass++ {
		passDiags = nil
		changed := false
		set := func(store map[string]cty.Value, k string, v cty.Value) {
			if old, ok := store[k]; !ok || !old.RawEquals(v) {
				store[k] = v
				changed = true
			}
		}
		ctx := func() *hcl.EvalContext { return evalContext(in, res, mods) }

		for _, a := range m.locals {
			v, d := a.Expr.Value(ctx())
			passDiags = append(passDiags, d...)
			set(in.Locals, a.Name, v)
		}

		in.Resources = nil
		for _, b := range m.resources {
			v, rs, d := l.resource(b, ctx())
			passDiags = append(passDiags, d...)
			set(res, b.Type+"."+b.Labels[0]+"."+b.Labels[1], v)
			in.Resources = append(in.Resources, rs...)
		}

		for _, b := range m.calls {
			v, children, d := l.call(m, in, b, ctx())
			passDiags = append(passDiags, d...)
			set(mods, b.Labels[0], v)
			in.Modules[b.Labels[0]] = children
		}

		for _, b := range m.outputs {
			a, ok := b.Body.Attributes["value"]
			if !ok {
				continue
			}
			v, d := a.Expr.Value(ctx())
			passDiags = append(passDiags, d...)
			set(in.Outputs, b.Labels[0], v)
		}
		if !changed {
			break
		}
	}
	return in, append(diags, passDiags...)
}

// variables sets in.Vars from inputs and the defaults, converted to each
// variable's type with its optional attributes' defaults, as Terraform
// does, and reports an input no variable declares or a required one
// missing.
func (l *loader) variables(m *module, in *Instance, inputs map[string]cty.Value) hcl.Diagnostics {
	var diags hcl.Diagnostics
	declared := map[string]bool{}
	for _, b := range m.variables {
		name := b.Labels[0]
		declared[name] = true
		ty, defaults := cty.DynamicPseudoType, (*typeexpr.Defaults)(nil)
		if a, ok := b.Body.Attributes["type"]; ok {
			var d hcl.Diagnostics
			ty, defaults, d = typeexpr.TypeConstraintWithDefaults(a.Expr)
			diags = append(diags, d...)
		}
		v, ok := inputs[name]
		if !ok {
			a, has := b.Body.Attributes["default"]
			if !has {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "required variable not set",
					Detail: fmt.Sprintf("%s: variable %q has no default and no value", m.dir, name), Subject: b.DefRange().Ptr()})
				v = cty.DynamicVal
			} else {
				var d hcl.Diagnostics
				v, d = a.Expr.Value(nil)
				diags = append(diags, d...)
			}
		}
		if defaults != nil && v.IsKnown() {
			v = defaults.Apply(v)
		}
		cv, err := convert.Convert(v, ty)
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "invalid value for variable",
				Detail: fmt.Sprintf("%s: variable %q: %v", m.dir, name, err), Subject: b.DefRange().Ptr()})
			cv = cty.UnknownVal(ty)
		}
		in.Vars[name] = cv
	}
	for name := range inputs {
		if !declared[name] {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "unsupported argument",
				Detail: fmt.Sprintf("%s declares no variable %q", m.dir, name)})
		}
	}
	return diags
}

// resource evaluates block b: its value (a tuple with count) and each
// instance.
func (l *loader) resource(b *hclsyntax.Block, ctx *hcl.EvalContext) (cty.Value, []*Resource, hcl.Diagnostics) {
	mode, typ, name := b.Type, b.Labels[0], b.Labels[1]
	eval := func(r *Resource, c *hcl.EvalContext) (*Resource, hcl.Diagnostics) {
		v, d := blockValue(b.Body, c)
		r.Value = synthesize(r, v)
		return r, d
	}
	one := func(index int) (*Resource, hcl.Diagnostics) {
		c := ctx
		if index >= 0 {
			c = ctx.NewChild()
			c.Variables = map[string]cty.Value{"count": cty.ObjectVal(map[string]cty.Value{"index": cty.NumberIntVal(int64(index))})}
		}
		return eval(&Resource{Mode: mode, Type: typ, Name: name, Index: index, Block: b}, c)
	}
	if fe, ok := b.Body.Attributes["for_each"]; ok {
		each, diags := fe.Expr.Value(ctx)
		if diags.HasErrors() || !each.IsWhollyKnown() || each.IsNull() {
			return cty.DynamicVal, nil, diags
		}
		if !each.CanIterateElements() || !(each.Type().IsMapType() || each.Type().IsObjectType() || each.Type().IsSetType()) {
			return cty.DynamicVal, nil, append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "for_each is not a map or a set", Subject: fe.SrcRange.Ptr()})
		}
		var rs []*Resource
		vals := map[string]cty.Value{}
		for it := each.ElementIterator(); it.Next(); {
			k, v := it.Element()
			if each.Type().IsSetType() {
				k = v
			}
			c := ctx.NewChild()
			c.Variables = map[string]cty.Value{"each": cty.ObjectVal(map[string]cty.Value{"key": k, "value": v})}
			r, d := eval(&Resource{Mode: mode, Type: typ, Name: name, Index: -1, Key: k.AsString(), Block: b}, c)
			diags = append(diags, d...)
			rs = append(rs, r)
			vals[r.Key] = r.Value
		}
		return objectOrEmpty(vals), rs, diags
	}
	n, counted, diags := count(b.Body, ctx)
	if !counted {
		r, d := one(-1)
		return r.Value, []*Resource{r}, append(diags, d...)
	}
	var rs []*Resource
	var vals []cty.Value
	for i := 0; i < n; i++ {
		r, d := one(i)
		diags = append(diags, d...)
		rs = append(rs, r)
		vals = append(vals, r.Value)
	}
	return tuple(vals), rs, diags
}

// call evaluates module block b: its instances and its value (an object of
// outputs, a tuple of them with count).
func (l *loader) call(parent *module, in *Instance, b *hclsyntax.Block, ctx *hcl.EvalContext) (cty.Value, []*Instance, hcl.Diagnostics) {
	name := b.Labels[0]
	src, diags := b.Body.Attributes["source"].Expr.Value(nil)
	if diags.HasErrors() || src.Type() != cty.String || !strings.HasPrefix(src.AsString(), ".") {
		return cty.DynamicVal, nil, append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "module source must be a local path", Subject: b.DefRange().Ptr()})
	}
	dir := filepath.Join(parent.dir, src.AsString())
	one := func(index int) (*Instance, cty.Value, hcl.Diagnostics) {
		c := ctx
		addr := strings.TrimPrefix(in.Addr+".module."+name, ".")
		if index >= 0 {
			c = ctx.NewChild()
			c.Variables = map[string]cty.Value{"count": cty.ObjectVal(map[string]cty.Value{"index": cty.NumberIntVal(int64(index))})}
			addr += fmt.Sprintf("[%d]", index)
		}
		inputs := map[string]cty.Value{}
		var diags hcl.Diagnostics
		for _, a := range sortedAttrs(b.Body) {
			switch a.Name {
			case "source", "count", "for_each", "depends_on", "providers", "version":
				continue
			}
			v, d := a.Expr.Value(c)
			diags = append(diags, d...)
			inputs[a.Name] = v
		}
		child, d := l.instance(dir, addr, inputs)
		diags = append(diags, d...)
		if child == nil {
			return nil, cty.DynamicVal, diags
		}
		return child, objectOrEmpty(child.Outputs), diags
	}
	n, counted, diags := count(b.Body, ctx)
	if !counted {
		child, v, d := one(-1)
		return v, []*Instance{child}, append(diags, d...)
	}
	var children []*Instance
	var vals []cty.Value
	for i := 0; i < n; i++ {
		child, v, d := one(i)
		diags = append(diags, d...)
		children = append(children, child)
		vals = append(vals, v)
	}
	return tuple(vals), children, diags
}

// count evaluates a body's count argument. Unknown in an early pass, it
// counts as absent (one instance) until it is known.
func count(body *hclsyntax.Body, ctx *hcl.EvalContext) (n int, counted bool, diags hcl.Diagnostics) {
	a, ok := body.Attributes["count"]
	if !ok {
		return 0, false, nil
	}
	v, diags := a.Expr.Value(ctx)
	if diags.HasErrors() || !v.IsKnown() || v.IsNull() {
		return 1, true, diags
	}
	nv, err := convert.Convert(v, cty.Number)
	if err != nil {
		return 0, true, append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "count is not a number", Subject: a.SrcRange.Ptr()})
	}
	i, _ := nv.AsBigFloat().Int64()
	return int(i), true, diags
}

// blockValue is a body's attributes and nested blocks as one object.
// Meta-arguments and lifecycle blocks are left out; dynamic blocks are
// expanded.
func blockValue(body *hclsyntax.Body, ctx *hcl.EvalContext) (cty.Value, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	attrs := map[string]cty.Value{}
	for _, a := range sortedAttrs(body) {
		switch a.Name {
		case "count", "for_each", "depends_on", "provider":
			continue
		}
		v, d := a.Expr.Value(ctx)
		diags = append(diags, d...)
		attrs[a.Name] = v
	}
	blocks := map[string][]cty.Value{}
	var order []string
	add := func(typ string, v cty.Value) {
		if _, ok := blocks[typ]; !ok {
			order = append(order, typ)
		}
		blocks[typ] = append(blocks[typ], v)
	}
	for _, b := range body.Blocks {
		switch b.Type {
		case "lifecycle", "provisioner", "connection", "precondition", "postcondition":
			continue
		case "dynamic":
			typ := b.Labels[0]
			if _, ok := blocks[typ]; !ok {
				order = append(order, typ)
				blocks[typ] = nil
			}
			vs, d := dynamicBlocks(b, ctx)
			diags = append(diags, d...)
			blocks[typ] = append(blocks[typ], vs...)
		default:
			v, d := blockValue(b.Body, ctx)
			diags = append(diags, d...)
			add(b.Type, v)
		}
	}
	for _, typ := range order {
		attrs[typ] = tuple(blocks[typ])
	}
	return objectOrEmpty(attrs), diags
}

// dynamicBlocks expands a dynamic block: its content once per element of
// for_each, with the iterator (the block's label, or iterator) bound to
// {key, value}.
func dynamicBlocks(b *hclsyntax.Block, ctx *hcl.EvalContext) ([]cty.Value, hcl.Diagnostics) {
	fe, ok := b.Body.Attributes["for_each"]
	if !ok {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "dynamic block without for_each", Subject: b.DefRange().Ptr()}}
	}
	each, diags := fe.Expr.Value(ctx)
	if diags.HasErrors() || !each.IsWhollyKnown() || each.IsNull() {
		return nil, diags
	}
	iter := b.Labels[0]
	if a, ok := b.Body.Attributes["iterator"]; ok {
		iter = hcl.ExprAsKeyword(a.Expr)
	}
	var content *hclsyntax.Block
	for _, c := range b.Body.Blocks {
		if c.Type == "content" {
			content = c
		}
	}
	if content == nil {
		return nil, append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "dynamic block without content", Subject: b.DefRange().Ptr()})
	}
	var out []cty.Value
	for it := each.ElementIterator(); it.Next(); {
		k, v := it.Element()
		c := ctx.NewChild()
		c.Variables = map[string]cty.Value{iter: cty.ObjectVal(map[string]cty.Value{"key": k, "value": v})}
		bv, d := blockValue(content.Body, c)
		diags = append(diags, d...)
		out = append(out, bv)
	}
	return out, diags
}

func tuple(vs []cty.Value) cty.Value {
	if len(vs) == 0 {
		return cty.EmptyTupleVal
	}
	return cty.TupleVal(vs)
}

func objectOrEmpty(m map[string]cty.Value) cty.Value {
	if len(m) == 0 {
		return cty.EmptyObjectVal
	}
	return cty.ObjectVal(m)
}

// evalContext is the scope of a module's expressions: var, local, module,
// data and each resource type.
func evalContext(in *Instance, res, mods map[string]cty.Value) *hcl.EvalContext {
	vars := map[string]cty.Value{
		"var":    objectOrEmpty(in.Vars),
		"local":  objectOrEmpty(in.Locals),
		"module": objectOrEmpty(mods),
		"path":   cty.ObjectVal(map[string]cty.Value{"module": cty.StringVal(in.Dir)}),
	}
	byType := map[string]map[string]map[string]cty.Value{"resource": {}, "data": {}}
	for k, v := range res {
		parts := strings.SplitN(k, ".", 3)
		if byType[parts[0]][parts[1]] == nil {
			byType[parts[0]][parts[1]] = map[string]cty.Value{}
		}
		byType[parts[0]][parts[1]][parts[2]] = v
	}
	for typ, names := range byType["resource"] {
		vars[typ] = cty.ObjectVal(names)
	}
	data := map[string]cty.Value{}
	for typ, names := range byType["data"] {
		data[typ] = cty.ObjectVal(names)
	}
	vars["data"] = objectOrEmpty(data)
	return &hcl.EvalContext{Variables: vars, Functions: functions}
}
