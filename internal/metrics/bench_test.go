package metrics

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/kvconf/kvconf/backends/backendtest"
	"github.com/kvconf/kvconf/resource"
)

// BenchmarkOnceObserved measures what the metrics observer adds to a
// render pass: resource.Once over 200 resources reading 10,000 keys of a
// fake backend (every dest up to date after the first pass: each pass
// renders, compares and writes nothing), without an observer and with
// the metrics.
func BenchmarkOnceObserved(b *testing.B) {
	for _, observed := range []bool{false, true} {
		b.Run(fmt.Sprintf("observer=%v", observed), func(b *testing.B) {
			dir := b.TempDir()
			for _, d := range []string{"conf.d", "templates", "out"} {
				if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
					b.Fatal(err)
				}
			}
			tmpl := "{{range gets \"/k/*\"}}server {{base .Key}} {{.Value}}\n{{end}}"
			if err := os.WriteFile(filepath.Join(dir, "templates", "all.tmpl"), []byte(tmpl), 0o644); err != nil {
				b.Fatal(err)
			}
			f := backendtest.NewFake()
			for i := range 10000 {
				f.Set(fmt.Sprintf("/bench/k/%04d%02d", i/100, i%100), fmt.Sprintf("10.0.%d.%d:80", i/256, i%256))
			}
			for i := range 200 {
				res := fmt.Sprintf("[template]\nsrc = \"all.tmpl\"\ndest = %q\nprefix = \"/bench\"\nkeys = [\"/k/%04d\"]\n",
					filepath.Join(dir, "out", fmt.Sprintf("r%03d.conf", i)), i%100)
				if err := os.WriteFile(filepath.Join(dir, "conf.d", fmt.Sprintf("r%03d.toml", i)), []byte(res), 0o644); err != nil {
					b.Fatal(err)
				}
			}
			opts := resource.Options{ConfDir: dir}
			m := New()
			if observed {
				opts.Observer = m
			}
			rs, err := resource.LoadDir(opts)
			if err != nil {
				b.Fatal(err)
			}
			if err := resource.Once(b.Context(), f, rs); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				if err := resource.Once(b.Context(), f, rs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkObserveRender measures the observer's cost of one render that
// finds dest up to date (the common case of a watch update): the
// EventRendered, EventUnchanged and EventDone it receives.
func BenchmarkObserveRender(b *testing.B) {
	m := New()
	m.Expect([]Resource{{Name: "conf.d/r.toml", Dest: "/out/r"}}, []string{"etcd"})
	ev := resource.Event{Resource: "conf.d/r.toml", Dest: "/out/r", Duration: 50 * 1000}
	for b.Loop() {
		for _, k := range []resource.EventKind{resource.EventRendered, resource.EventUnchanged, resource.EventDone} {
			ev.Kind = k
			m.ObserveResource(ev)
		}
	}
}
