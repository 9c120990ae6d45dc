package registry

import (
	"slices"
	"strings"
	"testing"
)

func TestRegistry(t *testing.T) {
	t.Parallel()
	r := New[int]("things")
	r.Register("b", 2, false)
	r.Register("a", 1, false)
	if got := r.Names(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("Names = %v, want [a b]", got)
	}
	if v, ok := r.Lookup("b"); !ok || v != 2 {
		t.Fatalf("Lookup(b) = %d, %v; want 2, true", v, ok)
	}
	if _, ok := r.Lookup("c"); ok {
		t.Fatal("Lookup(c) found a value never registered")
	}
}

func TestRegistryMisuse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		do   func(r *Registry[int])
		want string
	}{
		{"empty name", func(r *Registry[int]) { r.Register("", 1, false) }, "things: Register with an empty name"},
		{"nil value", func(r *Registry[int]) { r.Register("x", 0, true) }, "things: Register of x with a nil value"},
		{"twice", func(r *Registry[int]) { r.Register("x", 1, false); r.Register("x", 2, false) }, "things: Register called twice for x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			defer func() {
				got, _ := recover().(string)
				if !strings.Contains(got, tt.want) {
					t.Fatalf("panic %q, want %q", got, tt.want)
				}
			}()
			tt.do(New[int]("things"))
		})
	}
}
