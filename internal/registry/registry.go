// Package registry is the one named-plugin table behind kvconf's
// compile-time extension points (backends, function sets, appliers): a
// map from name to value, filled from init functions and read afterwards
// by any goroutine.
package registry

import (
	"sort"
	"sync"
)

// Registry maps names to values of T. The zero Registry is not usable:
// make one with [New]. It is safe for concurrent use.
type Registry[T any] struct {
	kind string // the package registering, for panic messages: "backends"
	mu   sync.RWMutex
	m    map[string]T
}

// New returns an empty registry whose misuse panics name kind (the
// registering package, such as "backends").
func New[T any](kind string) *Registry[T] {
	return &Registry[T]{kind: kind, m: map[string]T{}}
}

// Register adds v under name. It is meant for init functions and panics,
// naming r's kind, when name is empty, isNil reports v unset, or name is
// already registered: each is a programming error of the binary's
// author, never a user's.
func (r *Registry[T]) Register(name string, v T, isNil bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case name == "":
		panic(r.kind + ": Register with an empty name")
	case isNil:
		panic(r.kind + ": Register of " + name + " with a nil value")
	}
	if _, dup := r.m[name]; dup {
		panic(r.kind + ": Register called twice for " + name)
	}
	r.m[name] = v
}

// Lookup returns the value under name, and whether there is one.
func (r *Registry[T]) Lookup(name string) (T, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	v, ok := r.m[name]
	return v, ok
}

// Names returns the registered names, sorted.
func (r *Registry[T]) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.m))
	for n := range r.m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
