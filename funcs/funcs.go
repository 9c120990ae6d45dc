// Package funcs holds kvconf's template functions, grouped in named sets,
// and [Store], the immutable key/value view the functions read.
//
// A set is a [Builder] registered under a name with [Register]. [Map]
// composes sets in order; when two sets define the same name, the later set
// wins. The default order, [DefaultSets], is sprig then confd, so confd's
// meaning wins for the names both define (see [SprigCollisions]).
package funcs

import (
	"context"
	"fmt"
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

type set struct {
	build       Builder
	description string
}

var (
	mu   sync.RWMutex
	sets = map[string]set{}
)

// DefaultSets returns the sets a template gets when its resource names
// none: sprig, then confd. Each call returns a new slice.
func DefaultSets() []string { return []string{"sprig", "confd"} }

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
	sets[name] = set{build: b, description: description}
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
	return sets[name].description
}

// Map composes the named sets, in order, bound to s. Later sets win on
// shared names. An unknown set name is an error.
func Map(ctx context.Context, names []string, s *Store) (texttemplate.FuncMap, error) {
	mu.RLock()
	defer mu.RUnlock()
	fm := make(texttemplate.FuncMap, 320) // sprig and confd: about 260 names
	for _, n := range names {
		st, ok := sets[n]
		if !ok {
			known := make([]string, 0, len(sets))
			for k := range sets {
				known = append(known, k)
			}
			sort.Strings(known)
			return nil, fmt.Errorf("funcs: unknown function set %q (known: %s)", n, strings.Join(known, ", "))
		}
		for name, f := range st.build(ctx, s) {
			fm[name] = f
		}
	}
	return fm, nil
}
