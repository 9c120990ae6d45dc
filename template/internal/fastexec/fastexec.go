// Package fastexec is kvconf's template fast path: it executes the parse
// trees of a text/template template itself instead of through
// text/template, whose reflection costs about a microsecond for every line
// a large range renders. It holds values as any, reads the fields of
// funcs.KV without reflection and calls the common function signatures
// directly.
//
// It covers the constructs that confd templates use (text, actions,
// if/with/range with else, break and continue, variables, define and
// template, fields and methods, the builtins
// and/or/not/len/eq/ne/lt/le/gt/ge/index/print/printf/println) and
// gives up on anything else: a node or builtin it does not know, a
// function whose signature it does not call, a value it would have to
// print or convert in a way it does not mirror exactly, a function that
// fails or panics. Giving up costs nothing but time: the caller takes
// back what was written and renders again through text/template, which
// produces the output or the error message. So whenever the fast path
// finishes, its output is the one text/template would have produced, and
// every error a render reports is text/template's.
//
// The entry point is [Compile], once per parsed template, and
// [Program.Exec], once per render. Whether a render runs on the fast path
// depends only on the template (what [Compile] accepts) and on that
// render's data and functions: the package keeps no state between
// renders, so the order in which templates are parsed or rendered, or
// renders that run at the same time, change nothing.
package fastexec

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	texttemplate "text/template"
	"text/template/parse"

	"github.com/kvconf/kvconf/funcs"
	"github.com/kvconf/kvconf/template/internal/parsetree"
)

// ErrNotFast is wrapped by every error of [Program.Exec]: the fast path
// gave up, and the render is to run through text/template.
var ErrNotFast = errors.New("template: not on the fast path")

// giveUp reports why the fast path cannot handle something: either
// something it does not mirror (unsupported), or an error that
// text/template is to report (failed).
type giveUp struct {
	why         string
	unsupported bool
}

func (g *giveUp) Error() string {
	if g.unsupported {
		return "template: fast path: unsupported: " + g.why
	}
	return "template: fast path: " + g.why
}

func (g *giveUp) Unwrap() error { return ErrNotFast }

// unsupported gives up on something the fast path does not mirror.
func unsupported(format string, args ...any) error {
	return &giveUp{why: fmt.Sprintf(format, args...), unsupported: true}
}

// failed gives up on this render only: text/template reports the error.
func failed(format string, args ...any) error {
	return &giveUp{why: fmt.Sprintf(format, args...)}
}

// Program is a parsed template, with the templates it defines, that the
// fast path can execute. It is immutable and safe for concurrent use.
type Program struct {
	pt *texttemplate.Template
	// streams are the ranges to run over the store's pairs one at a
	// time, with their patterns (see [streamedRanges]); nil for none.
	streams map[*parse.RangeNode]string
}

// Compile returns the program of pt, or nil when pt holds a node, calls
// a builtin or calls a function whose signature the fast path does not
// handle. fm is pt's function map: the functions of every render have the
// same names and types. isGetAll reports whether the function of fm
// called name is the store's GetAll (see [funcs.RegisterGetAll]); a range
// over such a function with a constant pattern then reads the store's
// pairs one at a time (see [Env.Store]). isGetAll may be nil.
func Compile(pt *texttemplate.Template, fm texttemplate.FuncMap, isGetAll func(name string) bool) *Program {
	if !supported(pt, fm) {
		return nil
	}
	return &Program{pt: pt, streams: streamedRanges(pt, isGetAll)}
}

// Env is what one render gives a [Program].
type Env struct {
	// Funcs are the functions, of the names and types of Compile's fm,
	// bound to the render's store.
	Funcs texttemplate.FuncMap
	// Store is the store that Funcs read: the functions that Compile's
	// isGetAll named are its GetAll. Nil runs every range over the list
	// the function returns.
	Store *funcs.Store
}

// Exec executes the program with data, calling env's functions, and
// appends the output to out. An error wraps [ErrNotFast]: the caller
// takes back what was written and runs text/template instead, which gives
// the output or the error the render is to report.
func (p *Program) Exec(out *bytes.Buffer, env Env, data any) (err error) {
	s := &fastState{tmpl: p.pt, fns: env.Funcs, out: out, vars: []fastVar{{"$", data}}, store: env.Store}
	if env.Store != nil {
		s.streams = p.streams
	}
	defer func() {
		if p := recover(); p != nil { // a function that panics: text/template reports it
			err = unsupported("panic: %v", p)
		}
	}()
	return s.walk(data, p.pt.Root) // the parser allows break and continue only in a range
}

// supported reports whether every template of pt is made only of nodes
// and builtins the fast path handles, and calls only functions of fm
// whose signatures it calls.
func supported(pt *texttemplate.Template, fm texttemplate.FuncMap) bool {
	ok := true
	visit := func(n parse.Node) bool {
		switch n := n.(type) {
		case *parse.ListNode, *parse.ActionNode, *parse.IfNode, *parse.RangeNode, *parse.WithNode,
			*parse.TemplateNode, *parse.PipeNode, *parse.CommandNode,
			*parse.TextNode, *parse.CommentNode, *parse.BreakNode, *parse.ContinueNode,
			*parse.DotNode, *parse.StringNode, *parse.NumberNode, *parse.BoolNode,
			*parse.NilNode, *parse.FieldNode, *parse.VariableNode:
		case *parse.IdentifierNode:
			if fn, defined := fm[n.Ident]; defined {
				ok = ok && callable(reflect.TypeOf(fn))
			} else {
				ok = ok && fastBuiltin(n.Ident)
			}
		case *parse.ChainNode: // (pipeline).Field
			_, pipe := n.Node.(*parse.PipeNode)
			ok = ok && pipe
		default: // any node a later Go adds
			ok = false
		}
		return ok
	}
	for _, d := range pt.Templates() {
		if d.Tree == nil || d.Root == nil {
			return false
		}
		parsetree.Inspect(d.Root, visit)
	}
	return ok
}

// callable reports whether the fast path calls functions of type ft (see
// [call] and [validate]): it leaves to text/template the functions that
// take or return a reflect.Value, which text/template treats apart.
func callable(ft reflect.Type) bool {
	if ft == nil || ft.Kind() != reflect.Func {
		return false
	}
	if n := ft.NumOut(); n == 0 || n > 2 || (n == 2 && ft.Out(1) != errorType) || ft.Out(0) == valueType {
		return false
	}
	for i := range ft.NumIn() {
		if paramType(ft, i) == valueType {
			return false
		}
	}
	return true
}

// streamedRanges returns the ranges of pt's templates that the fast path
// may run over the store's pairs one at a time, rather than over the list
// a GetAll function (isGetAll) makes of them, with their patterns: the
// ranges whose pipeline is such a function of a constant pattern, and
// whose body assigns no variable (with "="). Then no element outlives its
// iteration, and all can share one variable (see [fastState.rangeGets]).
// It returns nil when there are none.
func streamedRanges(pt *texttemplate.Template, isGetAll func(name string) bool) map[*parse.RangeNode]string {
	if isGetAll == nil {
		return nil
	}
	var out map[*parse.RangeNode]string
	for _, d := range pt.Templates() {
		if d.Tree == nil || d.Root == nil {
			continue
		}
		parsetree.Inspect(d.Root, func(n parse.Node) bool {
			if r, ok := n.(*parse.RangeNode); ok {
				if p, ok := getAllPattern(r, isGetAll); ok {
					if out == nil {
						out = map[*parse.RangeNode]string{}
					}
					out[r] = p
				}
			}
			return true
		})
	}
	return out
}

// getAllPattern returns the pattern of r's pipeline when it is a GetAll
// function of a constant pattern, assigning no variable, and r's body
// assigns none.
func getAllPattern(r *parse.RangeNode, isGetAll func(name string) bool) (string, bool) {
	if r.Pipe.IsAssign || len(r.Pipe.Cmds) != 1 || len(r.Pipe.Cmds[0].Args) != 2 {
		return "", false
	}
	args := r.Pipe.Cmds[0].Args
	fn, ok := args[0].(*parse.IdentifierNode)
	if !ok || !isGetAll(fn.Ident) {
		return "", false
	}
	pattern, ok := args[1].(*parse.StringNode)
	if !ok {
		return "", false
	}
	assigns := false
	parsetree.Inspect(r.List, func(n parse.Node) bool {
		if p, ok := n.(*parse.PipeNode); ok && p.IsAssign {
			assigns = true
		}
		return !assigns
	})
	return pattern.Text, !assigns
}
