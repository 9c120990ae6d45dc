// Package template parses and renders kvconf templates: Go text/template
// with the function sets of package funcs, missingkey=error, and include
// for shared fragments kept in the templates directory.
//
// A render runs on the fast path (package template/internal/fastexec),
// which walks the parse trees without text/template's reflection, where
// it handles the template and the render's data, and on text/template
// otherwise, with the same output and errors either way. The environment
// variable KVCONF_FASTPATH=off ([FastPathEnv]), or [Options].Plain, turns
// the fast path off; docs/templates.md tells more.
package template

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	texttemplate "text/template"
	"text/template/parse"

	"github.com/kvconf/kvconf/funcs"
	"github.com/kvconf/kvconf/template/internal/fastexec"
	"github.com/kvconf/kvconf/template/internal/parsetree"
)

// Options tunes [Parse].
type Options struct {
	// Sets names the function sets, in order (later sets win). Nil means
	// [funcs.DefaultSets].
	Sets []string
	// IncludeDir is the directory include reads fragments from. Empty
	// disables include.
	IncludeDir string
	// Plain renders with text/template only, never on the fast path (see
	// docs/templates.md), as the environment variable KVCONF_FASTPATH=off
	// does for every template.
	Plain bool
}

// FastPathEnv is the environment variable that switches the fast path
// off: with KVCONF_FASTPATH=off, [Parse] makes templates that render with
// text/template only, as [Options].Plain does. "on" or unset leaves it on;
// any other value is a Parse error.
const FastPathEnv = "KVCONF_FASTPATH"

// plainFromEnv reports whether [FastPathEnv] switches the fast path off.
func plainFromEnv() (bool, error) {
	switch v := os.Getenv(FastPathEnv); strings.ToLower(v) {
	case "", "on":
		return false, nil
	case "off":
		return true, nil
	default:
		return false, fmt.Errorf("template: environment %s: %q is neither on nor off", FastPathEnv, v)
	}
}

// maxIncludeDepth bounds include nesting, as a backstop to cycle detection.
const maxIncludeDepth = 32

// Template is a parsed template, safe for concurrent renders.
type Template struct {
	name  string
	sets  []string
	dir   string
	plain bool // text/template only (Options.Plain, KVCONF_FASTPATH=off)
	t     *texttemplate.Template

	prefixes []string // see Prefixes

	mu        sync.Mutex
	fragments map[string]*texttemplate.Template  // parsed include files
	info      map[*texttemplate.Template]*parsed // about each parsed template
}

// parsed is what parsing learnt about one template source. It is
// immutable: nothing a render does changes how the next one runs.
type parsed struct {
	used []string // the names of the functions it calls
	// fast is the source's fast path program; nil when the fast path is
	// off or does not handle the source (see package fastexec).
	fast *fastexec.Program
}

// Parse parses src as the template called name (shown in error messages,
// usually the file's path relative to the templates directory). A call of a
// function that none of the sets define is an error here, not at render.
func Parse(name string, src []byte, opts Options) (*Template, error) {
	sets := opts.Sets
	if sets == nil {
		sets = funcs.DefaultSets()
	}
	plain, err := plainFromEnv()
	if err != nil {
		return nil, err
	}
	t := &Template{name: name, sets: sets, dir: opts.IncludeDir, plain: plain || opts.Plain,
		fragments: map[string]*texttemplate.Template{}, info: map[*texttemplate.Template]*parsed{}}
	pt, err := t.parse(context.Background(), name, src)
	if err != nil {
		return nil, err
	}
	t.t = pt
	if t.prefixes, err = t.externalPrefixes(context.Background(), pt); err != nil {
		return nil, fmt.Errorf("template %s: %w", name, err)
	}
	return t, nil
}

// Prefixes returns the store prefixes that the template's function calls
// read beyond the keys of the resource that renders it, such as the
// Consul catalog keys of service "web" (see [funcs.PrefixFunc]), sorted.
// Calls in files included by a constant name count; those of an include
// whose name is computed do not.
func (t *Template) Prefixes() []string { return slices.Clone(t.prefixes) }

// Name returns the template's name.
func (t *Template) Name() string { return t.name }

// parse parses one source with every function name known, bound to an
// empty store, and returns it as a lean template: the same parse trees,
// with only the functions they call. Every render clones the template
// and binds its functions to the render's store; with a few functions
// instead of the hundreds of every set, that costs little.
func (t *Template) parse(ctx context.Context, name string, src []byte) (*texttemplate.Template, error) {
	empty := funcs.NewStore(nil)
	fm, err := funcs.Map(ctx, t.sets, empty)
	if err != nil {
		return nil, fmt.Errorf("template %s: %w", name, err)
	}
	fm["include"] = func(string, ...any) (string, error) { return "", nil }
	pt, err := texttemplate.New(name).Option("missingkey=error").Funcs(fm).Parse(string(src))
	if err != nil {
		return nil, err // text/template errors already read "template: name:line: ..."
	}
	used := calledFuncs(pt)
	stubs := make(texttemplate.FuncMap, len(used))
	for _, n := range used {
		if f, ok := fm[n]; ok { // not the builtins, such as printf
			stubs[n] = f
		}
	}
	lean := texttemplate.New(name).Option("missingkey=error").Funcs(stubs)
	for _, d := range pt.Templates() {
		if d.Tree == nil {
			continue
		}
		if _, err := lean.AddParseTree(d.Name(), d.Tree); err != nil {
			return nil, fmt.Errorf("template %s: %w", name, err)
		}
	}
	p := &parsed{used: used}
	if !t.plain {
		b, err := funcs.NewBinder(ctx, t.sets, empty)
		if err != nil {
			return nil, fmt.Errorf("template %s: %w", name, err)
		}
		p.fast = fastexec.Compile(lean, stubs, b.IsGetAll)
	}
	t.info[lean] = p // the callers hold t.mu, or own t alone
	return lean, nil
}

// calledFuncs returns the names of the functions that pt and the
// templates it defines call, so that a render binds only those.
func calledFuncs(pt *texttemplate.Template) []string {
	seen := map[string]bool{}
	for _, c := range calls(pt) {
		seen[c.Name] = true
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	return names
}

// calls returns the function calls of pt and the templates it defines,
// with their constant arguments. A function named without arguments
// outside a command's first place ({{len services}}) is a call too.
func calls(pt *texttemplate.Template) []funcs.Call {
	var out []funcs.Call
	var visit func(n parse.Node) bool
	command := func(n *parse.CommandNode, piped bool) {
		id, ok := n.Args[0].(*parse.IdentifierNode)
		if !ok {
			for _, a := range n.Args {
				parsetree.Inspect(a, visit)
			}
			return
		}
		c := funcs.Call{Name: id.Ident}
		for _, a := range n.Args[1:] {
			if s, ok := a.(*parse.StringNode); ok {
				c.Args = append(c.Args, funcs.Arg{Value: s.Text, Const: true})
			} else {
				c.Args = append(c.Args, funcs.Arg{})
				parsetree.Inspect(a, visit)
			}
		}
		if piped {
			c.Args = append(c.Args, funcs.Arg{})
		}
		out = append(out, c)
	}
	visit = func(n parse.Node) bool {
		switch n := n.(type) {
		case *parse.PipeNode:
			for i, c := range n.Cmds {
				command(c, i > 0)
			}
			return false
		case *parse.IdentifierNode:
			out = append(out, funcs.Call{Name: n.Ident})
		}
		return true
	}
	for _, d := range pt.Templates() {
		if d.Tree != nil {
			parsetree.Inspect(d.Root, visit)
		}
	}
	return out
}

// externalPrefixes returns the store prefixes that pt's function calls
// read beyond a resource's keys (see [funcs.Prefixes]), following the
// include calls whose file is a constant. An include that cannot be read
// or parsed is skipped here: rendering reports it.
func (t *Template) externalPrefixes(ctx context.Context, pt *texttemplate.Template) ([]string, error) {
	var all []funcs.Call
	seen := map[string]bool{}
	var visit func(pt *texttemplate.Template)
	visit = func(pt *texttemplate.Template) {
		for _, c := range calls(pt) {
			all = append(all, c)
			if c.Name != "include" || len(c.Args) == 0 || !c.Args[0].Const || t.dir == "" {
				continue
			}
			name := path.Clean(c.Args[0].Value)
			if seen[name] || name == t.name {
				continue
			}
			seen[name] = true
			if fpt, err := t.fragment(ctx, name); err == nil {
				visit(fpt)
			}
		}
	}
	visit(pt)
	return funcs.Prefixes(ctx, t.sets, all)
}

// Render executes the template with functions bound to s and writes the
// output to w. Nothing is written to w when rendering fails.
func (t *Template) Render(ctx context.Context, w io.Writer, s *funcs.Store) error {
	return t.render(ctx, w, s, autoMode)
}

// renderMode selects how a render executes templates; tests compare them.
type renderMode int

const (
	autoMode renderMode = iota // the fast path, text/template where it gives up
	slowMode                   // text/template only
	fastMode                   // the fast path only: an error wrapping fastexec.ErrNotFast where it gives up
)

// render is Render with a choice of executor.
func (t *Template) render(ctx context.Context, w io.Writer, s *funcs.Store, mode renderMode) error {
	b, err := funcs.NewBinder(ctx, t.sets, s)
	if err != nil {
		return fmt.Errorf("template %s: %w", t.name, err)
	}
	r := &render{ctx: ctx, t: t, mode: mode, binder: b, bound: map[string]*binding{}}
	// Render into a buffer the caller gave, sparing a copy of the output,
	// and take back what a failed render wrote.
	if buf, ok := w.(*bytes.Buffer); ok {
		n := buf.Len()
		if err := r.execTo(buf, t.name, t.t, nil); err != nil {
			buf.Truncate(n)
			return err
		}
		return nil
	}
	var buf bytes.Buffer
	if err := r.execTo(&buf, t.name, t.t, nil); err != nil {
		return err
	}
	_, err = w.Write(buf.Bytes())
	return err
}

// render is the state of one Render call: the functions bound to its
// store, the templates bound to them, and the include stack.
type render struct {
	ctx    context.Context
	t      *Template
	mode   renderMode
	binder *funcs.Binder
	bound  map[string]*binding // by name: t.name or a fragment's
	stack  []string
}

// binding is one template of a render with its functions bound to the
// render's store.
type binding struct {
	info *parsed
	fm   texttemplate.FuncMap
	bt   *texttemplate.Template // a clone bound to fm, made on first use
}

// exec executes pt (called name) with data: on the fast path, and with
// text/template when that gives up. Each template is bound to the
// render's functions once per render, however often it is included.
func (r *render) exec(name string, pt *texttemplate.Template, data any) (string, error) {
	var buf bytes.Buffer
	if err := r.execTo(&buf, name, pt, data); err != nil {
		return "", err
	}
	return buf.String(), nil
}

// execTo is exec writing the output to out; after an error, out holds
// what it held before and more.
func (r *render) execTo(out *bytes.Buffer, name string, pt *texttemplate.Template, data any) error {
	b, ok := r.bound[name]
	if !ok {
		r.t.mu.Lock()
		info := r.t.info[pt]
		r.t.mu.Unlock()
		b = &binding{info: info, fm: r.binder.Bind(info.used)}
		if slices.Contains(info.used, "include") {
			b.fm["include"] = r.include
		}
		r.bound[name] = b
	}
	start := out.Len()
	if r.mode != slowMode && b.info.fast != nil {
		err := b.info.fast.Exec(out, fastexec.Env{Funcs: b.fm, Store: r.binder.Store()}, data)
		if err == nil {
			return nil
		}
		out.Truncate(start) // text/template renders it again, and reports any error
		if r.mode == fastMode {
			return fmt.Errorf("template %s: %w", name, err)
		}
	} else if r.mode == fastMode {
		return fmt.Errorf("template %s: %w", name, fastexec.ErrNotFast)
	}
	if b.bt == nil {
		ct, err := pt.Clone()
		if err != nil {
			return fmt.Errorf("template %s: %w", name, err)
		}
		b.bt = ct.Funcs(b.fm)
	}
	return b.bt.Execute(out, data)
}

// include renders the fragment file name (relative to the include
// directory) with data, or with no data when none is given.
func (r *render) include(name string, data ...any) (string, error) {
	if err := r.ctx.Err(); err != nil {
		return "", err
	}
	if len(data) > 1 {
		return "", fmt.Errorf("include %q: want at most one data argument, got %d", name, len(data))
	}
	name = path.Clean(name)
	if slices.Contains(r.stack, name) || name == r.t.name {
		return "", fmt.Errorf("include %q: cycle %s -> %s", name, strings.Join(append([]string{r.t.name}, r.stack...), " -> "), name)
	}
	if len(r.stack) >= maxIncludeDepth {
		return "", fmt.Errorf("include %q: nested more than %d deep", name, maxIncludeDepth)
	}
	pt, err := r.t.fragment(r.ctx, name)
	if err != nil {
		return "", err
	}
	var d any
	if len(data) == 1 {
		d = data[0]
	}
	r.stack = append(r.stack, name)
	defer func() { r.stack = r.stack[:len(r.stack)-1] }()
	return r.exec("include:"+name, pt, d)
}

// ErrInclude is wrapped by errors about an include path that is not allowed.
var ErrInclude = errors.New("template: include outside the templates directory")

// fragment returns the parsed include file name, reading it on first use.
func (t *Template) fragment(ctx context.Context, name string) (*texttemplate.Template, error) {
	if t.dir == "" {
		return nil, fmt.Errorf("include %q: no templates directory", name)
	}
	if !filepath.IsLocal(name) {
		return nil, fmt.Errorf("include %q: %w", name, ErrInclude)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if pt, ok := t.fragments[name]; ok {
		return pt, nil
	}
	root, err := os.OpenRoot(t.dir)
	if err != nil {
		return nil, fmt.Errorf("include %q: %w", name, err)
	}
	src, err := root.ReadFile(name) // os.Root refuses symlinks that leave dir
	if cerr := root.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("include %q: %w", name, err)
	}
	pt, err := t.parse(ctx, name, src)
	if err != nil {
		return nil, fmt.Errorf("include %q: %w", name, err)
	}
	t.fragments[name] = pt
	return pt, nil
}
