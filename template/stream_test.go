package template

import (
	"bytes"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"testing"
	texttemplate "text/template"

	"github.com/kvconf/kvconf/funcs"
)

// TestStreamedRanges checks which ranges the fast path runs over the
// store's pairs one at a time: those over gets of a constant pattern whose
// body assigns no variable.
func TestStreamedRanges(t *testing.T) {
	t.Parallel()
	src := `{{range gets "/a/*"}}{{.Key}}{{$d := .}}{{end}}` + // streamed: a declaration is not an assignment
		`{{range $i, $kv := gets "/b/*"}}{{range gets "/c/*"}}{{end}}{{end}}` + // both streamed
		`{{define "t"}}{{range gets "/d/*"}}{{end}}{{end}}` + // in a defined template too
		`{{$x := 0}}{{range gets "/e/*"}}{{$x = 1}}{{end}}` + // not: the body assigns $x
		`{{range gets "/f/*"}}{{if true}}{{with 1}}{{$x = .}}{{end}}{{end}}{{end}}` + // not: nor deeper
		`{{range $x = gets "/g/*"}}{{end}}` + // not: the range assigns
		`{{range gets (print "/h/*")}}{{end}}{{$p := "/i/*"}}{{range gets $p}}{{end}}` + // not: no constant
		`{{range getvs "/j/*"}}{{end}}{{range gets "/k/*" | len}}{{end}}` // not gets alone
	pt, err := texttemplate.New("x").Funcs(texttemplate.FuncMap{"gets": func(string) []funcs.KV { return nil },
		"getvs": func(string) []string { return nil }}).Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	got := slices.Sorted(maps.Values(streamedRanges(pt)))
	if want := []string{"/a/*", "/b/*", "/c/*", "/d/*"}; !slices.Equal(got, want) {
		t.Errorf("streamed ranges over %q, want %q", got, want)
	}
}

// TestRangeGetsMemory checks that a range over gets does not make the list
// of the pairs it reads: rendering 20,000 of them allocates much less than
// that list alone would take.
func TestRangeGetsMemory(t *testing.T) { //nolint:paralleltest // measures the process's allocations
	const n = 20_000
	kv := make(map[string]string, n)
	for i := range n {
		kv[fmt.Sprintf("/k/%05d", i)] = "v"
	}
	s := funcs.NewStore(kv)
	tm, err := Parse("m.tmpl", []byte(`{{range gets "/k/*"}}{{.Value}}{{end}}`), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	out.Grow(2 * n)
	render := func() uint64 {
		out.Reset()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		if err := tm.Render(t.Context(), &out, s); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	render()               // the first render binds the template's functions
	list := uint64(n * 32) // n funcs.KV
	if got := render(); got > list/4 || out.Len() != n {
		t.Errorf("render of %d pairs allocated %d bytes and wrote %d; want under %d, a quarter of their list, and %d",
			n, got, out.Len(), list/4, n)
	}
}
