// Package funcs holds kvconf's template functions, grouped in named sets,
// and [Store], the immutable key/value view the functions read.
//
// A set is a [Builder] registered under a name with [Register]. [Map]
// composes sets in order; when two sets define the same name, the later set
// wins. The default order, [DefaultSets], is sprig, confd, then consul, so
// confd's meaning wins for the names sprig and confd both define (see
// [SprigCollisions]); consul's names are its own. This package registers
// sprig and confd; the consul set lives beside the consul backend, in
// package backends/consul/consulfuncs, which backends/all imports.
//
// A set may declare more about its functions, each with a registration
// call after [Register]:
//   - [RegisterPrefixes]: its functions read keys outside a resource's own
//     keys (the consul set reads Consul's catalog), and which ones;
//     [Prefixes] asks it for the calls a template makes.
//   - [RegisterGetAll]: one of its functions is the store's [Store.GetAll],
//     so that a caller may read that function's result a pair at a time
//     with [Store.EachAll] (the template fast path does, for a range over
//     gets); [Binder.IsGetAll] tells.
package funcs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	texttemplate "text/template"
)

// Builder returns the functions of a set bound to a store. It is called for
// every render with the store of that render, and at parse time with an
// empty store (so that templates know every name). [Map] copies what it
// returns and never modifies it, so a builder may return a shared map.
type Builder func(ctx context.Context, s *Store) texttemplate.FuncMap

// set is a registered function set. A registered *set is never changed:
// RegisterPrefixes and RegisterGetAll register a changed copy, so that a
// Binder may hold the pointers it found without a lock.
type set struct {
	build       Builder
	description string
	prefixes    PrefixFunc      // nil when the set reads only a resource's keys
	getAll      map[string]bool // the functions declared with RegisterGetAll
}

var (
	mu   sync.RWMutex
	sets = map[string]*set{}
)

// DefaultSets returns the sets a template gets when its resource names
// none: sprig, confd, then consul, less any of them the program does not
// register (a binary built without backends/consul/consulfuncs has no
// consul set). Each call returns a new slice.
func DefaultSets() []string {
	mu.RLock()
	defer mu.RUnlock()
	out := make([]string, 0, 3)
	for _, n := range []string{"sprig", "confd", "consul"} {
		if _, ok := sets[n]; ok {
			out = append(out, n)
		}
	}
	return out
}

// Register makes a function set available under name, with a one-line
// description for listings. It panics if name is empty, b is nil or name is
// already registered; it is meant to be called from an init function.
func Register(name, description string, b Builder) {
	mu.Lock()
	defer mu.Unlock()
	if name == "" {
		panic("funcs: Register with an empty name")
	}
	if b == nil {
		panic("funcs: Register of " + name + " with a nil builder")
	}
	if _, dup := sets[name]; dup {
		panic("funcs: Register called twice for " + name)
	}
	sets[name] = &set{build: b, description: description}
}

// Names returns the names of the registered sets, sorted.
func Names() []string {
	mu.RLock()
	defer mu.RUnlock()
	names := make([]string, 0, len(sets))
	for n := range sets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Description returns the one-line description of the named set.
func Description(name string) string {
	mu.RLock()
	defer mu.RUnlock()
	if st, ok := sets[name]; ok {
		return st.description
	}
	return ""
}

// Map composes the named sets, in order, bound to s. Later sets win on
// shared names. An unknown set name is an error.
func Map(ctx context.Context, names []string, s *Store) (texttemplate.FuncMap, error) {
	b, err := NewBinder(ctx, names, s)
	if err != nil {
		return nil, err
	}
	fm := make(texttemplate.FuncMap, 320) // sprig and confd: about 260 names
	for _, m := range b.maps() {
		for name, f := range m {
			fm[name] = f
		}
	}
	return fm, nil
}

// Binder binds the functions of some sets to one store, building each set
// at most once and only when one of its names is asked for: a render that
// calls three functions pays for three, not for every function of sprig.
// A Binder is not safe for concurrent use.
type Binder struct {
	ctx   context.Context
	s     *Store
	sets  []*set                 // in order; later sets win
	built []texttemplate.FuncMap // by index in sets; nil until built
}

// NewBinder returns a Binder of the named sets, in order, to s. An
// unknown set name is an error.
func NewBinder(ctx context.Context, names []string, s *Store) (*Binder, error) {
	mu.RLock()
	defer mu.RUnlock()
	b := &Binder{ctx: ctx, s: s, sets: make([]*set, len(names)), built: make([]texttemplate.FuncMap, len(names))}
	for i, n := range names {
		st, ok := sets[n]
		if !ok {
			known := make([]string, 0, len(sets))
			for k := range sets {
				known = append(known, k)
			}
			sort.Strings(known)
			return nil, fmt.Errorf("funcs: unknown function set %q (known: %s)", n, strings.Join(known, ", "))
		}
		b.sets[i] = st
	}
	return b, nil
}

// Bind returns the functions called names, bound to the Binder's store,
// each from the last set that defines it; a name no set defines is left
// out (it may be a builtin of text/template, such as printf).
func (b *Binder) Bind(names []string) texttemplate.FuncMap {
	fm := make(texttemplate.FuncMap, len(names))
	for _, n := range names {
		if i := b.winner(n); i >= 0 {
			fm[n] = b.set(i)[n]
		}
	}
	return fm
}

// Store returns the store the Binder binds functions to.
func (b *Binder) Store() *Store { return b.s }

// IsGetAll reports whether the function that Bind gives for name is one
// that its set declared, with [RegisterGetAll], to be the store's
// [Store.GetAll]: a caller may then read what it would return for a
// pattern a pair at a time, with [Store.EachAll] of [Binder.Store],
// instead of calling it.
func (b *Binder) IsGetAll(name string) bool {
	i := b.winner(name)
	if i < 0 || !b.sets[i].getAll[name] {
		return false
	}
	_, ok := b.set(i)[name].(func(string) ([]KV, error)) // GetAll's signature, as a check of the declaration
	return ok
}

// winner returns the index of the last set that defines name, whose
// function Bind gives, or -1 if none does.
func (b *Binder) winner(name string) int {
	for i := len(b.sets) - 1; i >= 0; i-- {
		if _, ok := b.set(i)[name]; ok {
			return i
		}
	}
	return -1
}

// set returns the functions of the i-th set, building them on first use.
func (b *Binder) set(i int) texttemplate.FuncMap {
	if b.built[i] == nil {
		b.built[i] = b.sets[i].build(b.ctx, b.s)
		if b.built[i] == nil {
			b.built[i] = texttemplate.FuncMap{}
		}
	}
	return b.built[i]
}

// maps returns the functions of every set, in order.
func (b *Binder) maps() []texttemplate.FuncMap {
	out := make([]texttemplate.FuncMap, len(b.sets))
	for i := range b.sets {
		out[i] = b.set(i)
	}
	return out
}

// Arg is an argument of a function call as a template spells it.
type Arg struct {
	// Value is the argument's value when Const is true.
	Value string
	// Const reports whether the argument is a string constant; a variable,
	// a field, a pipeline's result or a call is not.
	Const bool
}

// Call is a call of a template function found when a template is parsed.
type Call struct {
	// Name is the function's name.
	Name string
	// Args are the call's arguments; a value piped into the call is its
	// last argument, never constant.
	Args []Arg
}

// PrefixFunc returns the store prefixes that call, a call of one of its
// set's functions, reads outside the keys of the resource that renders it,
// so that the resource fetches and watches them too. It returns nil for a
// function that reads no such key, and an error for arguments that are
// wrong whatever the data.
type PrefixFunc func(call Call) ([]string, error)

// RegisterPrefixes attaches f to the registered set called name (see
// [PrefixFunc]). It panics if the set is not registered, f is nil or the
// set has one already; it is meant to be called from an init function,
// after [Register].
func RegisterPrefixes(name string, f PrefixFunc) {
	mu.Lock()
	defer mu.Unlock()
	st, ok := sets[name]
	switch {
	case !ok:
		panic("funcs: RegisterPrefixes of unregistered set " + name)
	case f == nil:
		panic("funcs: RegisterPrefixes of " + name + " with a nil func")
	case st.prefixes != nil:
		panic("funcs: RegisterPrefixes called twice for " + name)
	}
	c := *st
	c.prefixes = f
	sets[name] = &c
}

// RegisterGetAll declares that fn, a function of the registered set
// called name, is the store's [Store.GetAll]: built with a store s, the
// set's fn is s.GetAll, or returns what s.GetAll returns for every
// pattern, of type func(string) ([]KV, error). A caller that knows it
// ([Binder.IsGetAll]) may read fn's result a pair at a time with
// [Store.EachAll] instead of calling fn: the template fast path does so
// for {{range gets "pattern"}}, which then makes no list of the pairs.
//
// It panics if the set is not registered, fn is empty or fn was declared
// before; it is meant to be called from an init function, after
// [Register].
func RegisterGetAll(name, fn string) {
	mu.Lock()
	defer mu.Unlock()
	st, ok := sets[name]
	switch {
	case !ok:
		panic("funcs: RegisterGetAll of unregistered set " + name)
	case fn == "":
		panic("funcs: RegisterGetAll of " + name + " with an empty function name")
	case st.getAll[fn]:
		panic("funcs: RegisterGetAll called twice for " + name + "'s " + fn)
	}
	m := make(map[string]bool, len(st.getAll)+1)
	for k := range st.getAll {
		m[k] = true
	}
	m[fn] = true
	c := *st
	c.getAll = m
	sets[name] = &c
}

// Prefixes returns the store prefixes that calls read beyond a resource's
// keys, sorted and without duplicates, with a template using the named
// sets: each call is handed to the [PrefixFunc] of the set whose function
// it calls (the last of names that defines it). Errors name the call.
func Prefixes(ctx context.Context, names []string, calls []Call) ([]string, error) {
	mu.RLock()
	defer mu.RUnlock()
	type owner struct {
		defines map[string]bool
		f       PrefixFunc
	}
	var owners []owner // in reverse order of names
	for i := len(names) - 1; i >= 0; i-- {
		st, ok := sets[names[i]]
		if !ok {
			return nil, fmt.Errorf("funcs: unknown function set %q", names[i])
		}
		o := owner{defines: map[string]bool{}, f: st.prefixes}
		for n := range st.build(ctx, NewStore(nil)) {
			o.defines[n] = true
		}
		owners = append(owners, o)
	}
	var out []string
	var errs []error
	for _, c := range calls {
		for _, o := range owners {
			if !o.defines[c.Name] {
				continue
			}
			if o.f != nil {
				ps, err := o.f(c)
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", c.Name, err))
				}
				out = append(out, ps...)
			}
			break
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	sort.Strings(out)
	return slices.Compact(out), nil
}
