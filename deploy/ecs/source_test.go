package ecs_test

// Facts read from the services' and platform's Go source with go/ast:
// the ports each service declares, the variables config.Load reads, and
// a few constants the deploy files must agree with.

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// repo is the repository's root, from deploy/ecs.
const repo = "../.."

// parseDir parses the non-test Go files of dir.
func parseDir(t *testing.T, dir string) []*ast.File {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(repo, dir))
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var files []*ast.File
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(repo, dir, e.Name()), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	return files
}

// interfaceMethods returns the methods of interface name in package dir,
// embedded interfaces of the same package included.
func interfaceMethods(t *testing.T, dir, name string) []string {
	t.Helper()
	ifaces := map[string]*ast.InterfaceType{}
	for _, f := range parseDir(t, dir) {
		ast.Inspect(f, func(n ast.Node) bool {
			if ts, ok := n.(*ast.TypeSpec); ok {
				if it, ok := ts.Type.(*ast.InterfaceType); ok {
					ifaces[ts.Name.Name] = it
				}
			}
			return true
		})
	}
	var out []string
	var collect func(name string)
	collect = func(name string) {
		it, ok := ifaces[name]
		if !ok {
			t.Fatalf("%s: no interface %s", dir, name)
		}
		for _, m := range it.Methods.List {
			if len(m.Names) == 0 {
				collect(typeName(m.Type))
				continue
			}
			for _, n := range m.Names {
				out = append(out, n.Name)
			}
		}
	}
	collect(name)
	sort.Strings(out)
	return out
}

// configVariables returns every environment variable config.Load reads:
// the first argument of each get, intVar, durVar, boolVar and lookup
// call in platform/runtime/config.
func configVariables(t *testing.T) map[string]bool {
	t.Helper()
	readers := map[string]bool{"get": true, "intVar": true, "durVar": true, "boolVar": true, "lookup": true}
	out := map[string]bool{}
	for _, f := range parseDir(t, "platform/runtime/config") {
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			if id, ok := call.Fun.(*ast.Ident); ok && readers[id.Name] {
				if bl, ok := call.Args[0].(*ast.BasicLit); ok && bl.Kind == token.STRING {
					s, _ := strconv.Unquote(bl.Value)
					out[s] = true
				}
			}
			return true
		})
	}
	if len(out) < 20 {
		t.Fatalf("found only %d variables in platform/runtime/config: has Load changed shape?", len(out))
	}
	return out
}

// constExpr returns the expression of constant name in package dir.
func constExpr(t *testing.T, dir, name string) ast.Expr {
	t.Helper()
	for _, f := range parseDir(t, dir) {
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, s := range gd.Specs {
				vs := s.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if n.Name == name && i < len(vs.Values) {
						return vs.Values[i]
					}
				}
			}
		}
	}
	t.Fatalf("%s: no constant %s", dir, name)
	return nil
}

// intConst is an integer constant's value.
func intConst(t *testing.T, dir, name string) int {
	t.Helper()
	bl, ok := constExpr(t, dir, name).(*ast.BasicLit)
	if !ok || bl.Kind != token.INT {
		t.Fatalf("%s.%s is not an integer literal", dir, name)
	}
	n, _ := strconv.Atoi(bl.Value)
	return n
}

// durationConst is the value of a constant written `N * time.Unit`.
func durationConst(t *testing.T, dir, name string) time.Duration {
	t.Helper()
	e := constExpr(t, dir, name)
	units := map[string]time.Duration{"Millisecond": time.Millisecond, "Second": time.Second, "Minute": time.Minute, "Hour": time.Hour}
	if be, ok := e.(*ast.BinaryExpr); ok && be.Op == token.MUL {
		bl, ok1 := be.X.(*ast.BasicLit)
		sel, ok2 := be.Y.(*ast.SelectorExpr)
		if ok1 && ok2 && units[sel.Sel.Name] != 0 {
			n, _ := strconv.Atoi(bl.Value)
			return time.Duration(n) * units[sel.Sel.Name]
		}
	}
	t.Fatalf("%s.%s is not written N * time.Unit", dir, name)
	return 0
}

// storeOpeners returns the platform/store openers (Blobs, Projections,
// Cache) that the non-test code of package dir calls or hands on to be
// called, sorted: the stores a component run alone opens.
func storeOpeners(t *testing.T, dir string) []string {
	t.Helper()
	const storePkg = `"github.com/butakero/butakero/platform/store"`
	seen := map[string]bool{}
	for _, f := range parseDir(t, dir) {
		name := ""
		for _, imp := range f.Imports {
			if imp.Path.Value == storePkg {
				name = "store"
				if imp.Name != nil {
					name = imp.Name.Name
				}
			}
		}
		if name == "" {
			continue
		}
		// An opener called (store.Cache(...)) or handed on to be called
		// (standalone.Open(ctx, env, "blobs", store.Blobs)).
		ast.Inspect(f, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok {
				if id, ok := sel.X.(*ast.Ident); ok && id.Name == name {
					seen[sel.Sel.Name] = true
				}
			}
			return true
		})
	}
	var out []string
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// mapKeys returns the string keys of the composite literal assigned to
// the package-level variable name in package dir.
func mapKeys(t *testing.T, dir, name string) map[string]bool {
	t.Helper()
	for _, f := range parseDir(t, dir) {
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.VAR {
				continue
			}
			for _, sp := range gd.Specs {
				vs := sp.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if n.Name != name || i >= len(vs.Values) {
						continue
					}
					cl, ok := vs.Values[i].(*ast.CompositeLit)
					if !ok {
						t.Fatalf("%s.%s is not a composite literal", dir, name)
					}
					keys := map[string]bool{}
					for _, e := range cl.Elts {
						kv, ok := e.(*ast.KeyValueExpr)
						if !ok {
							t.Fatalf("%s.%s: an element without a key", dir, name)
						}
						bl, ok := kv.Key.(*ast.BasicLit)
						if !ok || bl.Kind != token.STRING {
							t.Fatalf("%s.%s: a key that is not a string literal", dir, name)
						}
						k, _ := strconv.Unquote(bl.Value)
						keys[k] = true
					}
					return keys
				}
			}
		}
	}
	t.Fatalf("%s: no variable %s", dir, name)
	return nil
}

// backlogReporters are the components standalone reports a consumer's
// backlog for with METRICS_EMF (its stageConsumers).
func backlogReporters(t *testing.T) map[string]bool {
	t.Helper()
	return mapKeys(t, "platform/runtime/standalone", "stageConsumers")
}
