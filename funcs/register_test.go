package funcs_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	texttemplate "text/template"

	"github.com/kvconf/kvconf/funcs"
)

// mustPanic runs f and returns the message it panicked with.
func mustPanic(t *testing.T, f func()) (msg string) {
	t.Helper()
	defer func() {
		r := recover()
		if r == nil {
			t.Fatal("no panic")
		}
		msg, _ = r.(string)
	}()
	f()
	return ""
}

// TestRegisterPrefixesMisuse checks that RegisterPrefixes panics, naming
// the set, on the misuses of an init function: an unregistered set, a nil
// func, a second registration.
func TestRegisterPrefixesMisuse(t *testing.T) {
	const set = "registertest"
	funcs.Register(set, "test-only", func(context.Context, *funcs.Store) texttemplate.FuncMap { return nil })
	f := func(funcs.Call) ([]string, error) { return nil, nil }
	for _, tt := range []struct {
		name, want string
		call       func()
	}{
		{"unregistered", "unregistered set nope", func() { funcs.RegisterPrefixes("nope", f) }},
		{"nil func", set + " with a nil func", func() { funcs.RegisterPrefixes(set, nil) }},
		{"twice", "called twice for " + set, func() { funcs.RegisterPrefixes(set, f); funcs.RegisterPrefixes(set, f) }},
	} {
		if msg := mustPanic(t, tt.call); !strings.Contains(msg, tt.want) {
			t.Errorf("%s: panic %q, want %q", tt.name, msg, tt.want)
		}
	}
}

// TestRegisterGetAllMisuse checks that RegisterGetAll panics, naming the
// set, on the misuses of an init function: an unregistered set, an empty
// function name, a second declaration of the same function.
func TestRegisterGetAllMisuse(t *testing.T) {
	const set = "registergetalltest"
	funcs.Register(set, "test-only", func(context.Context, *funcs.Store) texttemplate.FuncMap { return nil })
	for _, tt := range []struct {
		name, want string
		call       func()
	}{
		{"unregistered", "unregistered set nope", func() { funcs.RegisterGetAll("nope", "gets") }},
		{"empty name", set + " with an empty function name", func() { funcs.RegisterGetAll(set, "") }},
		{"twice", "called twice for " + set + "'s gets", func() { funcs.RegisterGetAll(set, "gets"); funcs.RegisterGetAll(set, "gets") }},
	} {
		if msg := mustPanic(t, tt.call); !strings.Contains(msg, tt.want) {
			t.Errorf("%s: panic %q, want %q", tt.name, msg, tt.want)
		}
	}
}

// TestDefaultSetsRegisteredOnly checks that DefaultSets names only sets
// the program registers: this test binary does not link the consul set
// (package backends/consul/consulfuncs), so templates get sprig and
// confd, not an unknown set.
func TestDefaultSetsRegisteredOnly(t *testing.T) {
	t.Parallel()
	if got, want := funcs.DefaultSets(), []string{"sprig", "confd"}; !slices.Equal(got, want) {
		t.Errorf("DefaultSets() = %q, want %q", got, want)
	}
	if _, err := funcs.NewBinder(t.Context(), funcs.DefaultSets(), nil); err != nil {
		t.Errorf("NewBinder(DefaultSets()): %v", err)
	}
}

// TestDescriptionUnknown checks that an unknown set has no description,
// rather than a panic.
func TestDescriptionUnknown(t *testing.T) {
	t.Parallel()
	if d := funcs.Description("no-such-set"); d != "" {
		t.Errorf("Description(no-such-set) = %q, want empty", d)
	}
}
