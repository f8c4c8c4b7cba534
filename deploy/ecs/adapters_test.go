package ecs_test

// What the AWS adapters call, read from their source with go/ast, so that
// a new SDK call in platform/store/s3blob or platform/store/dynamostore fails the
// role checks until the Terraform grants it.

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// sdkCall is one request an adapter sends.
type sdkCall struct {
	// Op is the SDK operation: "GetItem", "PutObject"…
	Op string
	// Table is the DynamoDB table ("operations", "songs"), "" when the code
	// does not say which (then both), or "param:<name>" inside a function
	// whose parameter names it.
	Table string
	// Index is the GSI a Query reads, "" for the table.
	Index string
}

func (c sdkCall) String() string {
	s := c.Op
	if c.Table != "" {
		s += " " + c.Table
	}
	if c.Index != "" {
		s += "/index/" + c.Index
	}
	return s
}

// Helpers of the SDK that send requests of their own, by the Go source
// that uses them.
var (
	// Paginators and waiters: s3.New<Op>Paginator sends <Op>; the waiters
	// poll one operation.
	sdkHelpers = map[string]string{
		"NewTableExistsWaiter":    "DescribeTable",
		"NewTableNotExistsWaiter": "DescribeTable",
	}
	// Constructors that send nothing.
	sdkConstructors = map[string]bool{"NewFromConfig": true, "NewPresignClient": true, "New": true}
)

// tableFields are the Store fields that hold a table's name.
var tableFields = map[string]string{"ops": "operations", "songs": "songs"}

// funcInfo is one function or method of an adapter package.
type funcInfo struct {
	key      string // "Store.Put", "Cache.get", "New"
	recv     string // receiver variable
	recvType string
	params   []string
	direct   []sdkCall
	calls    []callSite
	// autoCreate are the calls made only when AutoCreate is set.
	autoCreate []string
}

type callSite struct {
	callees []string // candidate keys
	args    []string // each argument's table binding ("operations", "songs", "param:x", "")
}

// adapterPkg is a parsed adapter package.
type adapterPkg struct {
	dir     string
	funcs   map[string]*funcInfo
	fields  map[string]map[string]string // struct type -> field -> type
	consts  map[string]string            // string constants
	methods map[string][]string          // method name -> keys
	errs    []string
}

func parseAdapter(t *testing.T, dir string) *adapterPkg {
	t.Helper()
	fset := token.NewFileSet()
	p := &adapterPkg{dir: dir, funcs: map[string]*funcInfo{}, fields: map[string]map[string]string{}, consts: map[string]string{}, methods: map[string][]string{}}
	var files []*ast.File
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	for _, f := range files {
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok {
				continue
			}
			for _, s := range gd.Specs {
				switch s := s.(type) {
				case *ast.TypeSpec:
					st, ok := s.Type.(*ast.StructType)
					if !ok {
						continue
					}
					p.fields[s.Name.Name] = map[string]string{}
					for _, fl := range st.Fields.List {
						for _, n := range fl.Names {
							p.fields[s.Name.Name][n.Name] = typeName(fl.Type)
						}
					}
				case *ast.ValueSpec:
					for i, n := range s.Names {
						if i < len(s.Values) {
							if bl, ok := s.Values[i].(*ast.BasicLit); ok && bl.Kind == token.STRING {
								p.consts[n.Name], _ = strconv.Unquote(bl.Value)
							}
						}
					}
				}
			}
		}
	}
	var bodies []body
	for _, f := range files {
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			fi := &funcInfo{key: fd.Name.Name}
			if fd.Recv != nil && len(fd.Recv.List) == 1 {
				fi.recvType = typeName(fd.Recv.List[0].Type)
				fi.key = fi.recvType + "." + fd.Name.Name
				if len(fd.Recv.List[0].Names) == 1 {
					fi.recv = fd.Recv.List[0].Names[0].Name
				}
			}
			for _, fl := range fd.Type.Params.List {
				for _, n := range fl.Names {
					fi.params = append(fi.params, n.Name)
				}
			}
			p.funcs[fi.key] = fi
			p.methods[fd.Name.Name] = append(p.methods[fd.Name.Name], fi.key)
			bodies = append(bodies, body{fi, fd.Body})
		}
	}
	// Every function is known before any body is read, whatever the
	// order of the files.
	for _, b := range bodies {
		p.walkBody(b.fi, b.block)
	}
	return p
}

type body struct {
	fi    *funcInfo
	block *ast.BlockStmt
}

func typeName(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.StarExpr:
		return typeName(e.X)
	case *ast.Ident:
		return e.Name
	case *ast.SelectorExpr:
		return typeName(e.X) + "." + e.Sel.Name
	}
	return ""
}

// walkBody records fi's SDK calls and calls of the package's functions.
// Calls inside `if <x>.AutoCreate {…}` go to fi.autoCreate instead.
func (p *adapterPkg) walkBody(fi *funcInfo, body *ast.BlockStmt) {
	// Composite literals assigned to a local (in := &dynamodb.QueryInput{…}).
	lits := map[string]*ast.CompositeLit{}
	ast.Inspect(body, func(n ast.Node) bool {
		if as, ok := n.(*ast.AssignStmt); ok {
			for i, l := range as.Lhs {
				if id, ok := l.(*ast.Ident); ok && i < len(as.Rhs) {
					if cl := compositeLit(as.Rhs[i]); cl != nil {
						lits[id.Name] = cl
					}
				}
			}
		}
		return true
	})
	var visit func(n ast.Node, autoCreate bool)
	visit = func(root ast.Node, autoCreate bool) {
		ast.Inspect(root, func(n ast.Node) bool {
			if is, ok := n.(*ast.IfStmt); ok && n != root {
				if sel, ok := is.Cond.(*ast.SelectorExpr); ok && sel.Sel.Name == "AutoCreate" {
					visit(is.Body, true)
					if is.Else != nil {
						visit(is.Else, autoCreate)
					}
					return false
				}
			}
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			p.recordCall(fi, call, lits, autoCreate)
			return true
		})
	}
	visit(body, false)
}

func compositeLit(e ast.Expr) *ast.CompositeLit {
	if u, ok := e.(*ast.UnaryExpr); ok && u.Op == token.AND {
		e = u.X
	}
	cl, _ := e.(*ast.CompositeLit)
	return cl
}

func (p *adapterPkg) recordCall(fi *funcInfo, call *ast.CallExpr, lits map[string]*ast.CompositeLit, autoCreate bool) {
	add := func(ops ...sdkCall) {
		if autoCreate {
			for _, o := range ops {
				fi.autoCreate = append(fi.autoCreate, o.Op)
			}
			return
		}
		fi.direct = append(fi.direct, ops...)
	}
	switch fn := call.Fun.(type) {
	case *ast.SelectorExpr:
		// <x>.client.<Op>(ctx, in), <x>.presign.Presign<Op>
		if inner, ok := fn.X.(*ast.SelectorExpr); ok {
			switch inner.Sel.Name {
			case "client":
				add(p.sdkCallOf(fi, fn.Sel.Name, call, lits))
				return
			case "presign":
				// A presigned URL is signed with the role's credentials:
				// its holder's request needs the role to have the action.
				add(sdkCall{Op: strings.TrimPrefix(fn.Sel.Name, "Presign")})
				return
			}
		}
		// s3.NewListObjectsV2Paginator, dynamodb.NewTableExistsWaiter…
		if pkg, ok := fn.X.(*ast.Ident); ok && (pkg.Name == "s3" || pkg.Name == "dynamodb") {
			name := fn.Sel.Name
			switch {
			case sdkConstructors[name]:
			case strings.HasPrefix(name, "New") && strings.HasSuffix(name, "Paginator"):
				add(p.sdkCallOf(fi, strings.TrimSuffix(strings.TrimPrefix(name, "New"), "Paginator"), call, lits))
			case sdkHelpers[name] != "":
				add(sdkCall{Op: sdkHelpers[name]})
			case strings.HasPrefix(name, "New"):
				p.errs = append(p.errs, fmt.Sprintf("%s: %s.%s: an SDK helper this test does not know: say which requests it sends", fi.key, pkg.Name, name))
			}
			return
		}
		// A method of the package: s.get(…), c.s.check(…), t.createInput().
		keys := p.resolve(fi, fn.X, fn.Sel.Name)
		if len(keys) > 0 {
			p.addCallSite(fi, keys, call, autoCreate)
		}
	case *ast.Ident:
		if _, ok := p.funcs[fn.Name]; ok || len(p.methods[fn.Name]) > 0 {
			p.addCallSite(fi, []string{fn.Name}, call, autoCreate)
		}
	}
}

func (p *adapterPkg) addCallSite(fi *funcInfo, keys []string, call *ast.CallExpr, autoCreate bool) {
	if autoCreate {
		fi.autoCreate = append(fi.autoCreate, "call "+strings.Join(keys, "|"))
		return
	}
	cs := callSite{callees: keys}
	for _, a := range call.Args {
		cs.args = append(cs.args, p.tableOf(fi, a))
	}
	fi.calls = append(fi.calls, cs)
}

// resolve names the methods x.name may be: by x's type when it is the
// receiver or a field chain from it, else every method called name.
func (p *adapterPkg) resolve(fi *funcInfo, x ast.Expr, name string) []string {
	if typ := p.typeOf(fi, x); typ != "" {
		if _, ok := p.funcs[typ+"."+name]; ok {
			return []string{typ + "." + name}
		}
		return nil
	}
	return p.methods[name]
}

func (p *adapterPkg) typeOf(fi *funcInfo, x ast.Expr) string {
	switch x := x.(type) {
	case *ast.Ident:
		if x.Name == fi.recv {
			return fi.recvType
		}
	case *ast.SelectorExpr:
		if t := p.typeOf(fi, x.X); t != "" {
			return p.fields[t][x.Sel.Name]
		}
	}
	return ""
}

// tableOf is the table an expression names: a Store field holding one,
// or a parameter of fi.
func (p *adapterPkg) tableOf(fi *funcInfo, e ast.Expr) string {
	if u, ok := e.(*ast.UnaryExpr); ok && u.Op == token.AND {
		e = u.X
	}
	switch e := e.(type) {
	case *ast.SelectorExpr:
		if p.typeOf(fi, e.X) == "Store" {
			return tableFields[e.Sel.Name]
		}
	case *ast.Ident:
		for _, prm := range fi.params {
			if prm == e.Name {
				return "param:" + prm
			}
		}
	}
	return ""
}

// sdkCallOf reads the table and index of a request from its input
// literal (inline or assigned to a local before the call).
func (p *adapterPkg) sdkCallOf(fi *funcInfo, op string, call *ast.CallExpr, lits map[string]*ast.CompositeLit) sdkCall {
	c := sdkCall{Op: op}
	for _, a := range call.Args {
		cl := compositeLit(a)
		if id, ok := a.(*ast.Ident); ok && cl == nil {
			cl = lits[id.Name]
		}
		if cl == nil {
			continue
		}
		for _, el := range cl.Elts {
			kv, ok := el.(*ast.KeyValueExpr)
			if !ok {
				continue
			}
			key, _ := kv.Key.(*ast.Ident)
			if key == nil {
				continue
			}
			switch key.Name {
			case "TableName":
				c.Table = p.tableOf(fi, kv.Value)
			case "IndexName":
				c.Index = p.constString(kv.Value)
			}
		}
	}
	return c
}

// constString is the value of aws.String(<const>) or a string constant.
func (p *adapterPkg) constString(e ast.Expr) string {
	if call, ok := e.(*ast.CallExpr); ok && len(call.Args) == 1 {
		e = call.Args[0]
	}
	switch e := e.(type) {
	case *ast.Ident:
		if v, ok := p.consts[e.Name]; ok {
			return v
		}
	case *ast.BasicLit:
		v, _ := strconv.Unquote(e.Value)
		return v
	}
	return "?"
}

// calls returns every request key's function sends, directly or through
// the package's other functions, with tables bound through parameters.
func (p *adapterPkg) calls(key string) []sdkCall {
	seen := map[string]bool{}
	var out []sdkCall
	var walk func(key string, bind map[string]string)
	walk = func(key string, bind map[string]string) {
		fi := p.funcs[key]
		if fi == nil {
			return
		}
		memo := key + fmt.Sprint(bind)
		if seen[memo] {
			return
		}
		seen[memo] = true
		sub := func(tbl string) string {
			if strings.HasPrefix(tbl, "param:") {
				return bind[strings.TrimPrefix(tbl, "param:")]
			}
			return tbl
		}
		for _, c := range fi.direct {
			c.Table = sub(c.Table)
			out = append(out, c)
		}
		for _, cs := range fi.calls {
			for _, callee := range cs.callees {
				cf := p.funcs[callee]
				if cf == nil {
					continue
				}
				b := map[string]string{}
				for i, prm := range cf.params {
					if i < len(cs.args) {
						b[prm] = sub(cs.args[i])
					}
				}
				walk(callee, b)
			}
		}
	}
	walk(key, nil)
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}
