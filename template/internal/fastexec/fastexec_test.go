package fastexec

import (
	"bytes"
	"errors"
	"maps"
	"reflect"
	"slices"
	"testing"
	texttemplate "text/template"

	"github.com/kvconf/kvconf/funcs"
)

// TestStreamedRanges checks which ranges the fast path runs over the
// store's pairs one at a time: those over a function declared to be
// GetAll, of a constant pattern, whose body assigns no variable.
func TestStreamedRanges(t *testing.T) {
	t.Parallel()
	src := `{{range gets "/a/*"}}{{.Key}}{{$d := .}}{{end}}` + // streamed: a declaration is not an assignment
		`{{range $i, $kv := gets "/b/*"}}{{range gets "/c/*"}}{{end}}{{end}}` + // both streamed
		`{{define "t"}}{{range gets "/d/*"}}{{end}}{{end}}` + // in a defined template too
		`{{range pairs "/p/*"}}{{end}}` + // streamed: pairs is declared GetAll too
		`{{$x := 0}}{{range gets "/e/*"}}{{$x = 1}}{{end}}` + // not: the body assigns $x
		`{{range gets "/f/*"}}{{if true}}{{with 1}}{{$x = .}}{{end}}{{end}}{{end}}` + // not: nor deeper
		`{{range $x = gets "/g/*"}}{{end}}` + // not: the range assigns
		`{{range gets (print "/h/*")}}{{end}}{{$p := "/i/*"}}{{range gets $p}}{{end}}` + // not: no constant
		`{{range getvs "/j/*"}}{{end}}{{range gets "/k/*" | len}}{{end}}` + // not gets alone
		`{{range other "/l/*"}}{{end}}` // not: other is not declared GetAll
	list := func(string) ([]funcs.KV, error) { return nil, nil }
	pt, err := texttemplate.New("x").Funcs(texttemplate.FuncMap{"gets": list, "pairs": list, "other": list,
		"getvs": func(string) []string { return nil }}).Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	isGetAll := func(name string) bool { return name == "gets" || name == "pairs" }
	got := slices.Sorted(maps.Values(streamedRanges(pt, isGetAll)))
	if want := []string{"/a/*", "/b/*", "/c/*", "/d/*", "/p/*"}; !slices.Equal(got, want) {
		t.Errorf("streamed ranges over %q, want %q", got, want)
	}
	if got := streamedRanges(pt, nil); got != nil {
		t.Errorf("streamed ranges without isGetAll: %v, want none", got)
	}
}

// TestCompile checks which templates Compile takes: only those whose
// nodes, builtins and function signatures the fast path handles, so that
// a template it would give up on whatever the data never runs on it.
func TestCompile(t *testing.T) {
	t.Parallel()
	fm := texttemplate.FuncMap{
		"str":      func(string) string { return "" },
		"strErr":   func() (string, error) { return "", nil },
		"variadic": func(string, ...any) string { return "" },
		"retValue": func() reflect.Value { return reflect.Value{} },
		"argValue": func(reflect.Value) string { return "" },
		"varValue": func(...reflect.Value) string { return "" },
	}
	tests := []struct {
		src  string
		want bool
	}{
		{`text {{str "a"}} {{strErr}} {{variadic "a" 1 2}}{{if 1}}{{range 2}}{{.}}{{end}}{{end}}`, true},
		{`{{printf "%d" 1}} {{len "ab"}} {{index "ab" 0}} {{eq 1 1}} {{(str "a") | len}}`, true},
		{`{{retValue}}`, false},                    // returns a reflect.Value
		{`{{argValue 1}}`, false},                  // takes one
		{`{{if false}}{{varValue}}{{end}}`, false}, // even where no render reaches it
		{`{{len retValue}}`, false},                // named without arguments, not first in the command
		{`{{slice "abc" 1}}`, false},               // a builtin the fast path does not mirror
		{`{{html "<"}}`, false},
		{`{{define "t"}}{{call .}}{{end}}x`, false}, // in a defined template too
	}
	for _, tt := range tests {
		pt, err := texttemplate.New("x").Funcs(fm).Parse(tt.src)
		if err != nil {
			t.Fatalf("%s: %v", tt.src, err)
		}
		if got := Compile(pt, fm, nil) != nil; got != tt.want {
			t.Errorf("Compile(%s) != nil is %t, want %t", tt.src, got, tt.want)
		}
	}
}

// TestExecStreams checks that a range over a declared GetAll function
// reads the pairs from Env.Store, and over the function's list without
// one.
func TestExecStreams(t *testing.T) {
	t.Parallel()
	s := funcs.NewStore(map[string]string{"/a/1": "x", "/a/2": "y"})
	calls := 0
	fm := texttemplate.FuncMap{"pairs": func(p string) ([]funcs.KV, error) { calls++; return s.GetAll(p) }}
	pt, err := texttemplate.New("x").Funcs(fm).Parse(`{{range pairs "/a/*"}}{{.Key}}={{.Value}};{{end}}`)
	if err != nil {
		t.Fatal(err)
	}
	p := Compile(pt, fm, func(name string) bool { return name == "pairs" })
	if p == nil {
		t.Fatal("Compile = nil")
	}
	for _, tt := range []struct {
		store *funcs.Store
		calls int
	}{{s, 0}, {nil, 1}} {
		calls = 0
		var out bytes.Buffer
		if err := p.Exec(&out, Env{Funcs: fm, Store: tt.store}, nil); err != nil {
			t.Fatal(err)
		}
		if out.String() != "/a/1=x;/a/2=y;" || calls != tt.calls {
			t.Errorf("store %v: output %q with %d calls of pairs, want %q and %d", tt.store != nil, out.String(), calls, "/a/1=x;/a/2=y;", tt.calls)
		}
	}
}

// TestExecGivesUp checks that what the fast path does not mirror is an
// error wrapping ErrNotFast, and so is a function's panic.
func TestExecGivesUp(t *testing.T) {
	t.Parallel()
	type inner struct{ V string }
	fm := texttemplate.FuncMap{
		"ptr":  func() *inner { return &inner{"v"} },
		"boom": func() string { panic("boom") },
	}
	for _, src := range []string{`{{ptr}}`, `{{boom}}`} {
		pt, err := texttemplate.New("x").Funcs(fm).Parse(src)
		if err != nil {
			t.Fatal(err)
		}
		p := Compile(pt, fm, nil)
		if p == nil {
			t.Fatalf("Compile(%s) = nil", src)
		}
		if err := p.Exec(new(bytes.Buffer), Env{Funcs: fm}, nil); !errors.Is(err, ErrNotFast) {
			t.Errorf("Exec(%s) = %v, want an error wrapping ErrNotFast", src, err)
		}
	}
}
