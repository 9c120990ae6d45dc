package template_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvconf/kvconf/funcs"
	"github.com/kvconf/kvconf/template"
)

// BenchmarkRender10kLines renders 10,000 output lines from a 10,000-key
// store, three ways: one range over gets, the same range with each line
// rendered by an include, and a 10,000-line template that calls getv on
// every line.
func BenchmarkRender10kLines(b *testing.B) {
	const n = 10_000
	kv := make(map[string]string, n)
	var lines strings.Builder
	for i := range n {
		k := fmt.Sprintf("/bench/upstreams/u%05d", i)
		kv[k] = fmt.Sprintf("10.%d.%d.%d:8080", i>>16&255, i>>8&255, i&255)
		fmt.Fprintf(&lines, "server u%05d {{getv %q}};\n", i, k)
	}
	s := funcs.NewStore(kv)
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "server.tmpl"), []byte("server {{base .Key}} {{.Value}};\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	sources := []struct {
		name string
		src  string
	}{
		{"range", "{{range gets \"/bench/upstreams/*\"}}server {{base .Key}} {{.Value}};\n{{end}}"},
		{"range_include", "{{range gets \"/bench/upstreams/*\"}}{{include \"server.tmpl\" .}}{{end}}"},
		{"lines", lines.String()},
	}
	for _, src := range sources {
		b.Run(src.name, func(b *testing.B) {
			tmpl, err := template.Parse("bench.tmpl", []byte(src.src), template.Options{IncludeDir: dir})
			if err != nil {
				b.Fatal(err)
			}
			var out bytes.Buffer
			if err := tmpl.Render(b.Context(), &out, s); err != nil {
				b.Fatal(err)
			}
			if got := strings.Count(out.String(), "\n"); got != n {
				b.Fatalf("rendered %d lines, want %d", got, n)
			}
			b.SetBytes(int64(out.Len()))
			b.ReportAllocs()
			for b.Loop() {
				out.Reset()
				if err := tmpl.Render(b.Context(), &out, s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRenderSmall renders a template of a few lines, as most
// resources are: its cost is mostly binding the functions to the store.
func BenchmarkRenderSmall(b *testing.B) {
	s := funcs.NewStore(map[string]string{"/app/port": "8080", "/app/host": "db", "/app/u/a": "1", "/app/u/b": "2"})
	tmpl, err := template.Parse("small.tmpl", []byte("listen {{getv \"/app/port\"}}\nhost {{getv \"/app/host\" \"x\"}}\n{{range gets \"/app/u/*\"}}server {{base .Key}} {{.Value}}\n{{end}}"), template.Options{})
	if err != nil {
		b.Fatal(err)
	}
	var out bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		out.Reset()
		if err := tmpl.Render(b.Context(), &out, s); err != nil {
			b.Fatal(err)
		}
	}
}
