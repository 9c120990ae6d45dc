package template

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"

	"github.com/kvconf/kvconf/funcs"
)

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
