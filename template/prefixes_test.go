package template_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kvconf/kvconf/backends/consul/catalog"
	"github.com/kvconf/kvconf/template"
)

// TestPrefixes checks that the catalog keys a template reads are found
// wherever it calls the consul functions, with constant or computed
// arguments, and in files it includes by a constant name.
func TestPrefixes(t *testing.T) {
	t.Parallel()
	svc := func(name, dc string) string {
		return catalog.Query{Kind: catalog.KindService, Name: name, Datacenter: dc}.Prefix()
	}
	every := catalog.Query{Kind: catalog.KindAllServices}.Prefix()
	services := catalog.Query{Kind: catalog.KindServices}.Prefix()
	nodes := catalog.Query{Kind: catalog.KindNodes}.Prefix()
	dir := t.TempDir()
	for name, src := range map[string]string{
		"lb.tmpl":    `{{range service "api"}}{{.Address}}{{end}}{{include "inner.tmpl"}}`,
		"inner.tmpl": `{{len (service "db@dc2")}}{{include "lb.tmpl"}}`, // a cycle: rendering reports it
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name, src string
		want      []string
	}{
		{"none", `{{getv "/a"}}{{range gets "/b/*"}}{{end}}`, nil},
		{"action", `{{service "web"}}`, []string{svc("web", "")}},
		{"tag and filter", `{{service "prod.web" "any"}}`, []string{svc("web", "")}},
		{"paren and pipe", `{{len (service "a")}}{{"b" | service}}`, []string{every, svc("a", "")}},
		{"range with define", `{{define "x"}}{{range service "c@dc1"}}{{end}}{{end}}{{template "x"}}`, []string{svc("c", "dc1")}},
		{"if and with", `{{if service "a"}}{{end}}{{with nodes}}{{end}}`, []string{nodes, svc("a", "")}},
		{"niladic argument", `{{len services}}`, []string{services}},
		{"variable name", `{{range services}}{{range service .Name}}{{end}}{{end}}`, []string{every, services}},
		{"includes", `{{include "lb.tmpl"}}`, []string{svc("api", ""), svc("db", "dc2")}},
		{"computed include", `{{include (printf "%s" "lb.tmpl")}}`, nil},
		{"missing include", `{{include "nope.tmpl"}}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tm, err := template.Parse("t.tmpl", []byte(tt.src), template.Options{IncludeDir: dir})
			if err != nil {
				t.Fatal(err)
			}
			if got := tm.Prefixes(); !slices.Equal(got, tt.want) {
				t.Errorf("Prefixes() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPrefixesErrors(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, src, want string }{
		{"no argument", `{{service}}`, `template t.tmpl: service: want a service`},
		{"bad name", `{{service "web@"}}`, `template t.tmpl: service: catalog: bad argument: "web@"`},
		{"bad filter", `{{service "web" "up"}}`, `unknown health filter "up"`},
		{"bad datacenter", `{{nodes "dc1"}}`, `template t.tmpl: nodes: catalog: bad argument: "dc1"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := template.Parse("t.tmpl", []byte(tt.src), template.Options{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse error %v, want %q", err, tt.want)
			}
		})
	}
}
