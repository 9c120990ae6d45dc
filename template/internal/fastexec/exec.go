package fastexec

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	texttemplate "text/template"
	"text/template/parse"

	"github.com/kvconf/kvconf/funcs"
)

// Break and continue unwind the walk to the innermost range.
var (
	errBreak    = errors.New("break")
	errContinue = errors.New("continue")
)

// maxFastDepth bounds template calls on the fast path; deeper recursion
// is left to text/template and its own limit.
const maxFastDepth = 1000

// fastBuiltin reports whether the fast path implements the builtin
// function name of text/template; a template calling any other builtin
// is left to text/template.
func fastBuiltin(name string) bool {
	switch name {
	case "and", "or", "not", "len", "eq", "ne", "lt", "le", "gt", "ge", "index":
		return true
	}
	return printBuiltin(name) != nil
}

// printBuiltin returns the function behind the builtin print, printf or
// println, and nil for any other name.
func printBuiltin(name string) any {
	switch name {
	case "print":
		return fmt.Sprint
	case "printf":
		return fmt.Sprintf
	case "println":
		return fmt.Sprintln
	}
	return nil
}

// Values on the fast path are held as any, with four kinds of their own.
// text/template holds an element of a list it ranges over (and a field of
// one) as a reference into the list, read when it is used: a function
// that sorts or reverses the list in place, such as confd's reverse,
// changes what a variable holding an element shows later. kvElem,
// strElem and ref are such references, read by [value]. nilInterface is
// a nil held in a value of an interface type (a field, an entry, an
// element, a result), which text/template keeps apart from no value at
// all: it cannot be passed for a parameter of another type, and one of a
// type with methods, such as error, prints as "<nil>".
type (
	kvElem       struct{ p *funcs.KV }     // an element of a []funcs.KV
	strElem      struct{ p *string }       // an element of a []string, or a field of a kvElem
	ref          struct{ v reflect.Value } // any other element, or a field of one
	nilInterface struct{ methods bool }    // methods: of a type with methods
)

// value returns what v shows now, reading a reference.
func value(v any) any {
	switch r := v.(type) {
	case kvElem:
		return *r.p
	case strElem:
		return *r.p
	case ref:
		return interfaceOf(r.v)
	}
	return v
}

// export returns v as a function receives it.
func export(v any) any {
	v = value(v)
	if _, ok := v.(nilInterface); ok {
		return nil
	}
	return v
}

// fastVar is a template variable and its value.
type fastVar struct {
	name  string
	value any
}

// fastState is one execution of a template set on the fast path.
type fastState struct {
	tmpl  *texttemplate.Template // for {{template}}: the set's other templates
	fns   texttemplate.FuncMap
	out   *bytes.Buffer
	vars  []fastVar
	depth int
	// streams are the ranges to run over the pairs of store, whose
	// GetAll is the range's function, one at a time, with their patterns
	// (see [streamedRanges]). store is a store, not a function, so that
	// the closure that EachAll calls does not escape.
	streams map[*parse.RangeNode]string
	store   *funcs.Store
}

// walk writes the output of node with dot as the current value.
func (s *fastState) walk(dot any, node parse.Node) error {
	switch n := node.(type) {
	case *parse.TextNode:
		s.out.Write(n.Text)
	case *parse.ActionNode:
		if len(n.Pipe.Decl) == 0 && len(n.Pipe.Cmds) == 1 {
			if str, ok, err := s.stringCommand(dot, n.Pipe.Cmds[0]); ok || err != nil {
				s.out.WriteString(str)
				return err
			}
		}
		v, err := s.evalPipeline(dot, n.Pipe)
		if err != nil {
			return err
		}
		if len(n.Pipe.Decl) == 0 {
			return s.print(v)
		}
	case *parse.ListNode:
		for _, c := range n.Nodes {
			if err := s.walk(dot, c); err != nil {
				return err
			}
		}
	case *parse.IfNode:
		return s.walkIfOrWith(false, dot, n.Pipe, n.List, n.ElseList)
	case *parse.WithNode:
		return s.walkIfOrWith(true, dot, n.Pipe, n.List, n.ElseList)
	case *parse.RangeNode:
		return s.walkRange(dot, n)
	case *parse.TemplateNode:
		return s.walkTemplate(dot, n)
	case *parse.CommentNode:
	case *parse.BreakNode:
		return errBreak
	case *parse.ContinueNode:
		return errContinue
	default:
		return unsupported("node %s", node)
	}
	return nil
}

// walkIfOrWith walks an if (with false) or a with node.
func (s *fastState) walkIfOrWith(with bool, dot any, pipe *parse.PipeNode, list, elseList *parse.ListNode) error {
	defer s.pop(len(s.vars))
	v, err := s.evalPipeline(dot, pipe)
	if err != nil {
		return err
	}
	truth, ok := isTrue(v)
	if !ok {
		return failed("if/with can't use %v", v)
	}
	switch {
	case truth && with:
		return s.walk(v, list)
	case truth:
		return s.walk(dot, list)
	case elseList != nil:
		return s.walk(dot, elseList)
	}
	return nil
}

// walkRange walks a range node over a slice, an array, a map or an int;
// a channel, an iterator function or an integer of another type is left
// to text/template.
func (s *fastState) walkRange(dot any, r *parse.RangeNode) error {
	defer s.pop(len(s.vars))
	pattern, stream := s.streams[r]
	var v any
	if stream {
		// Declare the range's variables as evalPipeline would, holding
		// the list GetAll would return: the else list sees it empty.
		for _, d := range r.Pipe.Decl {
			s.vars = append(s.vars, fastVar{d.Ident[0], []funcs.KV{}})
		}
	} else {
		var err error
		if v, err = s.evalPipeline(dot, r.Pipe); err != nil {
			return err
		}
	}
	mark := len(s.vars)
	one := func(index, elem any) error {
		defer s.pop(mark)
		decl := r.Pipe.Decl
		switch {
		case len(decl) == 1 && r.Pipe.IsAssign:
			if err := s.setVar(decl[0].Ident[0], elem); err != nil {
				return err
			}
		case len(decl) == 2 && r.Pipe.IsAssign:
			if err := s.setVar(decl[0].Ident[0], index); err != nil {
				return err
			}
			if err := s.setVar(decl[1].Ident[0], elem); err != nil {
				return err
			}
		case len(decl) == 1:
			s.vars[len(s.vars)-1].value = elem
		case len(decl) == 2:
			s.vars[len(s.vars)-1].value = elem
			s.vars[len(s.vars)-2].value = index
		}
		err := s.walk(elem, r.List)
		if err == errContinue { //nolint:errorlint // a sentinel of ours, never wrapped
			return nil
		}
		return err
	}
	var n int
	var err error
	if stream {
		n, err = s.rangeGets(pattern, len(r.Pipe.Decl), one)
	} else {
		n, err = s.rangeOver(v, len(r.Pipe.Decl), one)
	}
	if err == errBreak { //nolint:errorlint // a sentinel of ours, never wrapped
		return nil
	}
	if err != nil {
		return err
	}
	if n == 0 && r.ElseList != nil {
		// A break in the else list ends this range, as in text/template.
		if err := s.walk(dot, r.ElseList); err != errBreak { //nolint:errorlint // a sentinel of ours, never wrapped
			return err
		}
	}
	return nil
}

// rangeGets calls one for each pair that GetAll would return for pattern,
// read from the store one at a time, and returns how many there were. The
// elements share one variable, which a range of [streamedRanges] allows.
// The index is passed only when vars, the number of variables the range
// declares, asks for it.
func (s *fastState) rangeGets(pattern string, vars int, one func(index, elem any) error) (int, error) {
	var cur funcs.KV
	elem := kvElem{&cur}
	n := 0
	var err error
	if gerr := s.store.EachAll(pattern, func(kv funcs.KV) bool {
		cur = kv
		var index any
		if vars > 1 {
			index = n
		}
		if err = one(index, elem); err != nil {
			return false
		}
		n++
		return true
	}); gerr != nil {
		return 0, failed("error calling GetAll: %v", gerr) // text/template reports it
	}
	return n, err
}

// rangeOver calls one for each element of v and returns how many there
// were. The index is passed only when vars, the number of variables the
// range declares, asks for it.
func (s *fastState) rangeOver(v any, vars int, one func(index, elem any) error) (int, error) {
	indexOf := func(i int) any {
		if vars < 2 {
			return nil
		}
		return i
	}
	switch x := value(v).(type) {
	case nil:
		return 0, nil
	case nilInterface:
		return 0, failed("range over a nil interface")
	case []funcs.KV:
		for i := range x {
			if err := one(indexOf(i), kvElem{&x[i]}); err != nil {
				return i, err
			}
		}
		return len(x), nil
	case []string:
		for i := range x {
			if err := one(indexOf(i), strElem{&x[i]}); err != nil {
				return i, err
			}
		}
		return len(x), nil
	case int:
		if vars > 1 {
			return 0, failed("range over int with two variables")
		}
		for i := range x {
			if err := one(nil, i); err != nil {
				return i, err
			}
		}
		return max(x, 0), nil
	}
	rv := reflectOf(v) // a reference stays addressable, as in text/template
	for rv.Kind() == reflect.Pointer || rv.Kind() == reflect.Interface {
		if rv.IsNil() {
			return 0, failed("range over a nil %s", rv.Type())
		}
		rv = rv.Elem()
	}
	switch rv.Kind() {
	case reflect.Slice, reflect.Array:
		for i := range rv.Len() {
			e := rv.Index(i)
			if !e.CanInterface() {
				return i, unsupported("range over %s", rv.Type())
			}
			if err := one(indexOf(i), ref{e}); err != nil {
				return i, err
			}
		}
		return rv.Len(), nil
	case reflect.Map:
		keys, err := sortedKeys(rv)
		if err != nil {
			return 0, err
		}
		// text/template reads every entry before the first iteration.
		elems := make([]any, len(keys))
		for i, k := range keys {
			elems[i] = interfaceOf(rv.MapIndex(k))
		}
		for i, k := range keys {
			if err := one(interfaceOf(k), elems[i]); err != nil {
				return i, err
			}
		}
		return len(keys), nil
	case reflect.Chan, reflect.Func, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return 0, unsupported("range over %s", rv.Type()) // text/template ranges over these
	}
	return 0, failed("range can't iterate over %s", rv.Type())
}

// sortedKeys returns the keys of the map m in the order text/template
// ranges over them, for keys of a string or integer kind.
func sortedKeys(m reflect.Value) ([]reflect.Value, error) {
	keys := m.MapKeys()
	switch m.Type().Key().Kind() {
	case reflect.String:
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		slices.SortFunc(keys, func(a, b reflect.Value) int { return cmp.Compare(a.Int(), b.Int()) })
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		slices.SortFunc(keys, func(a, b reflect.Value) int { return cmp.Compare(a.Uint(), b.Uint()) })
	default:
		return nil, unsupported("range over a map of %s keys", m.Type().Key())
	}
	return keys, nil
}

// walkTemplate walks {{template "name" pipeline}}.
func (s *fastState) walkTemplate(dot any, t *parse.TemplateNode) error {
	tmpl := s.tmpl.Lookup(t.Name)
	if tmpl == nil || tmpl.Tree == nil {
		return failed("template %q not defined", t.Name)
	}
	if s.depth >= maxFastDepth {
		return unsupported("templates nested %d deep", s.depth)
	}
	v, err := s.evalPipeline(dot, t.Pipe)
	if err != nil {
		return err
	}
	inner := *s
	inner.depth++
	inner.vars = []fastVar{{"$", v}}
	return inner.walk(v, tmpl.Root)
}

// pop drops the variables declared after mark.
func (s *fastState) pop(mark int) { s.vars = s.vars[:mark] }

// variable returns the innermost variable called name.
func (s *fastState) variable(name string) (*fastVar, error) {
	for i := len(s.vars) - 1; i >= 0; i-- {
		if s.vars[i].name == name {
			return &s.vars[i], nil
		}
	}
	return nil, failed("undefined variable: %s", name)
}

// setVar assigns v to the innermost variable called name.
func (s *fastState) setVar(name string, v any) error {
	x, err := s.variable(name)
	if err == nil {
		x.value = v
	}
	return err
}

// varValue returns the value of the innermost variable called name.
func (s *fastState) varValue(name string) (any, error) {
	x, err := s.variable(name)
	if err != nil {
		return nil, err
	}
	return x.value, nil
}

// evalPipeline evaluates a pipeline and declares or assigns its variables.
func (s *fastState) evalPipeline(dot any, pipe *parse.PipeNode) (any, error) {
	if pipe == nil {
		return nil, nil
	}
	var v any
	for i, c := range pipe.Cmds {
		var err error
		if v, err = s.evalCommand(dot, c, v, i > 0); err != nil {
			return nil, err
		}
		// Like text/template, dig into a value of type any now.
		if r, ok := v.(ref); ok && r.v.Kind() == reflect.Interface && r.v.NumMethod() == 0 {
			v = interfaceOf(r.v)
		}
		if n, ok := v.(nilInterface); ok && !n.methods {
			v = nil
		}
	}
	for _, d := range pipe.Decl {
		if pipe.IsAssign {
			if err := s.setVar(d.Ident[0], v); err != nil {
				return nil, err
			}
		} else {
			s.vars = append(s.vars, fastVar{d.Ident[0], v})
		}
	}
	return v, nil
}

// evalCommand evaluates one command of a pipeline; final is the value of
// the command before it, when hasFinal.
func (s *fastState) evalCommand(dot any, c *parse.CommandNode, final any, hasFinal bool) (any, error) {
	args := c.Args[1:]
	switch n := c.Args[0].(type) {
	case *parse.IdentifierNode:
		return s.evalCall(dot, n.Ident, args, final, hasFinal)
	case *parse.FieldNode, *parse.ChainNode, *parse.VariableNode:
		return s.evalSelector(dot, n, args, final, hasFinal)
	case *parse.NilNode:
		return nil, failed("nil is not a command")
	default:
		if len(args) > 0 || hasFinal {
			return nil, failed("arguments to a non-function %s", n)
		}
	}
	return s.evalAny(dot, c.Args[0])
}

// idealConstant returns a number constant whose type the context does
// not fix, typed by its syntax as text/template types it.
func idealConstant(n *parse.NumberNode) (any, error) {
	switch {
	case n.IsComplex:
		return n.Complex128, nil
	case n.IsFloat && !isHexInt(n.Text) && !isRuneInt(n.Text) && strings.ContainsAny(n.Text, ".eEpP"):
		return n.Float64, nil
	case n.IsInt && int64(int(n.Int64)) == n.Int64:
		return int(n.Int64), nil
	}
	return nil, failed("%s overflows int", n.Text)
}

func isRuneInt(s string) bool { return len(s) > 0 && s[0] == '\'' }

func isHexInt(s string) bool {
	return len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') && !strings.ContainsAny(s, "pP")
}

// stringCommand evaluates the commonest commands that yield a string, a
// field of a funcs.KV or a call of a string function with string
// arguments, without the allocations of holding strings as any. It
// reports false for any other command.
func (s *fastState) stringCommand(dot any, c *parse.CommandNode) (string, bool, error) {
	switch n := c.Args[0].(type) {
	case *parse.FieldNode:
		if len(c.Args) == 1 {
			return s.stringArg(dot, n)
		}
	case *parse.IdentifierNode:
		fn, ok := s.fns[n.Ident]
		if !ok {
			return "", false, nil
		}
		args := c.Args[1:]
		var a [3]string
		if len(args) > len(a) {
			return "", false, nil
		}
		for i, arg := range args {
			if a[i], ok, _ = s.stringArg(dot, arg); !ok {
				return "", false, nil
			}
		}
		var out string
		var err error
		switch f := fn.(type) {
		case func(string) string:
			if len(args) != 1 {
				return "", false, nil
			}
			out = f(a[0])
		case func(string) (string, error):
			if len(args) != 1 {
				return "", false, nil
			}
			out, err = f(a[0])
		case func(string, ...string) (string, error):
			if len(args) == 0 {
				return "", false, nil
			}
			if len(args) == 1 {
				out, err = f(a[0])
			} else {
				out, err = f(a[0], slices.Clone(a[1:len(args)])...)
			}
		default:
			return "", false, nil
		}
		if err != nil {
			return "", true, failed("error calling %s: %v", n.Ident, err)
		}
		return out, true, nil
	}
	return "", false, nil
}

// stringArg evaluates a string constant or a field of a funcs.KV
// without holding it as any; it reports false for any other node.
func (s *fastState) stringArg(dot any, n parse.Node) (string, bool, error) {
	switch n := n.(type) {
	case *parse.StringNode:
		return n.Text, true, nil
	case *parse.FieldNode:
		if e, ok := dot.(kvElem); ok && len(n.Ident) == 1 {
			if p := kvField(e.p, n.Ident[0]); p != nil {
				return *p, true, nil
			}
		}
	}
	return "", false, nil
}

// evalSelector evaluates .X.Y, $x.X.Y or (pipeline).X.Y, whose last
// name may be a method called with args and the final value.
func (s *fastState) evalSelector(dot any, n parse.Node, args []parse.Node, final any, hasFinal bool) (any, error) {
	var v any
	var names []string
	switch n := n.(type) {
	case *parse.FieldNode:
		v, names = dot, n.Ident
	case *parse.VariableNode:
		var err error
		if v, err = s.varValue(n.Ident[0]); err != nil {
			return nil, err
		}
		names = n.Ident[1:]
	case *parse.ChainNode:
		pipe, ok := n.Node.(*parse.PipeNode)
		if !ok {
			return nil, unsupported("chain %s", n)
		}
		var err error
		if v, err = s.evalPipeline(dot, pipe); err != nil {
			return nil, err
		}
		names = n.Field
	}
	if len(names) == 0 {
		if len(args) > 0 || hasFinal {
			return nil, failed("arguments to a non-function %s", n)
		}
		return v, nil
	}
	for _, name := range names[:len(names)-1] {
		var err error
		if v, err = s.selectField(dot, v, name, nil, nil, false); err != nil {
			return nil, err
		}
	}
	return s.selectField(dot, v, names[len(names)-1], args, final, hasFinal)
}

// selectField evaluates .name on v, as text/template does: a call of
// v's method name, with args and the final value, or else v's field or
// map entry name.
func (s *fastState) selectField(dot, v any, name string, args []parse.Node, final any, hasFinal bool) (any, error) {
	m, err := method(v, name)
	if err != nil {
		return nil, err
	}
	if m.IsValid() {
		return s.callFunc(dot, name, m.Interface(), args, final, hasFinal)
	}
	if len(args) > 0 || hasFinal {
		return nil, failed("%s has arguments but cannot be invoked as function", name)
	}
	return field(v, name)
}

// method returns v's method name, the way text/template finds it (a
// method of *T when v is addressable), or the zero Value when v has none.
func method(v any, name string) (reflect.Value, error) {
	switch v.(type) {
	case nil, nilInterface, kvElem, strElem, funcs.KV, string, map[string]string, map[string]any:
		return reflect.Value{}, nil // no methods
	}
	rv := reflectOf(v)
	for rv.Kind() == reflect.Pointer || rv.Kind() == reflect.Interface {
		if rv.IsNil() {
			if _, ok := rv.Type().MethodByName(name); ok && rv.Kind() == reflect.Pointer {
				// text/template calls it with a nil receiver
				return reflect.Value{}, unsupported("method %s of a nil %s", name, rv.Type())
			}
			return reflect.Value{}, nil // field reports it
		}
		rv = rv.Elem()
	}
	if rv.Kind() != reflect.Interface && rv.CanAddr() {
		rv = rv.Addr()
	}
	m := rv.MethodByName(name)
	if m.IsValid() && !m.CanInterface() {
		return reflect.Value{}, unsupported("method %s of %s", name, rv.Type())
	}
	return m, nil
}

// field returns the field or map entry name of v, which has no method
// name.
func field(v any, name string) (any, error) {
	switch v := v.(type) {
	case kvElem:
		if p := kvField(v.p, name); p != nil {
			return strElem{p}, nil
		}
		return nil, failed("can't evaluate field %s in type funcs.KV", name)
	case ref:
		return reflectField(v.v, name)
	}
	switch v := value(v).(type) {
	case nil, nilInterface:
		return nil, failed("nil data; no entry for key %q", name)
	case funcs.KV:
		if p := kvField(&v, name); p != nil {
			return *p, nil
		}
		return nil, failed("can't evaluate field %s in type funcs.KV", name)
	case map[string]string:
		if e, ok := v[name]; ok {
			return e, nil
		}
		return nil, failed("map has no entry for key %q", name)
	case map[string]any:
		e, ok := v[name]
		switch {
		case !ok:
			return nil, failed("map has no entry for key %q", name)
		case e == nil:
			return nilInterface{}, nil
		}
		return e, nil
	default:
		return reflectField(reflect.ValueOf(v), name)
	}
}

// reflectField is field for any other value. The field of a struct that
// can be addressed (an element of a list, or behind a pointer) is a
// reference, as in text/template.
func reflectField(rv reflect.Value, name string) (any, error) {
	for rv.Kind() == reflect.Pointer || rv.Kind() == reflect.Interface {
		if rv.IsNil() {
			return nil, failed("nil pointer evaluating %s", name)
		}
		rv = rv.Elem()
	}
	t := rv.Type()
	switch rv.Kind() {
	case reflect.Struct:
		sf, ok := t.FieldByName(name)
		if !ok || !sf.IsExported() {
			return nil, failed("can't evaluate field %s in type %s", name, t)
		}
		f, err := rv.FieldByIndexErr(sf.Index)
		if err != nil || !f.CanInterface() {
			return nil, unsupported("field %s of %s", name, t)
		}
		if f.CanAddr() {
			return ref{f}, nil
		}
		return interfaceOf(f), nil
	case reflect.Map:
		key := reflect.ValueOf(name)
		if !key.Type().AssignableTo(t.Key()) {
			break
		}
		e := rv.MapIndex(key)
		if !e.IsValid() {
			return nil, failed("map has no entry for key %q", name)
		}
		return interfaceOf(e), nil
	}
	return nil, unsupported("field %s of %s", name, t)
}

// kvField returns the field called name of kv, or nil if it has none.
func kvField(kv *funcs.KV, name string) *string {
	switch name {
	case "Key":
		return &kv.Key
	case "Value":
		return &kv.Value
	}
	return nil
}

// interfaceOf returns v as any; a nil of an interface type is a
// nilInterface.
func interfaceOf(v reflect.Value) any {
	if v.Kind() == reflect.Interface && v.IsNil() {
		return nilInterface{methods: v.NumMethod() > 0}
	}
	return v.Interface()
}

// print writes v as text/template prints the value of an action.
func (s *fastState) print(v any) error {
	switch x := value(v).(type) {
	case string:
		s.out.WriteString(x)
		return nil
	case nil:
		s.out.WriteString("<no value>")
		return nil
	case nilInterface:
		if x.methods {
			s.out.WriteString("<nil>")
		} else {
			s.out.WriteString("<no value>")
		}
		return nil
	case int:
		s.out.WriteString(strconv.Itoa(x))
		return nil
	}
	// text/template prints a pointer's target, and a value through its
	// pointer's String or Error method when it can take its address:
	// left to it.
	rv := reflectOf(v)
	if rv.Kind() == reflect.Pointer {
		return unsupported("print of %s", rv.Type())
	}
	if t := rv.Type(); !t.Implements(errorType) && !t.Implements(stringerType) {
		pt := reflect.PointerTo(t)
		if rv.CanAddr() && (pt.Implements(errorType) || pt.Implements(stringerType)) {
			return unsupported("print of %s", t)
		}
		if k := rv.Kind(); k == reflect.Chan || k == reflect.Func {
			return failed("can't print a value of type %s", t)
		}
	}
	if !rv.CanInterface() {
		return unsupported("print of %s", rv.Type())
	}
	fmt.Fprint(s.out, rv.Interface())
	return nil
}

// isTrue reports whether v is true as if and with see it, and whether it
// has a truth value at all.
func isTrue(v any) (truth, ok bool) {
	v = export(v)
	switch v := v.(type) {
	case nil:
		return false, true
	case string:
		return v != "", true
	case bool:
		return v, true
	case int:
		return v != 0, true
	case []funcs.KV:
		return len(v) > 0, true
	case []string:
		return len(v) > 0, true
	}
	return texttemplate.IsTrue(v)
}

// evalCall calls the function or builtin name with the argument nodes
// args and, when hasFinal, the pipeline's final value.
func (s *fastState) evalCall(dot any, name string, args []parse.Node, final any, hasFinal bool) (any, error) {
	fn, ok := s.fns[name]
	if !ok {
		if fn = printBuiltin(name); fn == nil {
			return s.evalBuiltin(dot, name, args, final, hasFinal)
		}
	}
	return s.callFunc(dot, name, fn, args, final, hasFinal)
}

// callFunc calls fn, the function or method name, with the argument
// nodes args and, when hasFinal, the pipeline's final value.
func (s *fastState) callFunc(dot any, name string, fn any, args []parse.Node, final any, hasFinal bool) (any, error) {
	ft := reflect.TypeOf(fn)
	numIn := len(args)
	if hasFinal {
		numIn++
	}
	fixed := ft.NumIn()
	if ft.IsVariadic() {
		fixed--
		if numIn < fixed {
			return nil, failed("wrong number of args for %s", name)
		}
	} else if numIn != fixed {
		return nil, failed("wrong number of args for %s", name)
	}
	var buf [4]any // spares an allocation for most calls
	var argv []any
	if numIn <= len(buf) {
		argv = buf[:numIn]
	} else {
		argv = make([]any, numIn)
	}
	for i, a := range args {
		v, err := s.evalArg(dot, paramType(ft, i), a)
		if err != nil {
			return nil, err
		}
		argv[i] = v
	}
	if hasFinal {
		v, err := validate(final, paramType(ft, numIn-1))
		if err != nil {
			return nil, err
		}
		argv[numIn-1] = v
	}
	// Read the references now, after every argument has been evaluated,
	// as text/template does: an argument may sort a list in place.
	for i, a := range argv {
		argv[i] = export(a)
	}
	v, err := call(fn, ft, argv)
	switch {
	case errors.Is(err, ErrNotFast): // a signature the fast path does not call
		return nil, err
	case err != nil:
		return nil, failed("error calling %s: %v", name, err)
	}
	return v, nil
}

// paramType returns the type of the i-th argument of a call of ft.
func paramType(ft reflect.Type, i int) reflect.Type {
	if ft.IsVariadic() && i >= ft.NumIn()-1 {
		return ft.In(ft.NumIn() - 1).Elem()
	}
	return ft.In(i)
}

// call calls fn with argv, each already of its parameter's type (or nil
// for a nil of it). The common signatures are called directly.
func call(fn any, ft reflect.Type, argv []any) (any, error) {
	switch f := fn.(type) {
	case func(string) string:
		return f(argv[0].(string)), nil
	case func(string) (string, error):
		return f(argv[0].(string))
	case func(string, ...string) (string, error):
		rest := make([]string, len(argv)-1)
		for i, a := range argv[1:] {
			rest[i] = a.(string)
		}
		return f(argv[0].(string), rest...)
	case func(string) ([]funcs.KV, error):
		return f(argv[0].(string))
	case func(string) ([]string, error):
		return f(argv[0].(string))
	case func(string) []string:
		return f(argv[0].(string)), nil
	case func(string) bool:
		return f(argv[0].(string)), nil
	case func(string, string) bool:
		return f(argv[0].(string), argv[1].(string)), nil
	case func(string, string) string:
		return f(argv[0].(string), argv[1].(string)), nil
	case func(string, string) []string:
		return f(argv[0].(string), argv[1].(string)), nil
	case func(int, int) int:
		return f(argv[0].(int), argv[1].(int)), nil
	case func(string, ...any) (string, error):
		return f(argv[0].(string), slices.Clone(argv[1:])...)
	case func(string, ...any) string:
		return f(argv[0].(string), slices.Clone(argv[1:])...), nil
	case func(...any) string:
		return f(slices.Clone(argv)...), nil
	}
	if n := ft.NumOut(); n == 0 || n > 2 || (n == 2 && ft.Out(1) != errorType) || ft.Out(0) == valueType {
		return nil, unsupported("function of type %s", ft)
	}
	in := make([]reflect.Value, len(argv))
	for i, a := range argv {
		if a == nil {
			in[i] = reflect.Zero(paramType(ft, i))
		} else {
			in[i] = reflect.ValueOf(a)
		}
	}
	out := reflect.ValueOf(fn).Call(in)
	if len(out) == 2 && !out[1].IsNil() {
		return nil, out[1].Interface().(error)
	}
	return interfaceOf(out[0]), nil
}

var (
	errorType    = reflect.TypeFor[error]()
	stringerType = reflect.TypeFor[fmt.Stringer]()
	stringType   = reflect.TypeFor[string]()
	valueType    = reflect.TypeFor[reflect.Value]()
)

// evalArg evaluates the argument node n for a parameter of type typ.
func (s *fastState) evalArg(dot any, typ reflect.Type, n parse.Node) (any, error) {
	switch n := n.(type) {
	case *parse.StringNode:
		if typ == stringType {
			return n.Text, nil
		}
	case *parse.NilNode:
		if canBeNil(typ) {
			return nil, nil
		}
		return nil, failed("cannot assign nil to %s", typ)
	}
	if typ.Kind() == reflect.Interface && typ.NumMethod() == 0 {
		return s.evalAny(dot, n)
	}
	switch n.(type) {
	case *parse.StringNode, *parse.NumberNode, *parse.BoolNode:
		return constantOf(typ, n)
	}
	v, err := s.evalAny(dot, n)
	if err != nil {
		return nil, err
	}
	return validate(v, typ)
}

// evalAny evaluates the argument node n for a parameter of type any.
func (s *fastState) evalAny(dot any, n parse.Node) (any, error) {
	switch n := n.(type) {
	case *parse.DotNode:
		return dot, nil
	case *parse.StringNode:
		return n.Text, nil
	case *parse.BoolNode:
		return n.True, nil
	case *parse.NumberNode:
		return idealConstant(n)
	case *parse.NilNode:
		return nil, nil
	case *parse.FieldNode, *parse.VariableNode, *parse.ChainNode:
		return s.evalSelector(dot, n, nil, nil, false)
	case *parse.PipeNode:
		return s.evalPipeline(dot, n)
	case *parse.IdentifierNode:
		return s.evalCall(dot, n.Ident, nil, nil, false)
	}
	return nil, unsupported("argument %s", n)
}

// constantOf converts a constant node to a parameter of type typ, as
// text/template does.
func constantOf(typ reflect.Type, n parse.Node) (any, error) {
	v := reflect.New(typ).Elem()
	switch n := n.(type) {
	case *parse.StringNode:
		if typ.Kind() == reflect.String {
			v.SetString(n.Text)
			return v.Interface(), nil
		}
	case *parse.BoolNode:
		if typ.Kind() == reflect.Bool {
			v.SetBool(n.True)
			return v.Interface(), nil
		}
	case *parse.NumberNode:
		switch typ.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			if n.IsInt {
				v.SetInt(n.Int64)
				return v.Interface(), nil
			}
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
			if n.IsUint {
				v.SetUint(n.Uint64)
				return v.Interface(), nil
			}
		case reflect.Float32, reflect.Float64:
			if n.IsFloat {
				v.SetFloat(n.Float64)
				return v.Interface(), nil
			}
		}
	}
	return nil, failed("can't handle %s for arg of type %s", n, typ)
}

// validate checks that v may be passed for a parameter of type typ.
// text/template also dereferences a pointer or takes an address here;
// the fast path leaves those to it.
//
// A reference stays one, to be read when the function is called; but an
// element of a list of interfaces passed for another type is read now,
// as text/template reads it to convert it.
func validate(v any, typ reflect.Type) (any, error) {
	if _, ok := value(v).(nilInterface); ok {
		// Held in an interface, a nil is no untyped nil: text/template
		// passes it only for a parameter of a type it is assignable to.
		switch {
		case typ.Kind() == reflect.Interface && typ.NumMethod() == 0:
			return nil, nil
		case typ.Kind() == reflect.Interface:
			return nil, unsupported("a nil interface for a parameter of type %s", typ)
		}
		return nil, failed("wrong type for value; expected %s", typ)
	}
	x := export(v)
	if x == nil {
		if canBeNil(typ) {
			return nil, nil
		}
		return nil, failed("invalid value; expected %s", typ)
	}
	if typ == valueType {
		return nil, unsupported("parameter of type reflect.Value")
	}
	if xt := reflect.TypeOf(x); xt != typ && !xt.AssignableTo(typ) {
		return nil, unsupported("%s for a parameter of type %s", xt, typ)
	}
	if r, ok := v.(ref); ok && r.v.Kind() == reflect.Interface && !r.v.Type().AssignableTo(typ) {
		return x, nil
	}
	return v, nil
}

// canBeNil reports whether an untyped nil can be passed as typ.
func canBeNil(typ reflect.Type) bool {
	switch typ.Kind() {
	case reflect.Chan, reflect.Func, reflect.Interface, reflect.Map, reflect.Pointer, reflect.Slice:
		return true
	}
	return false
}

// evalBuiltin calls one of the builtins and, or, not, len, eq, ne, lt,
// le, gt, ge and index.
func (s *fastState) evalBuiltin(dot any, name string, args []parse.Node, final any, hasFinal bool) (any, error) {
	switch name {
	case "and", "or":
		if len(args) == 0 && !hasFinal {
			return nil, failed("wrong number of args for %s", name)
		}
		var v any
		for _, a := range args {
			var err error
			if v, err = s.evalAny(dot, a); err != nil {
				return nil, err
			}
			if truth, _ := isTrue(v); truth == (name == "or") {
				return v, nil
			}
		}
		if hasFinal {
			v = final
		}
		return v, nil
	}
	argv, err := s.builtinArgs(dot, args, final, hasFinal)
	if err != nil {
		return nil, err
	}
	switch name {
	case "not":
		if len(argv) != 1 {
			return nil, failed("wrong number of args for not")
		}
		truth, _ := isTrue(argv[0])
		return !truth, nil
	case "len":
		if len(argv) != 1 {
			return nil, failed("wrong number of args for len")
		}
		return length(argv[0])
	case "eq":
		if len(argv) < 2 {
			return nil, failed("missing argument for comparison")
		}
		for _, b := range argv[1:] {
			if eq, err := equal(argv[0], b); err != nil || eq {
				return eq, err
			}
		}
		return false, nil
	case "ne":
		if len(argv) != 2 {
			return nil, failed("wrong number of args for ne")
		}
		eq, err := equal(argv[0], argv[1])
		return !eq, err
	case "lt", "le", "gt", "ge":
		if len(argv) != 2 {
			return nil, failed("wrong number of args for %s", name)
		}
		return compare(name, argv[0], argv[1])
	case "index":
		if len(argv) == 0 {
			return nil, failed("wrong number of args for index")
		}
		return index(argv[0], argv[1:])
	}
	return nil, unsupported("builtin %s", name)
}

// compare is the builtin lt, le, gt or ge (name) of a and b.
func compare(name string, a, b any) (bool, error) {
	lt, err := less(a, b)
	switch {
	case err != nil:
		return false, err
	case name == "lt":
		return lt, nil
	case name == "ge":
		return !lt, nil
	}
	le := lt
	if !lt {
		if le, err = equal(a, b); err != nil {
			return false, err
		}
	}
	if name == "le" {
		return le, nil
	}
	return !le, nil // gt
}

// less reports whether a < b, for values of basic kinds as the builtin lt
// compares them.
func less(a, b any) (bool, error) {
	ra, rb := reflect.ValueOf(export(a)), reflect.ValueOf(export(b))
	ka, kb := basicKind(ra), basicKind(rb)
	switch {
	case ka == 0 || kb == 0:
		return false, failed("invalid type for comparison")
	case ka == reflect.Int && kb == reflect.Uint:
		return ra.Int() < 0 || uint64(ra.Int()) < rb.Uint(), nil
	case ka == reflect.Uint && kb == reflect.Int:
		return rb.Int() >= 0 && ra.Uint() < uint64(rb.Int()), nil
	case ka != kb:
		return false, failed("incompatible types for comparison")
	}
	switch ka {
	case reflect.Int:
		return ra.Int() < rb.Int(), nil
	case reflect.Uint:
		return ra.Uint() < rb.Uint(), nil
	case reflect.Float64:
		return ra.Float() < rb.Float(), nil
	case reflect.String:
		return ra.String() < rb.String(), nil
	}
	return false, failed("invalid type for comparison") // bool, complex
}

// builtinArgs evaluates the arguments of a builtin.
func (s *fastState) builtinArgs(dot any, args []parse.Node, final any, hasFinal bool) ([]any, error) {
	argv := make([]any, 0, len(args)+1)
	for _, a := range args {
		v, err := s.evalAny(dot, a)
		if err != nil {
			return nil, err
		}
		argv = append(argv, v)
	}
	if hasFinal {
		argv = append(argv, final)
	}
	return argv, nil
}

// index is the builtin index: item[indexes[0]][indexes[1]]...
func index(item any, indexes []any) (any, error) {
	rv := reflectOf(item)
	if rv.Kind() == reflect.Interface {
		rv = rv.Elem()
	}
	if !rv.IsValid() {
		return nil, failed("index of untyped nil")
	}
	for _, ix := range indexes {
		for rv.Kind() == reflect.Pointer || rv.Kind() == reflect.Interface {
			if rv.IsNil() {
				return nil, failed("index of nil pointer")
			}
			rv = rv.Elem()
		}
		x := reflect.ValueOf(export(ix))
		switch rv.Kind() {
		case reflect.Array, reflect.Slice, reflect.String:
			var i int64
			switch x.Kind() {
			case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
				i = x.Int()
			case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
				i = int64(x.Uint())
			default:
				return nil, failed("cannot index slice/array with %v", x)
			}
			if i < 0 || i >= int64(rv.Len()) {
				return nil, failed("index out of range: %d", i)
			}
			rv = rv.Index(int(i))
		case reflect.Map:
			kt := rv.Type().Key()
			switch {
			case !x.IsValid() || !x.Type().AssignableTo(kt):
				return nil, unsupported("index of a map of %s keys with %v", kt, x)
			}
			if e := rv.MapIndex(x); e.IsValid() {
				rv = e
			} else {
				rv = reflect.Zero(rv.Type().Elem())
			}
		default:
			return nil, failed("can't index item of type %s", rv.Type())
		}
	}
	if !rv.CanInterface() {
		return nil, unsupported("index result of type %s", rv.Type())
	}
	if rv.CanAddr() {
		return ref{rv}, nil
	}
	return interfaceOf(rv), nil
}

// reflectOf returns v, a value of the fast path, as a reflect.Value,
// addressable where it is a reference.
func reflectOf(v any) reflect.Value {
	switch r := v.(type) {
	case kvElem:
		return reflect.ValueOf(r.p).Elem()
	case strElem:
		return reflect.ValueOf(r.p).Elem()
	case ref:
		return r.v
	case nilInterface:
		return reflect.Value{}
	}
	return reflect.ValueOf(v)
}

// length is the builtin len.
func length(v any) (any, error) {
	v = export(v)
	switch v := v.(type) {
	case string:
		return len(v), nil
	case []funcs.KV:
		return len(v), nil
	case []string:
		return len(v), nil
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return rv.Len(), nil
	}
	return nil, unsupported("len of %T", v)
}

// equal compares two values of basic kinds as the builtin eq does; any
// other comparison is left to text/template.
func equal(a, b any) (bool, error) {
	a, b = export(a), export(b)
	if x, ok := a.(string); ok {
		if y, ok := b.(string); ok {
			return x == y, nil
		}
	}
	ra, rb := reflect.ValueOf(a), reflect.ValueOf(b)
	ka, kb := basicKind(ra), basicKind(rb)
	switch {
	case ka == 0 || kb == 0:
		return false, unsupported("comparison of %T and %T", a, b)
	case ka == reflect.Int && kb == reflect.Uint:
		return ra.Int() >= 0 && uint64(ra.Int()) == rb.Uint(), nil
	case ka == reflect.Uint && kb == reflect.Int:
		return rb.Int() >= 0 && ra.Uint() == uint64(rb.Int()), nil
	case ka != kb:
		return false, failed("incompatible types for comparison")
	}
	switch ka {
	case reflect.Bool:
		return ra.Bool() == rb.Bool(), nil
	case reflect.Int:
		return ra.Int() == rb.Int(), nil
	case reflect.Uint:
		return ra.Uint() == rb.Uint(), nil
	case reflect.Float64:
		return ra.Float() == rb.Float(), nil
	case reflect.Complex128:
		return ra.Complex() == rb.Complex(), nil
	}
	return ra.String() == rb.String(), nil // reflect.String
}

// basicKind returns the class of v's kind that eq compares, named by one
// kind of the class, or 0 for none.
func basicKind(v reflect.Value) reflect.Kind {
	switch v.Kind() {
	case reflect.Bool, reflect.String:
		return v.Kind()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return reflect.Int
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return reflect.Uint
	case reflect.Float32, reflect.Float64:
		return reflect.Float64
	case reflect.Complex64, reflect.Complex128:
		return reflect.Complex128
	}
	return 0
}
