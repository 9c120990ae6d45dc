package template

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	texttemplate "text/template"

	"github.com/BurntSushi/toml"
	"go.yaml.in/yaml/v3"

	"github.com/kvconf/kvconf/backends/consul/catalog"
	_ "github.com/kvconf/kvconf/backends/consul/consulfuncs" // the consul set, of the default sets: service, services, nodes
	"github.com/kvconf/kvconf/funcs"
	"github.com/kvconf/kvconf/template/internal/fastexec"
)

// The tests of this file hold the fast executor to its contract: where it
// renders, its output is text/template's, byte for byte; where it cannot,
// autoMode falls back to text/template and fails, if at all, with
// text/template's error; fastMode fails with fastexec.ErrNotFast instead of falling
// back. slowMode is the reference every time.

// fastTestSet is a function set for these tests only: values of the types
// that templates meet (structs, pointers, maps, named basic types,
// Stringers, iterators) and functions that fail or panic.
const fastTestSet = "fastpathtest"

func init() {
	fm := texttemplate.FuncMap{
		"fixture": fixture,
		"fxerr":   func() (string, error) { return "", errors.New("fxerr: on purpose") },
		"fxpanic": func() string { panic("fxpanic: on purpose") },
		// Functions whose result is a nil of an interface type with
		// methods, which text/template keeps as such.
		"fxnilerror":    func() error { return nil },
		"fxnilstringer": func() fmt.Stringer { return nil },
		"executor":      executor,
	}
	funcs.Register(fastTestSet, "test-only fixtures of package template's fast path tests",
		func(context.Context, *funcs.Store) texttemplate.FuncMap { return fm })
}

// fastTestSets are the sets of the table and fuzz tests: the default ones
// and the fixtures.
func fastTestSets() []string { return append(funcs.DefaultSets(), fastTestSet) }

type fxInner struct{ Deep string }

type fxStruct struct {
	Name   string
	N      int
	Inner  fxInner
	Ptr    *fxInner
	NilPtr *fxInner
	Any    any
	AnyMap any
	NilAny any
	Err    error        // nil
	Str    fmt.Stringer // nil
	Map    map[string]string
	NilMap map[string]string
	List   []string
	hidden string
}

func (s fxStruct) Hello(who string) string { return "hello " + who + " from " + s.Name }

func (s *fxStruct) PtrMethod() string { return "ptr method of " + s.Name }

// fxEmbed promotes Deep through an embedded pointer, which may be nil.
type fxEmbed struct {
	*fxInner
	Own string
}

type (
	fxA1    struct{ X string }
	fxA2    struct{ X string }
	fxAmbig struct {
		fxA1
		fxA2
	}
)

type fxStringer int

func (v fxStringer) String() string { return fmt.Sprintf("S<%d>", int(v)) }

// fxPtrStringer is a Stringer only through its pointer: text/template
// prints an addressable one (a slice element) with String.
type fxPtrStringer int

func (v *fxPtrStringer) String() string { return fmt.Sprintf("P<%d>", int(*v)) }

type fxPtrStringerStr string

func (v *fxPtrStringerStr) String() string { return "PS<" + string(*v) + ">" }

type fxErrInt int

func (v fxErrInt) Error() string { return fmt.Sprintf("E<%d>", int(v)) }

type fxBoth int

func (v fxBoth) Error() string  { return fmt.Sprintf("error<%d>", int(v)) }
func (v fxBoth) String() string { return fmt.Sprintf("string<%d>", int(v)) }

type fxFormatter int

func (v fxFormatter) Format(f fmt.State, verb rune) { fmt.Fprintf(f, "F<%c%d>", verb, int(v)) }

type fxStructStringer struct{ V string }

func (v fxStructStringer) String() string { return "SS<" + v.V + ">" }

type fxStr string

type fxBool bool

// fxMethodMap has a method and a key of the same name: text/template
// calls the method.
type fxMethodMap map[string]string

func (m fxMethodMap) Size() string { return "from-method" }

// fixture returns a new value of the named kind, or an error.
func fixture(name string) (any, error) {
	pointed := "pointed"
	switch name {
	case "struct":
		return fxStruct{
			Name: "st", N: 7, Inner: fxInner{"in"}, Ptr: &fxInner{"p"},
			Any: fxInner{"any"}, AnyMap: map[string]any{"k": "anymap"},
			Map: map[string]string{"k": "v"}, List: []string{"x", "y"}, hidden: "h",
		}, nil
	case "structPtr":
		return &fxStruct{Name: "sp", Ptr: &fxInner{"pp"}, Map: map[string]string{"k": "pv"}}, nil
	case "structs":
		return []fxStruct{{Name: "s1"}, {Name: "s2"}}, nil
	case "nilStructPtr":
		return (*fxStruct)(nil), nil
	case "inner":
		return fxInner{"deep"}, nil
	case "innerPtr":
		return &fxInner{"deep"}, nil
	case "zeroStruct":
		return fxInner{}, nil
	case "embed":
		return fxEmbed{fxInner: &fxInner{"embedded"}, Own: "own"}, nil
	case "embedNil":
		return fxEmbed{Own: "own"}, nil
	case "ambig":
		return fxAmbig{fxA1{"1"}, fxA2{"2"}}, nil
	case "mapSS":
		return map[string]string{"a": "1", "b": "2"}, nil
	case "mapSA":
		return map[string]any{"s": "str", "n": 3, "nested": map[string]any{"x": "y"}, "nil": nil}, nil
	case "mapIntKey":
		return map[int]string{1: "one"}, nil
	case "methodMap":
		return fxMethodMap{"Size": "from-key", "k": "v"}, nil
	case "nilMap":
		return map[string]string(nil), nil
	case "emptyMap":
		return map[string]string{}, nil
	case "kvs":
		return []funcs.KV{{Key: "/k1", Value: "v1"}, {Key: "/k2", Value: "v2"}}, nil
	case "kvPtrs":
		return []*funcs.KV{{Key: "/k1", Value: "v1"}, {Key: "/k2", Value: "v2"}}, nil
	case "stringer":
		return fxStringer(4), nil
	case "stringers":
		return []fxStringer{1, 2}, nil
	case "ptrStringer":
		return fxPtrStringer(3), nil
	case "ptrStringers":
		return []fxPtrStringer{1, 2}, nil
	case "ptrStringerStrs":
		return []fxPtrStringerStr{"a", "b"}, nil
	case "errInt":
		return fxErrInt(5), nil
	case "both":
		return fxBoth(6), nil
	case "formatter":
		return fxFormatter(7), nil
	case "structStringer":
		return fxStructStringer{"v"}, nil
	case "error":
		return errors.New("an error value"), nil
	case "myStr":
		return fxStr("a"), nil
	case "myBool":
		return fxBool(true), nil
	case "strPtr":
		return &pointed, nil
	case "nilStrPtr":
		return (*string)(nil), nil
	case "int64":
		return int64(5), nil
	case "uint":
		return uint(5), nil
	case "uint8":
		return uint8(5), nil
	case "negInt":
		return -5, nil
	case "float32":
		return float32(0.1), nil
	case "float64":
		return 0.1, nil
	case "bigFloat":
		return 123456789.0, nil
	case "complex":
		return complex(1, 2), nil
	case "zeroComplex":
		return complex(0, 0), nil
	case "bytes":
		return []byte("hi"), nil
	case "ints":
		return []int{3, 1, 2}, nil
	case "array":
		return [2]string{"a", "b"}, nil
	case "anys":
		return []any{1, nil, "x", true, 1.5, fxInner{"d"}}, nil
	case "nilErrs":
		return []error{nil, fxErrInt(1)}, nil
	case "nilStringers":
		return []fmt.Stringer{nil, fxStringer(2)}, nil
	case "slicePtr":
		return &[]string{"a", "b"}, nil
	case "nilSlice":
		return []string(nil), nil
	case "emptySlice":
		return []string{}, nil
	case "nilAny":
		return nil, nil
	case "bool":
		return true, nil
	case "seq":
		return iter.Seq[int](func(yield func(int) bool) {
			for i := range 3 {
				if !yield(i * 10) {
					return
				}
			}
		}), nil
	case "seq2":
		return iter.Seq2[string, int](func(yield func(string, int) bool) {
			for i, k := range []string{"x", "y"} {
				if !yield(k, i) {
					return
				}
			}
		}), nil
	case "chan":
		c := make(chan string, 2)
		c <- "c1"
		c <- "c2"
		close(c)
		return c, nil
	case "func":
		return func() string { return "called" }, nil
	case "nilFunc":
		return (func() string)(nil), nil
	}
	return nil, fmt.Errorf("fixture %q: no such fixture", name)
}

// outcome is the result of one render.
type outcome struct {
	out string
	err error
}

func (o outcome) String() string {
	if o.err != nil {
		if o.out != "" {
			return fmt.Sprintf("error %q, with output %q", o.err, o.out)
		}
		return fmt.Sprintf("error %q", o.err)
	}
	return fmt.Sprintf("output %q", o.out)
}

// renderIn renders tm in mode.
func renderIn(ctx context.Context, tm *Template, s *funcs.Store, mode renderMode) outcome {
	var buf bytes.Buffer
	err := tm.render(ctx, &buf, s, mode)
	return outcome{out: buf.String(), err: err}
}

// renders are the outcomes of one template with one store in each mode.
type renders struct {
	slow, auto, fast outcome
	// again is fastMode once more, after the others: the fast path keeps
	// nothing from one render to the next, so it must give what fast gave.
	again outcome
}

// normalize rewrites what differs between two renders of the same input
// and is not the executor's doing: the addresses of pointers that the
// fixtures make anew for each render, as fmt prints them.
func (r *renders) normalize() {
	for _, o := range []*outcome{&r.slow, &r.auto, &r.fast, &r.again} {
		o.out = address.ReplaceAllString(o.out, "0xADDR")
	}
}

// modes parses the template that parse returns once, and renders it with
// s in fastMode, autoMode, slowMode, then fastMode again.
func modes(ctx context.Context, parse func() (*Template, error), s *funcs.Store) (renders, error) {
	tm, err := parse()
	if err != nil {
		return renders{}, err
	}
	var r renders
	r.fast = renderIn(ctx, tm, s, fastMode)
	r.auto = renderIn(ctx, tm, s, autoMode)
	r.slow = renderIn(ctx, tm, s, slowMode)
	r.again = renderIn(ctx, tm, s, fastMode)
	return r, nil
}

// discrepancies lists how auto and fast break the contract, slow being
// the reference, and how a render depends on the ones before; none means
// they keep it.
func discrepancies(rs renders) []string {
	slow, auto, fast := rs.slow, rs.auto, rs.fast
	var out []string
	if (fast.err == nil) != (rs.again.err == nil) || fast.out != rs.again.out {
		out = append(out, fmt.Sprintf("fastMode gave %v first, and %v after renders in the other modes", fast, rs.again))
	}
	for _, r := range []struct {
		mode string
		o    outcome
	}{{"slowMode", slow}, {"autoMode", auto}, {"fastMode", fast}} {
		if r.o.err != nil && r.o.out != "" {
			out = append(out, fmt.Sprintf("%s failed but wrote %d bytes", r.mode, len(r.o.out)))
		}
	}
	switch {
	case (auto.err == nil) != (slow.err == nil):
		out = append(out, fmt.Sprintf("autoMode: %v; slowMode: %v", auto, slow))
	case auto.err != nil && auto.err.Error() != slow.err.Error():
		out = append(out, fmt.Sprintf("autoMode error:\n\t%s\nslowMode error:\n\t%s", auto.err, slow.err))
	case auto.err == nil && auto.out != slow.out:
		out = append(out, fmt.Sprintf("autoMode output:\n\t%q\nslowMode output:\n\t%q", auto.out, slow.out))
	}
	if auto.err != nil && errors.Is(auto.err, fastexec.ErrNotFast) {
		out = append(out, fmt.Sprintf("autoMode error wraps fastexec.ErrNotFast: %v", auto.err))
	}
	if auto.err != nil && slow.err != nil {
		// Callers branch on these through the error chain.
		for _, target := range []error{funcs.ErrNotExist, ErrInclude, context.Canceled} {
			if errors.Is(auto.err, target) != errors.Is(slow.err, target) {
				out = append(out, fmt.Sprintf("errors.Is(%v): autoMode %t, slowMode %t", target,
					errors.Is(auto.err, target), errors.Is(slow.err, target)))
			}
		}
		_, autoExec := errors.AsType[texttemplate.ExecError](auto.err)
		_, slowExec := errors.AsType[texttemplate.ExecError](slow.err)
		if autoExec != slowExec {
			out = append(out, fmt.Sprintf("errors.As(ExecError): autoMode %t, slowMode %t", autoExec, slowExec))
		}
	}
	switch {
	case fast.err == nil && slow.err != nil:
		out = append(out, fmt.Sprintf("fastMode succeeded with output %q where slowMode failed: %v", fast.out, slow.err))
	case fast.err == nil && fast.out != slow.out:
		out = append(out, fmt.Sprintf("fastMode output:\n\t%q\nslowMode output:\n\t%q", fast.out, slow.out))
	case fast.err != nil && slow.err == nil && !errors.Is(fast.err, fastexec.ErrNotFast):
		out = append(out, fmt.Sprintf("fastMode failed without fastexec.ErrNotFast where slowMode succeeded: %v", fast.err))
	}
	return out
}

// noNetContext returns ctx with a resolver that fails at once, so that
// look-ups are deterministic and stay on the machine.
func noNetContext(ctx context.Context) context.Context {
	return funcs.WithResolver(ctx, &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("fast path tests: no network")
	}})
}

// catalogKVs returns the catalog keys of service "web", three instances
// (one critical), as the consul backend serves them.
func catalogKVs(t testing.TB) map[string]string {
	t.Helper()
	ins := []catalog.Instance{
		{Name: "web", ID: "web-1", Node: "n1", NodeAddress: "10.1.0.1", Address: "10.1.0.1", Port: 8080,
			Tags: catalog.Tags{"canary", "v1"}, Meta: map[string]string{"version": "1.0"},
			NodeMeta: map[string]string{"rack": "r1"}, Datacenter: "dc1", Status: catalog.StatusPassing},
		{Name: "web", ID: "web-2", Node: "n2", NodeAddress: "10.1.0.2", Address: "10.1.0.2", Port: 8081,
			Tags: catalog.Tags{"v1"}, Meta: map[string]string{"version": "1.1"},
			NodeMeta: map[string]string{"rack": "r2"}, Datacenter: "dc1", Status: catalog.StatusPassing},
		{Name: "web", ID: "web-3", Node: "n3", NodeAddress: "10.1.0.3", Address: "10.1.0.3", Port: 8082,
			Meta: map[string]string{"version": "1.1"}, NodeMeta: map[string]string{"rack": "r3"},
			Datacenter: "dc1", Status: catalog.StatusCritical},
	}
	raw, err := json.Marshal(ins)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{catalog.Query{Kind: catalog.KindService, Name: "web"}.Prefix(): string(raw)}
}

// flattenData adds the leaves of v, a decoded YAML or JSON document, to
// kvs under their paths: map members by name, array items by index, or by
// their member "name" when they have one (the metadata backend's rule).
func flattenData(kvs map[string]string, key string, v any) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			flattenData(kvs, key+"/"+k, e)
		}
	case []any:
		for i, e := range v {
			label := strconv.Itoa(i)
			if m, ok := e.(map[string]any); ok {
				if n, ok := m["name"].(string); ok && n != "" {
					label = n
				}
			}
			flattenData(kvs, key+"/"+label, e)
		}
	case nil:
		kvs[key] = ""
	default:
		kvs[key] = fmt.Sprint(v)
	}
}

// corpusRoot is a directory of templates with the data they render.
type corpusRoot struct {
	dir   string            // templates, relative to the repository root
	confd string            // conf.d of the resources that render them, or ""
	data  []string          // YAML or JSON files of keys
	kv    map[string]string // more keys
}

var corpusRoots = []corpusRoot{
	{dir: "templates", confd: "conf.d", data: []string{"examples/data.yaml"}},
	{dir: "examples/consul/templates", confd: "examples/consul/conf.d", kv: map[string]string{"/lb/web/listen_port": "8088"}},
	{dir: "examples/metadata/templates", confd: "examples/metadata/conf.d", data: []string{"examples/metadata/metadata.json"}},
	{dir: "resource/testdata/templates", kv: map[string]string{"/a": "A"}},
}

// corpusStore is one store a corpus template is rendered against.
type corpusStore struct {
	name string
	s    *funcs.Store
	fast bool // the render must finish on the fast path
}

// corpusTemplate is one template file of the repository and the stores it
// is rendered against.
type corpusTemplate struct {
	file   string // path relative to the repository root
	name   string // template name: path relative to dir
	dir    string // include directory
	stores []corpusStore
}

// rootStores returns the stores of r's templates by source name: the
// data, the data as each resource of r.confd sees it, and an empty store.
func rootStores(t *testing.T, repo string, r corpusRoot) (all []corpusStore, bySrc map[string][]corpusStore) {
	t.Helper()
	kvs := catalogKVs(t)
	for k, v := range r.kv {
		kvs[k] = v
	}
	for _, f := range r.data {
		raw, err := os.ReadFile(filepath.Join(repo, f))
		if err != nil {
			t.Fatal(err)
		}
		var doc any
		if err := yaml.Unmarshal(raw, &doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		flattenData(kvs, "", doc)
	}
	data := funcs.NewStore(kvs)
	all = []corpusStore{{name: "data", s: data}, {name: "empty", s: funcs.NewStore(nil)}}
	bySrc = map[string][]corpusStore{}
	if r.confd == "" {
		return all, bySrc
	}
	tomls, err := filepath.Glob(filepath.Join(repo, r.confd, "*.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(tomls) == 0 {
		t.Fatalf("no resources in %s", r.confd)
	}
	for _, f := range tomls {
		var res struct {
			Template struct {
				Src    string   `toml:"src"`
				Prefix string   `toml:"prefix"`
				Keys   []string `toml:"keys"`
			} `toml:"template"`
		}
		if _, err := toml.DecodeFile(f, &res); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		src := filepath.ToSlash(filepath.Clean(res.Template.Src))
		// A resource's own template and keys are the fast path's reason
		// to be: that render must not fall back.
		bySrc[src] = append(bySrc[src], corpusStore{name: "view of " + filepath.Base(f),
			s: data.View(res.Template.Prefix, res.Template.Keys), fast: true})
	}
	return all, bySrc
}

// corpus returns every template file of the repository with its stores.
// A template outside template/testdata and corpusRoots is an error, so
// that a new directory of templates cannot go untested.
func corpus(t *testing.T) []corpusTemplate {
	t.Helper()
	repo := ".."
	var out []corpusTemplate
	covered := map[string]bool{}
	for _, r := range corpusRoots {
		all, bySrc := rootStores(t, repo, r)
		files, err := filepath.Glob(filepath.Join(repo, r.dir, "*.tmpl"))
		if err != nil {
			t.Fatal(err)
		}
		if len(files) == 0 {
			t.Fatalf("no templates in %s", r.dir)
		}
		for _, f := range files {
			name := filepath.Base(f)
			rel := filepath.ToSlash(filepath.Join(r.dir, name))
			covered[rel] = true
			out = append(out, corpusTemplate{file: rel, name: name, dir: filepath.Join(repo, r.dir),
				stores: append(slices.Clone(bySrc[name]), all...)})
		}
	}
	for _, c := range LoadGoldenCases(t) {
		dir := c.Dir
		stores := []corpusStore{{name: "kv.json", s: funcs.NewStore(c.KV)}, {name: "empty", s: funcs.NewStore(nil)}}
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".tmpl") {
				return err
			}
			name, err := filepath.Rel(dir, p)
			if err != nil {
				return err
			}
			rel := filepath.ToSlash(filepath.Join("template", p))
			covered[rel] = true
			out = append(out, corpusTemplate{file: rel, name: filepath.ToSlash(name), dir: dir, stores: stores})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	err := filepath.WalkDir(repo, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "out" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".tmpl") {
			return nil
		}
		rel, err := filepath.Rel(repo, p)
		if err != nil {
			return err
		}
		if rel = filepath.ToSlash(rel); !covered[rel] {
			t.Errorf("template %s is in no corpus root: add its directory to corpusRoots", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestFastPathCorpus renders every template file of the repository with
// each of its stores in the three modes.
func TestFastPathCorpus(t *testing.T) {
	t.Parallel()
	ctx := noNetContext(t.Context())
	files := corpus(t)
	if len(files) < 50 {
		t.Fatalf("corpus of %d templates: the walk lost some", len(files))
	}
	var rendered, fast int
	for _, c := range files {
		src, err := os.ReadFile(filepath.Join("..", filepath.FromSlash(c.file)))
		if err != nil {
			t.Fatal(err)
		}
		parse := func() (*Template, error) { return Parse(c.name, src, Options{IncludeDir: c.dir}) }
		if _, err := parse(); err != nil {
			continue // a case of a parse error, or a fragment of one
		}
		for _, st := range c.stores {
			rs, err := modes(ctx, parse, st.s)
			if err != nil {
				t.Fatal(err)
			}
			fm := rs.fast
			for _, d := range discrepancies(rs) {
				t.Errorf("%s (include dir %s) with store %s:\n%s", c.file, c.dir, st.name, d)
			}
			rendered++
			if fm.err == nil {
				fast++
			} else if st.fast {
				t.Errorf("%s with store %s: fastMode: %v; want it rendered on the fast path", c.file, st.name, fm.err)
			}
		}
	}
	t.Logf("%d renders of %d templates, %d of them entirely on the fast path", rendered, len(files), fast)
	if fast == 0 {
		t.Error("no corpus render succeeded in fastMode: the fast path is unused")
	}
}

// fastCaseKV is the store of the table test.
func fastCaseKV(t testing.TB) map[string]string {
	kv := catalogKVs(t)
	for k, v := range map[string]string{
		"/a": "A", "/b": "b-value", "/empty": "", "/n": "3", "/csv": "p,q,r",
		"/d/x": "1", "/d/y": "2", "/d/z/deep": "deep",
		"/app/name": "demo", "/upstreams/u1": "10.0.0.1:80", "/upstreams/u2": "10.0.0.2:80",
	} {
		kv[k] = v
	}
	return kv
}

// fastCaseFiles are the include files of the table test.
var fastCaseFiles = map[string]string{
	"plain.tmpl":   `plain fragment {{getv "/a"}}`,
	"dot.tmpl":     `[{{.}}]`,
	"kv.tmpl":      `{{.Key}}={{.Value}};`,
	"a.tmpl":       `{{.a}}`,
	"nope.tmpl":    `{{.nope}}`,
	"name.tmpl":    `{{.Name}}`,
	"field.tmpl":   `{{.Name}}|{{.Inner.Deep}}|{{.Ptr.Deep}}|{{.Any.Deep}}|{{.AnyMap.k}}|{{.Map.k}}`,
	"root.tmpl":    `{{$.Key}}{{with .Value}}({{$.Key}}){{end}}`,
	"include.tmpl": `<{{include "dot.tmpl" .}}>`,
}

// TestFastPathCases renders hand-written templates, one construct each,
// in the three modes. Cases marked fast must render entirely on the fast
// path; want and wantErr pin what slowMode gives, so that a case keeps
// testing what its name says.
func TestFastPathCases(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, src := range fastCaseFiles {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s := funcs.NewStore(fastCaseKV(t))
	ctx := noNetContext(t.Context())
	tests := []struct {
		name    string
		src     string
		fast    bool   // fastMode must succeed
		want    string // slowMode's output, when set
		wantErr string // a substring of slowMode's error, when set
	}{
		// Text.
		{name: "plain", src: "just text\n", fast: true, want: "just text\n"},
		{name: "empty", src: "", fast: true, want: ""},
		{name: "comment_trim", src: "a {{- /* c */ -}} b", fast: true, want: "ab"},
		{name: "string_literals", src: "{{\"q\\t\\\"x\\\"\"}}{{`raw\\n`}}", fast: true, want: "q\t\"x\"raw\\n"},

		// Range.
		{name: "range_gets", src: `{{range gets "/upstreams/*"}}{{base .Key}}={{.Value}};{{end}}`, fast: true, want: "u1=10.0.0.1:80;u2=10.0.0.2:80;"},
		{name: "range_gets_final_arg", src: `{{range gets "/upstreams/*"}}{{.Key | base}} {{end}}`, fast: true, want: "u1 u2 "},
		{name: "range_gets_empty_else", src: `{{range gets "/none/*"}}x{{else}}empty{{end}}`, fast: true, want: "empty"},
		// Ranges over gets of a constant pattern read the store a pair at
		// a time (see streamedRanges), unless their body assigns a variable.
		{name: "range_gets_index", src: `{{range $i, $kv := gets "/upstreams/*"}}{{$i}}:{{base $kv.Key}} {{end}}`, fast: true, want: "0:u1 1:u2 "},
		{name: "range_gets_decl_else", src: `{{range $kv := gets "/none/*"}}x{{else}}{{len $kv}}|{{$kv}}{{end}}`, fast: true, want: "0|[]"},
		{name: "range_gets_two_decls_else", src: `{{range $i, $kv := gets "/none/*"}}x{{else}}{{$i}}{{end}}`, fast: true, want: "[]"},
		{name: "range_gets_break", src: `{{range gets "/upstreams/*"}}{{base .Key}}{{break}}{{end}}`, fast: true, want: "u1"},
		{name: "range_gets_continue", src: `{{range $i, $e := gets "/upstreams/*"}}{{if eq $i 0}}{{continue}}{{end}}{{$e.Value}}{{end}}`, fast: true, want: "10.0.0.2:80"},
		{name: "range_gets_nested", src: `{{range gets "/upstreams/*"}}{{$o := .}}{{range gets "/upstreams/*"}}{{base $o.Key}}{{base .Key}} {{end}}{{end}}`, fast: true, want: "u1u1 u1u2 u2u1 u2u2 "},
		{name: "range_gets_template", src: `{{define "t"}}{{base .Key}};{{end}}{{range gets "/upstreams/*"}}{{template "t" .}}{{end}}`, fast: true, want: "u1;u2;"},
		{name: "range_gets_keeps_first", src: `{{$first := 0}}{{range $i, $e := gets "/upstreams/*"}}{{if eq $i 0}}{{$first = $e}}{{end}}{{end}}{{base $first.Key}}`, fast: true, want: "u1"},
		{name: "range_gets_keeps_last", src: `{{$last := ""}}{{range gets "/upstreams/*"}}{{$last = .}}{{end}}{{$last.Value}}`, fast: true, want: "10.0.0.2:80"},
		{name: "range_gets_var_pattern", src: `{{$p := "/upstreams/*"}}{{range gets $p}}{{.Value}} {{end}}`, fast: true, want: "10.0.0.1:80 10.0.0.2:80 "},
		{name: "range_gets_bad_pattern", src: `{{range gets "/["}}x{{end}}`, wantErr: "syntax error in pattern"},
		{name: "range_gets_deeper", src: `{{range gets "/*"}}{{.Key}} {{end}}`, fast: true},
		{name: "range_ls", src: `{{range ls "/d"}}[{{.}}]{{end}}`, fast: true},
		{name: "range_ls_decl", src: `{{range $e := ls "/d"}}{{$e}},{{end}}`, fast: true},
		{name: "range_ls_empty_else", src: `{{range ls "/none"}}x{{else}}empty{{end}}`, fast: true, want: "empty"},
		{name: "range_lsdir", src: `{{range lsdir "/d"}}[{{.}}]{{end}}`},
		{name: "range_getvs", src: `{{range getvs "/upstreams/*"}}{{.}} {{end}}`},
		{name: "range_split", src: `{{range split (getv "/csv") ","}}<{{.}}>{{end}}`, fast: true, want: "<p><q><r>"},
		{name: "range_split_index", src: `{{range $i, $e := split (getv "/csv") ","}}{{$i}}:{{$e}} {{end}}`, fast: true, want: "0:p 1:q 2:r "},
		{name: "range_assign", src: `{{$i := -1}}{{$e := ""}}{{range $i, $e = split "a,b" ","}}{{end}}{{$i}}{{$e}}`, want: "1b"},
		{name: "range_assign_one", src: `{{$e := ""}}{{range $e = ls "/d"}}{{$e}}{{end}}|{{$e}}`},
		{name: "range_int", src: `{{range 5}}{{.}}{{end}}`, fast: true, want: "01234"},
		{name: "range_int_decl", src: `{{range $i := 3}}{{$i}}{{end}}`, fast: true, want: "012"},
		{name: "range_int_zero_else", src: `{{range 0}}x{{else}}none{{end}}`, fast: true, want: "none"},
		{name: "range_int_negative", src: `{{range -2}}x{{else}}none{{end}}`},
		{name: "range_int_from_func", src: `{{range len "abc"}}{{.}}{{end}}`, fast: true, want: "012"},
		{name: "range_int_two_vars", src: `{{range $i, $e := 3}}{{$i}}{{end}}`},
		{name: "range_uint", src: `{{range fixture "uint"}}{{.}}{{end}}`},
		{name: "range_anys", src: `{{range jsonArray "[1, null, \"x\", true, 1.5, 1e21, 123456789, 1e-7]"}}[{{.}}]{{end}}`},
		{name: "range_anys_decl", src: `{{range $i, $e := jsonArray "[1, null, \"x\"]"}}{{$i}}[{{$e}}]{{end}}`},
		{name: "range_anys_print", src: `{{range jsonArray "[1, null]"}}[{{print .}}]{{end}}`},
		{name: "range_anys_fixture", src: `{{range fixture "anys"}}[{{.}}]{{end}}`},
		{name: "range_list", src: `{{range list 1 "a" nil true}}[{{.}}]{{end}}`},
		{name: "range_map", src: `{{range $k, $v := map "b" 1 "a" 2}}{{$k}}={{$v}};{{end}}`, want: "a=2;b=1;"},
		{name: "range_map_dot", src: `{{range json "{\"b\":1,\"a\":\"x\"}"}}[{{.}}]{{end}}`},
		{name: "range_map_ss", src: `{{range $k, $v := fixture "mapSS"}}{{$k}}={{$v}};{{else}}none{{end}}`},
		{name: "range_map_empty", src: `{{range fixture "emptyMap"}}x{{else}}none{{end}}`},
		{name: "range_seq", src: `{{range fixture "seq"}}{{.}} {{end}}`},
		{name: "range_seq2", src: `{{range $k, $v := fixture "seq2"}}{{$k}}={{$v}} {{end}}`},
		{name: "range_seq_break", src: `{{range fixture "seq"}}{{.}}{{break}}{{end}}`},
		{name: "range_chan", src: `{{range fixture "chan"}}{{.}} {{end}}`},
		{name: "range_func", src: `{{range fixture "func"}}{{.}}{{end}}`},
		{name: "range_string", src: `{{range "abc"}}{{.}}{{end}}`, wantErr: "range can't iterate over abc"},
		{name: "range_nil_slice", src: `{{range fixture "nilSlice"}}x{{else}}nil{{end}}`},
		{name: "range_nil_any", src: `{{range fixture "nilAny"}}x{{else}}nil{{end}}`},
		{name: "range_kvs", src: `{{range fixture "kvs"}}{{.Key}}={{.Value}} {{end}}`},
		{name: "range_kv_ptrs", src: `{{range fixture "kvPtrs"}}{{.Key}}={{.Value}} {{end}}`},
		{name: "range_array", src: `{{range $i, $e := fixture "array"}}{{$i}}{{$e}}{{end}}`},
		{name: "range_slice_ptr", src: `{{range fixture "slicePtr"}}{{.}}{{end}}`, want: "ab"},
		{name: "range_decl_in_else", src: `{{range $i := 0}}{{else}}[{{$i}}]{{end}}{{range $e := ls "/none"}}{{else}}[{{len $e}}]{{end}}`},
		{name: "range_assign_int", src: `{{$i := 9}}{{range $i = 3}}{{end}}{{$i}}`},
		{name: "range_break_in_with", src: `{{range ls "/d"}}{{with .}}{{.}}{{break}}{{end}}{{end}}`},
		{name: "range_break_continue", src: `{{range $i := 10}}{{if eq $i 2}}{{continue}}{{end}}{{if eq $i 5}}{{break}}{{end}}{{$i}}{{end}}`, want: "0134"},
		{name: "range_break_gets", src: `{{range gets "/upstreams/*"}}{{.Value}}{{break}}{{end}}`, want: "10.0.0.1:80"},
		{name: "range_continue_nested", src: `{{range $k := ls "/d"}}{{range $i := 3}}{{if eq $i 1}}{{continue}}{{end}}{{$k}}{{$i}} {{end}}{{break}}{{end}}`},
		{name: "range_nested", src: `{{range $k := ls "/d"}}{{range $i := 2}}{{$k}}{{$i}} {{end}}{{end}}`, fast: true},
		{name: "range_dot_restored", src: `{{with "outer"}}{{range ls "/d"}}{{.}}{{end}}{{.}}{{end}}`, fast: true},
		{name: "range_instances", src: `{{range service "web"}}{{.ID}} {{.Address}}:{{.Port}} {{.Meta.version}} {{.NodeMeta.rack}};{{end}}`, fast: true,
			want: "web-1 10.1.0.1:8080 1.0 r1;web-2 10.1.0.2:8081 1.1 r2;"},
		{name: "range_instances_map_range", src: `{{range service "web"}}{{range $k, $v := .Meta}}{{$k}}={{$v}}{{end}};{{end}}`},
		{name: "range_instances_method", src: `{{range service "web"}}{{.Tags.Contains "canary"}} {{.ServiceMeta.version}};{{end}}`, fast: true},
		{name: "range_instances_missing_key", src: `{{range service "web"}}{{.Meta.nope}}{{end}}`, wantErr: "map has no entry for key"},
		{name: "range_ptr_stringers", src: `{{range fixture "ptrStringers"}}[{{.}}]{{end}}`},
		{name: "range_ptr_stringer_strs", src: `{{range fixture "ptrStringerStrs"}}[{{.}}]{{end}}`},
		{name: "range_ptr_stringers_var", src: `{{range $e := fixture "ptrStringers"}}[{{$e}}]{{end}}`},
		{name: "range_stringers", src: `{{range fixture "stringers"}}[{{.}}]{{end}}`},
		{name: "range_structs_ptr_method", src: `{{range fixture "structs"}}{{.PtrMethod}};{{end}}`, fast: true, want: "ptr method of s1;ptr method of s2;"},

		// If, with, else.
		{name: "if_else_chain", src: `{{if eq (getv "/n") "1"}}one{{else if eq (getv "/n") "3"}}three{{else}}other{{end}}`, fast: true, want: "three"},
		{name: "if_else_chain_last", src: `{{if eq (getv "/n") "1"}}one{{else if eq (getv "/n") "2"}}two{{else}}other{{end}}`, fast: true, want: "other"},
		{name: "if_exists", src: `{{if exists "/nope"}}y{{else}}n{{end}}`, want: "n"},
		{name: "if_truth_consts", src: `{{if ""}}a{{end}}{{if "x"}}b{{end}}{{if 0}}c{{end}}{{if 1}}d{{end}}{{if 0.0}}e{{end}}{{if true}}f{{end}}{{if false}}g{{end}}`, fast: true, want: "bdf"},
		{name: "if_truth_len", src: `{{if len (ls "/none")}}a{{else}}b{{end}}{{if ls "/d"}}c{{end}}{{if ls "/none"}}d{{end}}`, fast: true, want: "bc"},
		{name: "if_truth_values", src: `{{range $n := list "nilSlice" "emptySlice" "nilMap" "emptyMap" "mapSS" "zeroStruct" "nilStructPtr" "structPtr" "zeroComplex" "complex" "nilAny" "nilFunc" "func" "chan" "myBool" "negInt" "float32" "nilStrPtr"}}{{$n}}={{if fixture $n}}t{{else}}f{{end}} {{end}}`},
		{name: "if_decl", src: `{{if $v := getv "/a"}}{{$v}}{{end}}`, fast: true, want: "A"},
		{name: "if_error_in_cond", src: `x{{if getv "/nope"}}y{{end}}`, wantErr: "does not exist"},
		{name: "with_else", src: `{{with getv "/a"}}[{{.}}]{{else}}none{{end}}{{with getv "/empty"}}[{{.}}]{{else}}none{{end}}`, fast: true, want: "[A]none"},
		{name: "with_else_with", src: `{{with getv "/empty"}}a{{else with getv "/a"}}b{{.}}{{else}}c{{end}}`, fast: true, want: "bA"},
		{name: "with_else_with_last", src: `{{with getv "/empty"}}a{{else with ls "/none"}}b{{else}}c{{end}}`, fast: true, want: "c"},
		{name: "with_decl", src: `{{with $v := getv "/a"}}{{$v}}{{.}}{{end}}`, fast: true, want: "AA"},
		{name: "with_get_kv", src: `{{with get "/a"}}{{.Key}}={{.Value}}{{end}}`, fast: true, want: "/a=A"},
		{name: "with_kv_var_field", src: `{{$kv := get "/b"}}{{$kv.Key}}={{$kv.Value}}`, fast: true, want: "/b=b-value"},
		{name: "with_kv_missing_field", src: `{{with get "/a"}}{{.Nope}}{{end}}`, wantErr: "can't evaluate field Nope"},

		// Variables.
		{name: "var_decl_assign", src: `{{$x := getv "/a"}}{{$x}}{{$x = "B"}}{{$x}}`, fast: true, want: "AB"},
		{name: "var_scope_if", src: `{{$x := 1}}{{if true}}{{$x = 2}}{{$y := 3}}{{$y}}{{end}}{{$x}}`, fast: true, want: "32"},
		{name: "var_scope_else", src: `{{$x := "a"}}{{if false}}{{else}}{{$x := "b"}}{{$x}}{{end}}{{$x}}`, fast: true, want: "ba"},
		{name: "var_shadow_range", src: `{{$x := "outer"}}{{range $i := 2}}{{$x := "inner"}}{{$x}}{{end}}{{$x}}`, fast: true, want: "innerinnerouter"},
		{name: "var_assign_in_range", src: `{{$last := ""}}{{range ls "/d"}}{{$last = .}}{{end}}{{$last}}`, fast: true},
		{name: "var_assign_range_else", src: `{{$x := "a"}}{{range ls "/none"}}{{else}}{{$x = "else"}}{{end}}{{$x}}`, fast: true, want: "else"},
		{name: "var_scope_with", src: `{{$x := "a"}}{{with "b"}}{{$x = .}}{{$x := "c"}}{{$x}}{{end}}{{$x}}`, fast: true, want: "cb"},
		{name: "var_with_else_scope", src: `{{$x := "a"}}{{with ""}}{{else}}{{$x = "b"}}{{end}}{{$x}}`, fast: true, want: "b"},
		{name: "var_range_vars_per_iteration", src: `{{range $i, $e := ls "/d"}}{{$j := $i}}{{$j}}{{end}}`, fast: true},
		{name: "var_assign_root", src: `{{$ = "r"}}{{$}}{{define "t"}}{{$}}{{end}}{{template "t" "in"}}{{$}}`},
		{name: "var_assign_undeclared", src: `{{$x = 1}}ok`, wantErr: "undefined variable: $x"},
		{name: "var_assign_undeclared_used", src: `{{$x = 1}}{{$x}}`, wantErr: "undefined variable: $x"},
		{name: "range_assign_undeclared", src: `{{range $x = 0}}{{end}}`, wantErr: "undefined variable: $x"},
		{name: "range_assign_undeclared_elems", src: `{{range $k, $v = ls "/d"}}{{end}}ok`, wantErr: "undefined variable"},
		{name: "var_root_nil", src: `{{$}}|{{.}}`},
		{name: "var_root_in_range", src: `{{range ls "/d"}}{{$}}{{end}}`},
		{name: "var_assign_type_change", src: `{{$x := 1}}{{$x = "s"}}{{$x}}{{$x = ls "/d"}}{{len $x}}`},

		// Define, template, block.
		{name: "define_template_arg", src: `{{define "row"}}<{{.}}>{{end}}{{template "row" "x"}}{{template "row" getv "/a"}}`, fast: true, want: "<x><A>"},
		{name: "define_template_no_arg", src: `{{define "t"}}[{{getv "/a"}}]{{end}}{{template "t"}}`, fast: true, want: "[A]"},
		{name: "define_template_nil_dot", src: `{{define "t"}}[{{.}}]{{end}}{{template "t"}}`},
		{name: "define_vars", src: `{{define "t"}}{{$}}{{$x := .}}{{$x}}{{end}}{{$x := "outer"}}{{template "t" "in"}}{{$x}}`, fast: true, want: "ininouter"},
		{name: "define_in_range", src: `{{define "kv"}}{{base .Key}}={{.Value}} {{end}}{{range gets "/upstreams/*"}}{{template "kv" .}}{{end}}`, fast: true},
		{name: "define_pipeline_arg", src: `{{define "t"}}({{.}}){{end}}{{template "t" getv "/b" | toUpper}}`, fast: true, want: "(B-VALUE)"},
		{name: "define_recursive", src: `{{define "r"}}{{if gt (len .) 0}}{{index . 0}}{{template "r" (rest .)}}{{end}}{{end}}{{template "r" (list 1 2 3)}}`, want: "123"},
		{name: "define_infinite", src: `{{define "a"}}{{template "a"}}{{end}}{{template "a"}}`, wantErr: "exceeded maximum template depth"},
		{name: "template_missing", src: `{{template "nope"}}`, wantErr: `template "nope" not defined`},
		{name: "block", src: `{{block "b" "x"}}[{{.}}]{{end}}`, fast: true, want: "[x]"},

		// Parentheses and pipelines.
		{name: "paren_args", src: `{{printf "%s-%s" (getv "/a") (toUpper (getv "/b"))}}`, fast: true, want: "A-B-VALUE"},
		{name: "pipe_final_arg_printf", src: `{{"x" | printf "%s-%s" "a"}}`, fast: true, want: "a-x"},
		{name: "pipe_chain", src: `{{getv "/b" | toUpper | printf "<%s>"}}`, fast: true, want: "<B-VALUE>"},
		{name: "paren_pipe", src: `{{(getv "/a" | toLower)}}`, fast: true, want: "a"},
		{name: "paren_pipe_arg", src: `{{printf "%s" (getv "/a" | toLower)}}`, fast: true, want: "a"},
		{name: "pipe_into_eq", src: `{{"a" | eq "a"}}`, fast: true, want: "true"},
		{name: "pipe_decl", src: `{{$v := getv "/b" | base}}{{$v}}`, fast: true, want: "b-value"},
		{name: "chain_node", src: `{{(get "/a").Value}}`, want: "A"},
		{name: "chain_node_field_of_func", src: `{{(fixture "struct").Inner.Deep}}`, want: "in"},

		// and, or, not.
		{name: "and_or_values", src: `{{or "" "b"}}|{{and "a" "b"}}|{{and "" "b"}}|{{or 0 ""}}|{{and 1 0 2}}|{{or "a" (getv "/nope")}}`, fast: true, want: "b|b|||0|a"},
		{name: "and_short_circuit", src: `{{and "" (getv "/nope")}}x`, fast: true, want: "x"},
		{name: "or_error", src: `{{or "" (getv "/nope")}}`, wantErr: "does not exist"},
		{name: "or_returns_value", src: `{{or (ls "/none") (ls "/d")}}|{{and (ls "/d") 0}}|{{printf "%T" (or 0 1.5)}}`},
		{name: "not", src: `{{not ""}} {{not "a"}} {{not 0}} {{not (ls "/none")}}`, fast: true, want: "true false true true"},
		{name: "and_or_in_if", src: `{{if and (exists "/a") (not (exists "/nope"))}}y{{end}}`, want: "y"},
		{name: "and_no_args", src: `{{and}}`},
		{name: "not_struct_nil", src: `{{not (fixture "zeroStruct")}} {{not (fixture "nilStructPtr")}} {{not (fixture "nilAny")}}`},

		// len.
		{name: "len", src: `{{len "héllo"}} {{len (ls "/d")}} {{len (map "a" 1)}} {{len (gets "/upstreams/*")}}`, fast: true},
		{name: "len_int", src: `{{len 3}}`, wantErr: "len of type int"},
		{name: "len_nil", src: `{{len nil}}`},
		{name: "len_nil_ptr", src: `{{len (fixture "nilStructPtr")}}`},
		{name: "len_fixtures", src: `{{len (fixture "mapSS")}} {{len (fixture "nilMap")}} {{len (fixture "array")}} {{len (fixture "chan")}} {{len (fixture "strPtr")}} {{len (fixture "myStr")}}`},

		// eq, ne.
		{name: "eq_ne_strings_ints", src: `{{eq "a" "a"}} {{eq 1 2}} {{ne "a" "b"}} {{ne 1 1}} {{eq (len "ab") 2}} {{eq "a" "b" "a"}} {{eq (getv "/n") "3"}}`, fast: true, want: "true false true false true true true"},
		{name: "eq_mixed_int_uint", src: `{{eq (fixture "uint") 5}} {{eq 5 (fixture "uint")}} {{eq (fixture "int64") 5}} {{eq (fixture "uint8") (fixture "uint")}} {{eq (fixture "negInt") (fixture "uint")}} {{ne (fixture "uint") 5}}`},
		{name: "eq_bool", src: `{{eq true true}} {{eq (exists "/a") true}} {{ne false true}} {{eq (fixture "myBool") true}}`},
		{name: "eq_incompatible", src: `{{eq "a" 1}}`, wantErr: "incompatible types for comparison"},
		{name: "ne_incompatible", src: `{{ne 1 "a"}}`, wantErr: "incompatible types for comparison"},
		{name: "eq_float_int", src: `{{eq 1.0 1}}`, wantErr: "incompatible types for comparison"},
		{name: "eq_floats", src: `{{eq 1.5 1.5}} {{eq (fixture "float32") (fixture "float64")}}`},
		{name: "eq_named_string", src: `{{eq (fixture "myStr") "a"}} {{ne "a" (fixture "myStr")}}`},
		{name: "eq_noncomparable", src: `{{eq (ls "/d") (ls "/d")}}`},
		{name: "eq_nil", src: `{{eq (fixture "nilStructPtr") nil}}`},
		{name: "eq_structs", src: `{{eq (get "/a") (get "/a")}} {{eq (get "/a") (get "/b")}}`},
		{name: "eq_one_arg", src: `{{eq "a"}}`},
		{name: "eq_stringer", src: `{{eq (fixture "stringer") 4}}`},

		// print, printf, println.
		{name: "print", src: `{{print "a" "b"}}|{{print 1 2}}|{{print "a" 1 "b"}}|{{print (getv "/a") 3}}`, fast: true, want: "ab|1 2|a1b|A3"},
		{name: "print_edge", src: `{{print}}|{{print nil}}|{{print (fixture "nilAny")}}|{{print (fixture "struct").N}}`},
		{name: "printf", src: `{{printf "%d-%s-%v-%5.2f-%q" 3 "x" true 1.5 (getv "/a")}}`, fast: true, want: "3-x-true- 1.50-\"A\""},
		{name: "printf_bad_verbs", src: `{{printf "%d" "x"}}|{{printf "%s"}}|{{printf "%s" 1 2}}|{{printf "%v" (fixture "inner")}}`},
		{name: "printf_types", src: `{{printf "%T %T %T %T %T %T %T" 1 1.5 1e3 'a' 0x10 0x1p4 (fixture "myStr")}}`},
		{name: "println", src: `{{println "a" 1}}{{println}}`, want: "a 1\n\n"},

		// Constants.
		{name: "const_ints", src: `{{1}} {{-2}} {{0x10}} {{0X1f}} {{0o17}} {{017}} {{0b101}} {{1_000}} {{'a'}} {{'\n'}} {{'\u00e9'}}`, want: "1 -2 16 31 15 15 5 1000 97 10 233"},
		{name: "const_floats", src: `{{1.5}} {{1e3}} {{0x1p4}} {{1.0}} {{-0.5}} {{1e100}} {{.5}} {{1e-7}} {{123456789.0}}`},
		{name: "const_bool", src: `{{true}} {{false}}`, want: "true false"},
		{name: "const_nil_arg", src: `{{printf "%v" nil}}|{{print nil 1}}`},
		{name: "const_nil_to_string", src: `{{toUpper nil}}`},
		{name: "const_complex", src: `{{1i}} {{printf "%T" 1i}} {{1+2i}}`},
		{name: "const_overflow", src: `{{18446744073709551615}}`, wantErr: "overflows int"},
		{name: "const_overflow_arg", src: `{{printf "%v" 9223372036854775808}}`, wantErr: "overflows int"},
		{name: "const_to_int_func", src: `{{add 0x10 'a'}} {{add 1e3 1}} {{sub 5 7}}`},
		{name: "const_float_to_int", src: `{{add 1.5 2}}`},
		{name: "const_int_to_string", src: `{{toUpper 1}}`},
		{name: "const_string_to_int", src: `{{add "1" 2}}`},

		// Fields.
		{name: "field_struct", src: `{{with fixture "struct"}}{{.Name}} {{.N}} {{.Inner.Deep}} {{.Ptr.Deep}} {{.Any.Deep}} {{.AnyMap.k}} {{.Map.k}} {{.List}}{{end}}`,
			want: "st 7 in p any anymap v [x y]"},
		{name: "field_struct_include", src: `{{include "field.tmpl" (fixture "struct")}}`, want: "st|in|p|any|anymap|v"},
		{name: "field_struct_var", src: `{{$s := fixture "struct"}}{{$s.Name}} {{$s.Inner.Deep}}`, want: "st in"},
		{name: "field_ptr_struct", src: `{{with fixture "structPtr"}}{{.Name}} {{.Ptr.Deep}} {{.Map.k}}{{end}}|{{include "name.tmpl" (fixture "structPtr")}}`, want: "sp pp pv|sp"},
		{name: "field_nil_ptr", src: `{{include "name.tmpl" (fixture "nilStructPtr")}}`, wantErr: "nil pointer evaluating"},
		{name: "field_nil_ptr_field", src: `{{with fixture "struct"}}{{.NilPtr.Deep}}{{end}}`, wantErr: "nil pointer evaluating"},
		{name: "field_nil_iface_field", src: `{{with fixture "struct"}}{{.NilAny.Deep}}{{end}}`},
		{name: "field_iface_print", src: `{{with fixture "struct"}}{{.Any}}|{{.NilAny}}|{{.NilPtr}}|{{.NilMap}}{{end}}`},
		{name: "field_nil_map_key", src: `{{with fixture "struct"}}{{.NilMap.k}}{{end}}`, wantErr: "map has no entry for key"},
		{name: "field_unexported", src: `{{with fixture "struct"}}{{.hidden}}{{end}}`, wantErr: "unexported field"},
		{name: "field_embedded", src: `{{with fixture "embed"}}{{.Deep}} {{.Own}}{{end}}`, want: "embedded own"},
		{name: "field_embedded_nil", src: `{{with fixture "embedNil"}}{{.Own}}{{.Deep}}{{end}}`},
		{name: "field_ambiguous", src: `{{with fixture "ambig"}}{{.X}}{{end}}`},
		{name: "field_map_ss", src: `{{with fixture "mapSS"}}{{.a}}{{.b}}{{end}}`, want: "12"},
		{name: "field_map_ss_missing", src: `{{with fixture "mapSS"}}{{.nope}}{{end}}`, wantErr: "map has no entry for key"},
		{name: "field_map_sa", src: `{{with json "{\"a\":{\"b\":\"c\"},\"n\":1,\"z\":null}"}}{{.a.b}} {{.n}} {{.z}}{{end}}`},
		{name: "field_map_sa_fixture", src: `{{with fixture "mapSA"}}{{.s}} {{.n}} {{.nested.x}} {{.nil}}{{end}}`},
		{name: "field_map_sa_missing", src: `{{$m := map "a" 1}}a={{$m.a}} b={{$m.b}}`, wantErr: "map has no entry for key"},
		{name: "field_map_sa_missing_nested", src: `{{with json "{\"a\":{}}"}}{{.a.b.c}}{{end}}`},
		{name: "field_map_include", src: `{{include "a.tmpl" (map "a" "x")}}{{include "a.tmpl" (fixture "mapSS")}}`, want: "x1"},
		{name: "field_map_include_missing", src: `{{include "nope.tmpl" (map "a" "x")}}`, wantErr: "map has no entry for key"},
		{name: "field_map_int_key", src: `{{with fixture "mapIntKey"}}{{.x}}{{end}}`},
		{name: "field_method_map", src: `{{with fixture "methodMap"}}{{.Size}} {{.k}}{{end}}`, fast: true, want: "from-method v"},
		{name: "field_on_nil_data", src: `{{.Foo}}`},
		{name: "field_on_string", src: `{{with getv "/a"}}{{.Foo}}{{end}}`, wantErr: "can't evaluate field Foo"},
		{name: "field_on_int", src: `{{with len "ab"}}{{.Foo}}{{end}}`},
		{name: "field_kv_in_include", src: `{{range gets "/upstreams/*"}}{{include "kv.tmpl" .}}{{end}}`, want: "/upstreams/u1=10.0.0.1:80;/upstreams/u2=10.0.0.2:80;"},
		{name: "field_root_in_include", src: `{{include "root.tmpl" (get "/a")}}`, want: "/a(/a)"},
		{name: "field_kv_ptr_include", src: `{{range fixture "kvPtrs"}}{{include "kv.tmpl" .}}{{end}}`},
		{name: "method_with_arg", src: `{{with fixture "struct"}}{{.Hello "x"}}{{end}}`, fast: true, want: "hello x from st"},
		{name: "method_ptr_on_ptr", src: `{{with fixture "structPtr"}}{{.PtrMethod}}{{end}}`, fast: true, want: "ptr method of sp"},
		{name: "method_ptr_on_value", src: `{{with fixture "struct"}}{{.PtrMethod}}{{end}}`},
		{name: "method_field_args", src: `{{with get "/a"}}{{.Key "x"}}{{end}}`},
		{name: "method_piped_arg", src: `{{with fixture "struct"}}{{"y" | .Hello}}{{end}}`, fast: true, want: "hello y from st"},
		{name: "method_var_chain", src: `{{$s := fixture "struct"}}{{$s.Hello "v"}}|{{(fixture "struct").Hello "c"}}`, fast: true, want: "hello v from st|hello c from st"},
		{name: "method_in_arg", src: `{{range service "web"}}{{if .Tags.Contains "a"}}A{{end}}{{printf "%s" .NodeDatacenter}};{{end}}`, fast: true},
		{name: "method_wrong_args", src: `{{with fixture "struct"}}{{.Hello}}{{end}}`, wantErr: "wrong number of args"},
		{name: "method_on_nil_ptr", src: `{{with fixture "nilStructPtr"}}{{.PtrMethod}}{{else}}nil{{end}}`},
		{name: "truth_of_element_fields", src: `{{range fixture "structs"}}{{if .List}}L{{else}}-{{end}}{{with .Map}}M{{else}}-{{end}}{{if not .Ptr}}n{{end}}{{and .Name .List}};{{end}}`, fast: true, want: "--n[];--n[];"},
		{name: "len_of_element_fields", src: `{{range fixture "structs"}}{{len .List}}{{len .Name}};{{end}}`, fast: true, want: "02;02;"},

		// include.
		{name: "include_no_data", src: `{{include "plain.tmpl"}}`, want: "plain fragment A"},
		{name: "include_nil_dot", src: `{{include "dot.tmpl"}}`, want: "[<no value>]"},
		{name: "include_data", src: `{{include "dot.tmpl" (getv "/a")}}{{include "dot.tmpl" 3}}{{include "dot.tmpl" (ls "/d")}}`},
		{name: "include_nested", src: `{{include "include.tmpl" "n"}}`, want: "<[n]>"},
		{name: "include_pipe", src: `{{getv "/a" | include "dot.tmpl"}}`, want: "[A]"},
		{name: "include_missing_file", src: `{{include "missing.tmpl"}}`},
		{name: "include_too_many", src: `{{include "dot.tmpl" 1 2}}`, wantErr: "want at most one data argument"},
		{name: "include_in_range", src: `{{range ls "/d"}}{{include "dot.tmpl" .}}{{end}}`},

		// getv.
		{name: "getv_missing", src: `before {{getv "/nope"}}`, wantErr: `key "/nope" does not exist`},
		{name: "getv_default", src: `{{getv "/nope" "dflt"}}|{{getv "/a" "dflt"}}|{{getv "/nope" ""}}`, fast: true, want: "dflt|A|"},
		{name: "getv_wrong_arg", src: `{{getv 1}}`},
		{name: "getv_no_arg", src: `{{getv}}`},
		{name: "getv_in_range_missing", src: `{{range ls "/d"}}{{getv (printf "/d/%s" .)}};{{end}}`, wantErr: "does not exist"},
		{name: "calls", src: `{{base "/x/y"}} {{toUpper "a"}} {{getv "/a"}} {{printf "%03d" 7}} {{print "p"}}`, fast: true, want: "y A A 007 p"},
		{name: "call_wrong_count", src: `{{base "a" "b"}}`, wantErr: "wrong number of args"},

		// Printing.
		{name: "print_bool_int_float", src: `{{exists "/a"}} {{len "abc"}} {{1.5}} {{atoi "42"}} {{add 1 2}}`, want: "true 3 1.5 42 3"},
		{name: "print_no_value", src: `{{.}}|{{$}}|{{fixture "nilAny"}}`},
		{name: "print_nil_ptr", src: `{{fixture "nilStructPtr"}}`},
		{name: "print_nil_str_ptr", src: `{{fixture "nilStrPtr"}}`},
		{name: "print_nil_map_slice", src: `{{fixture "nilMap"}}|{{fixture "nilSlice"}}`},
		{name: "print_str_ptr", src: `{{fixture "strPtr"}}`},
		{name: "print_slices", src: `{{ls "/d"}} {{split "a,b" ","}} {{fixture "ints"}} {{fixture "bytes"}} {{fixture "array"}} {{list 1 "a"}}`},
		{name: "print_structs", src: `{{get "/a"}} {{fixture "zeroStruct"}} {{fixture "inner"}} {{fixture "innerPtr"}}`},
		{name: "print_maps", src: `{{fixture "mapSS"}} {{map "b" 1 "a" 2}}`},
		{name: "print_stringer", src: `{{fixture "stringer"}}`, want: "S<4>"},
		{name: "print_struct_stringer", src: `{{fixture "structStringer"}}`, want: "SS<v>"},
		{name: "print_ptr_stringer_value", src: `{{fixture "ptrStringer"}}`},
		{name: "print_error_int", src: `{{fixture "errInt"}}`, want: "E<5>"},
		{name: "print_error_and_stringer", src: `{{fixture "both"}}`, want: "error<6>"},
		{name: "print_formatter", src: `{{fixture "formatter"}}`, want: "F<v7>"},
		{name: "print_error_value", src: `{{fixture "error"}}`, want: "an error value"},
		{name: "print_named_string", src: `{{fixture "myStr"}}`, want: "a"},
		{name: "print_named_bool", src: `{{fixture "myBool"}}`, want: "true"},
		{name: "print_ints", src: `{{fixture "int64"}} {{fixture "uint"}} {{fixture "uint8"}} {{fixture "negInt"}}`, want: "5 5 5 -5"},
		{name: "print_float32", src: `{{fixture "float32"}}`, want: "0.1"},
		{name: "print_floats", src: `{{fixture "float64"}} {{fixture "bigFloat"}}`, want: "0.1 1.23456789e+08"},
		{name: "print_complex", src: `{{fixture "complex"}}`, want: "(1+2i)"},
		{name: "print_func", src: `{{fixture "func"}}`, wantErr: "can't print"},
		{name: "print_chan", src: `{{fixture "chan"}}`},
		{name: "print_json_numbers", src: `{{range jsonArray "[0.1, 1e21, 1e-7, 123456789, 100, -0]"}}{{.}} {{end}}`},

		// Nils of interface types with methods: text/template prints
		// them with fmt ("<nil>"), not as a missing value.
		{name: "nil_error_result", src: `{{fxnilerror}}`, want: "<nil>"},
		{name: "nil_stringer_result", src: `{{fxnilstringer}}`, want: "<nil>"},
		{name: "nil_error_field", src: `{{with fixture "struct"}}{{.Err}}|{{.Str}}{{end}}`, want: "<nil>|<nil>"},
		{name: "nil_error_var", src: `{{$e := fxnilerror}}{{$e}}`, want: "<nil>"},
		{name: "nil_error_elems", src: `{{range fixture "nilErrs"}}[{{.}}]{{end}}`, want: "[<nil>][E<1>]"},
		{name: "nil_stringer_elems", src: `{{range fixture "nilStringers"}}[{{.}}]{{end}}`, want: "[<nil>][S<2>]"},
		{name: "nil_error_print", src: `{{print fxnilerror}}|{{with fixture "struct"}}{{print .Err}}{{end}}`, want: "<nil>|<nil>"},

		// A range's dot and variables are the slice's elements, not
		// copies: reverse and sortByLength change a slice in place.
		{name: "alias_range_dot_strings", src: `{{$l := split "bb,a,ccc" ","}}{{range $l}}{{$_ := reverse $l}}{{.}},{{end}}`, want: "ccc,a,bb,"},
		{name: "alias_range_var_strings", src: `{{$l := split "bb,a,ccc" ","}}{{range $i, $e := $l}}{{$_ := sortByLength $l}}{{$e}},{{end}}`},
		{name: "alias_range_assigned_var", src: `{{$e := ""}}{{$l := split "x,y" ","}}{{range $e = $l}}{{end}}{{$_ := reverse $l}}{{$e}}`, want: "x"},
		{name: "alias_range_dot_kvs", src: `{{$kvs := gets "/upstreams/*"}}{{range $kvs}}{{$_ := reverse $kvs}}{{.Key}},{{end}}`, fast: true,
			want: "/upstreams/u2,/upstreams/u2,"},
		{name: "alias_arg_read_at_call", src: `{{$l := split "bb,a,ccc" ","}}{{range $l}}{{print . (reverse $l)}};{{end}}`,
			want: "ccc[ccc a bb];a[bb a ccc];bb[ccc a bb];"},
		{name: "alias_var_arg_read_at_call", src: `{{$l := split "bb,a" ","}}{{$e := index $l 0}}{{printf "%s %v" $e (reverse $l)}}`, want: "a [a bb]"},
		{name: "alias_typed_arg_read_at_call", src: `{{$l := split "bb,a" ","}}{{range $l}}{{contains . (index (reverse $l) 0)}};{{end}}`},
		{name: "alias_final_arg", src: `{{$l := split "bb,a" ","}}{{range $l}}{{. | printf "%[2]s %[1]v" (reverse $l)}};{{end}}`},
		{name: "alias_index", src: `{{$l := split "x,y" ","}}{{$e := index $l 0}}{{$_ := reverse $l}}{{$e}}`, want: "y"},
		{name: "map_range_values_at_start", src: `{{$m := dict "a" "1" "b" "2"}}{{range $k, $v := $m}}{{$_ := set $m "b" "X"}}{{$k}}={{$v}};{{end}}`,
			want: "a=1;b=2;"},
		{name: "map_range_deleted", src: `{{$m := dict "a" "1" "b" "2"}}{{range $k, $v := $m}}{{$_ := unset $m "b"}}{{$k}}={{$v}};{{end}}`,
			want: "a=1;b=2;"},
		{name: "map_range_dot_values_at_start", src: `{{$m := map "a" "1" "b" "2"}}{{range $m}}{{$_ := set $m "b" "X"}}{{.}};{{end}}`, want: "1;2;"},
		{name: "alias_range_kv_field_var", src: `{{$kvs := gets "/upstreams/*"}}{{range $kvs}}{{$k := .Key}}{{$_ := reverse $kvs}}{{$k}},{{end}}`},

		// Found in review.
		{name: "break_in_inner_else", src: `{{range 3}}{{range 0}}{{else}}{{break}}{{end}}{{.}}{{end}}`, fast: true, want: "012"},
		{name: "break_in_inner_else_if", src: `{{range $i := 3}}{{range fixture "nilSlice"}}{{else}}{{if eq $i 1}}{{break}}{{end}}{{end}}{{$i}}{{end}}`, want: "012"},
		{name: "nil_any_element_for_list", src: `{{range jsonArray "[null]"}}[{{join . ","}}]{{end}}`, wantErr: "wrong type for value"},
		{name: "nil_any_var_for_list", src: `{{range $e := jsonArray "[null]"}}[{{join $e ","}}]{{end}}`, wantErr: "wrong type for value"},
		{name: "nil_any_field_for_list", src: `{{with json "{\"n\": null}"}}[{{join .n ","}}]{{end}}`, wantErr: "wrong type for value"},
		{name: "nil_any_struct_field_for_list", src: `{{with fixture "struct"}}[{{join .NilAny ","}}]{{end}}`, wantErr: "wrong type for value"},
		{name: "nil_error_for_list", src: `[{{join fxnilerror ","}}]`, wantErr: "wrong type for value"},
		{name: "nil_any_pipeline_for_list", src: `{{$x := (json "{\"n\": null}").n}}[{{join $x ","}}]`, fast: true, want: "[]"},
		{name: "chain_field", src: `{{(get "/csv").Value}}|{{len (get "/a").Key}}`, fast: true, want: "p,q,r|2"},
		{name: "chain_nil", src: `{{(fixture "nilAny").X}}`, wantErr: "nil"},
		{name: "compare_builtins", src: `{{if gt (len (ls "/d")) 0}}some{{end}} {{lt 1 2}} {{le 2 2}} {{gt 2.5 1.5}} {{ge "a" "b"}} {{lt "" "a"}}`, fast: true, want: "some true true true false true"},
		{name: "compare_incompatible", src: `{{lt 1 "a"}}`, wantErr: "incompatible types for comparison"},
		{name: "compare_bool", src: `{{lt true false}}`, wantErr: "invalid type for comparison"},
		{name: "compare_arity", src: `{{gt 1}}`, wantErr: "wrong number of args"},
		{name: "range_nested_any_lists", src: `{{range jsonArray "[[\"a\",\"b\"],[\"c\"]]"}}{{range .}}{{.}}{{end}};{{end}}`, fast: true, want: "ab;c;"},
		{name: "range_map_of_any_lists", src: `{{range $k, $v := json "{\"x\":[\"1\",\"2\"]}"}}{{$k}}:{{range $v}}{{.}}{{end}}{{end}}`, fast: true, want: "x:12"},
		{name: "range_service_tags", src: `{{range service "web"}}{{range .Tags}}[{{.}}]{{end}}{{end}}`, fast: true},

		// Failures of functions, and builtins the fast path leaves to
		// text/template.
		{name: "func_error", src: `a{{fxerr}}b`, wantErr: "fxerr: on purpose"},
		{name: "func_panic", src: `a{{fxpanic}}b`, wantErr: "fxpanic: on purpose"},
		{name: "sprig_fail", src: `a{{fail "boom"}}`, wantErr: "boom"},
		{name: "fixture_unknown", src: `{{fixture "nope"}}`, wantErr: "no such fixture"},
		{name: "arg_named_string", src: `{{toUpper (fixture "myStr")}}`},
		{name: "arg_string_ptr", src: `{{toUpper (fixture "strPtr")}}`},
		{name: "arg_nil_string_ptr", src: `{{toUpper (fixture "nilStrPtr")}}`},
		{name: "arg_stringer_to_string", src: `{{toUpper (fixture "stringer")}}`},
		{name: "arg_any_to_string", src: `{{range jsonArray "[\"x\", 1]"}}{{toUpper .}}{{end}}`},
		{name: "arg_base_int", src: `{{base 1}}`},
		{name: "builtins_other", src: `{{index (ls "/d") 0}} {{slice "abc" 1}} {{html "<a>"}} {{js "x'"}} {{urlquery "a b"}} {{lt 1 2}} {{le 2 2}} {{gt "b" "a"}} {{call (fixture "func")}}`},
		{name: "builtin_index_error", src: `{{index (ls "/d") 9}}`},
		{name: "builtin_call_nil", src: `{{call (fixture "nilFunc")}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rs, err := modes(ctx, func() (*Template, error) {
				return Parse("case.tmpl", []byte(tt.src), Options{Sets: fastTestSets(), IncludeDir: dir})
			}, s)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			rs.normalize()
			slow, fast := rs.slow, rs.fast
			for _, d := range discrepancies(rs) {
				t.Errorf("template %q:\n%s", tt.src, d)
			}
			switch {
			case tt.wantErr != "" && (slow.err == nil || !strings.Contains(slow.err.Error(), tt.wantErr)):
				t.Errorf("slowMode: %v; want an error containing %q (the case is wrong)", slow, tt.wantErr)
			case tt.wantErr == "" && tt.want != "" && (slow.err != nil || slow.out != tt.want):
				t.Errorf("slowMode: %v; want output %q (the case is wrong)", slow, tt.want)
			}
			if tt.fast && fast.err != nil {
				t.Errorf("template %q: fastMode: %v; want it rendered on the fast path", tt.src, fast.err)
			}
		})
	}
}

// TestFastPathConcurrent renders one template from several goroutines
// in autoMode and fastMode (run with -race): the fast path may keep
// per-template state, and renders must not share it unsafely.
func TestFastPathConcurrent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "kv.tmpl"), []byte(fastCaseFiles["kv.tmpl"]), 0o644); err != nil {
		t.Fatal(err)
	}
	src := `{{define "v"}}{{.}}{{end}}{{range $i, $kv := gets "/upstreams/*"}}{{$i}}{{template "v" $kv.Value}}{{include "kv.tmpl" $kv}}{{end}}`
	tm, err := Parse("c.tmpl", []byte(src), Options{IncludeDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	want := func(n string) string { return "0" + n + "/upstreams/u1=" + n + ";" }
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			n := strings.Repeat("v", i+1)
			s := funcs.NewStore(map[string]string{"/upstreams/u1": n})
			for j := range 20 {
				mode := autoMode
				if j%2 == 1 {
					mode = fastMode
				}
				o := renderIn(t.Context(), tm, s, mode)
				if (o.err != nil && !errors.Is(o.err, fastexec.ErrNotFast)) || (o.err == nil && o.out != want(n)) {
					t.Errorf("render %d, mode %d: %v; want output %q", i, mode, o, want(n))
					return
				}
			}
		})
	}
	wg.Wait()
}

// fuzzSkip holds names in a template source that make renders depend on
// the clock, randomness, the environment or the network, or that can
// make one input run for minutes. The check is deliberately coarse.
var fuzzSkip = regexp.MustCompile(`(?i)date|now|ago|epoch|rand|uuid|shuffle|lookup|env|file|gen|crypt|htpasswd|password|cert|hostbyname|repeat|until|seq|mul|[0-9]{4,}`)

// address matches a pointer as fmt prints it.
var address = regexp.MustCompile(`0x[0-9a-f]{8,}`)

// longNumber matches data that a template could turn into a long loop.
var longNumber = regexp.MustCompile(`[0-9]{4,}`)

// FuzzFastPath renders arbitrary template sources against a store made
// of a and b in the three modes: autoMode must give slowMode's output or
// error, and fastMode, when it renders, slowMode's output.
func FuzzFastPath(f *testing.F) {
	for _, seed := range []string{
		`plain text`,
		`{{getv "/a"}}-{{getv "/b"}}`,
		`{{getv "/nope" "dflt"}}{{getv "/nope"}}`,
		`{{range gets "/d/*"}}{{base .Key}}={{.Value}};{{end}}`,
		`{{range $i, $k := ls "/d"}}{{$i}}{{$k}}{{else}}none{{end}}`,
		`{{range split (getv "/a") ","}}<{{.}}>{{end}}`,
		`{{range 3}}{{.}}{{break}}{{end}}{{range $i := 4}}{{if eq $i 1}}{{continue}}{{end}}{{$i}}{{end}}`,
		`{{if eq (getv "/a") (getv "/b")}}same{{else if ne (getv "/a") ""}}a{{else}}empty{{end}}`,
		`{{with getv "/a"}}{{.}}{{else with getv "/b"}}{{.}}{{else}}none{{end}}`,
		`{{$x := getv "/a"}}{{range ls "/d"}}{{$x = .}}{{end}}{{$x}}`,
		`{{define "t"}}[{{.}}]{{end}}{{template "t" getv "/a"}}{{template "t"}}`,
		`{{or (getv "/a") "b"}}{{and (getv "/a") (getv "/b")}}{{not (getv "/a")}}`,
		`{{len (getv "/a")}} {{len (ls "/d")}} {{len (map "k" (getv "/b"))}}`,
		`{{eq (len (getv "/a")) 1}} {{eq (getv "/a") 1}} {{ne (len (getv "/b")) (fixture "uint")}}`,
		`{{print (getv "/a") 1 2.5 true nil}}{{printf "%q %d" (getv "/b") 0x10}}{{println 'a' 1e3}}`,
		`{{getv "/a" | printf "%s-%s" "x" | toUpper}}`,
		`{{(get "/a").Value}}{{with get "/b"}}{{.Key}}{{.Nope}}{{end}}`,
		`{{with fixture "struct"}}{{.Name}} {{.Ptr.Deep}} {{.Any.Deep}} {{.Map.k}} {{.NilPtr}}{{end}}`,
		`{{include "dot.tmpl" (getv "/a")}}{{include "kv.tmpl" (get "/b")}}{{include "dot.tmpl"}}`,
		`{{range jsonArray (getv "/a")}}[{{.}}]{{end}}{{with json (getv "/b")}}{{.k}}{{end}}`,
		`{{range fixture "ptrStringers"}}{{.}}{{end}}{{fixture "errInt"}}{{fixture "float32"}}`,
		`{{range $k, $v := map "a" (getv "/a") "b" 2}}{{$k}}{{$v}}{{end}}`,
		`{{range service "web"}}{{.ID}}:{{.Port}} {{.Meta.version}}{{end}}`,
		`{{atoi (getv "/a")}} {{add (atoi (getv "/b")) 1}} {{parseBool (getv "/a")}}`,
		`{{$}}{{.}}{{.X}}`,
		`{{$l := split (getv "/a") ","}}{{range $i, $e := $l}}{{$_ := reverse $l}}{{$e}}{{index $l $i}}{{end}}`,
		`{{$m := dict "a" (getv "/a") "b" (getv "/b")}}{{range $k, $v := $m}}{{$k}}={{$v}};{{end}}{{index $m "a"}}{{$_ := set $m "c" 1}}{{len $m}}`,
		`{{with fxnilerror}}x{{else}}{{fxnilerror}}{{end}}{{range fixture "nilErrs"}}{{.}}{{end}}`,
		`{{fixture "struct"}}{{printf "%v %p" (fixture "innerPtr") (fixture "structPtr")}}`,
	} {
		f.Add(seed, "1", "x")
		f.Add(seed, `{"k":"v"}`, "a,b")
	}
	f.Add(`{{range jsonArray (getv "/a")}}[{{.}}]{{end}}`, `[1, null, "x", 1e21, true]`, "")
	for _, c := range LoadGoldenCases(f) { // the golden cases of testdata
		f.Add(string(c.Src), "1", "x")
	}
	dir := f.TempDir()
	for _, name := range []string{"dot.tmpl", "kv.tmpl"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(fastCaseFiles[name]), 0o644); err != nil {
			f.Fatal(err)
		}
	}
	web := catalogKVs(f)
	f.Fuzz(func(t *testing.T, src, a, b string) {
		if len(src) > 2048 || strings.Count(src, "range") > 2 || fuzzSkip.MatchString(src) ||
			longNumber.MatchString(a) || longNumber.MatchString(b) {
			t.Skip("costly input: see fuzzSkip; a long number in the data could drive a long range")
		}
		kv := map[string]string{"/a": a, "/b": b, "/d/x": a, "/d/y": b}
		for k, v := range web {
			kv[k] = v
		}
		rs, err := modes(noNetContext(t.Context()), func() (*Template, error) {
			return Parse("fuzz.tmpl", []byte(src), Options{Sets: fastTestSets(), IncludeDir: dir})
		}, funcs.NewStore(kv))
		if err != nil {
			t.Skip("not a template: ", err)
		}
		rs.normalize()
		for _, d := range discrepancies(rs) {
			t.Errorf("template %q with /a=%q /b=%q:\n%s", src, a, b, d)
		}
	})
}

// TestFastPathNoHistory checks that whether a render runs on the fast
// path depends on the template and that render's data only: renders that
// gave up before, however many and in whatever order, change nothing, in
// a template and in the fragment it includes.
func TestFastPathNoHistory(t *testing.T) {
	t.Parallel()
	ctx := noNetContext(t.Context())
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f.tmpl"), []byte(`{{fixture .}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	ptr := funcs.NewStore(map[string]string{"/k": "innerPtr"}) // prints a pointer: left to text/template
	str := funcs.NewStore(map[string]string{"/k": "myStr"})
	for _, src := range []string{`{{fixture (getv "/k")}}`, `{{include "f.tmpl" (getv "/k")}}`} {
		tm, err := Parse("m.tmpl", []byte(src), Options{Sets: fastTestSets(), IncludeDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		for round := range 3 {
			for i := range 5 { // more give-ups in a row than any threshold would allow
				if o := renderIn(ctx, tm, ptr, fastMode); !errors.Is(o.err, fastexec.ErrNotFast) {
					t.Fatalf("%s: round %d: fastMode render %d of a pointer: %v, want ErrNotFast", src, round, i, o)
				}
				if o := renderIn(ctx, tm, ptr, autoMode); o.err != nil || o.out != "{deep}" {
					t.Fatalf("%s: round %d: autoMode render %d of a pointer: %v, want {deep}", src, round, i, o)
				}
			}
			if o := renderIn(ctx, tm, str, fastMode); o.err != nil || o.out != "a" {
				t.Fatalf("%s: round %d: fastMode render of a string after renders that gave up: %v, want output a", src, round, o)
			}
		}
	}
}
