package consulfuncs_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	texttemplate "text/template"

	"github.com/kvconf/kvconf/backends/consul/catalog"
	"github.com/kvconf/kvconf/backends/consul/consulfuncs"
	"github.com/kvconf/kvconf/funcs"
)

// catalogKV returns the store key and JSON value of q holding v, as the
// consul backend serves it.
func catalogKV(t *testing.T, kv map[string]string, q catalog.Query, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	kv[q.Prefix()] = string(b)
}

// renderConsul runs src with the consul set alone, bound to kv.
func renderConsul(t *testing.T, src string, kv map[string]string) (string, error) {
	t.Helper()
	fm, err := funcs.Map(t.Context(), []string{"consul"}, funcs.NewStore(kv).View("/app", nil))
	if err != nil {
		t.Fatal(err)
	}
	tm, err := texttemplate.New("t").Option("missingkey=error").Funcs(fm).Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	err = tm.Execute(&b, nil)
	return b.String(), err
}

func webInstances() []catalog.Instance {
	return []catalog.Instance{
		{Name: "web", ID: "web-1", Node: "n1", Address: "10.0.0.1", Port: 8080, Tags: catalog.Tags{"v1", "prod"}, Status: catalog.StatusPassing, Meta: map[string]string{"zone": "a"}},
		{Name: "web", ID: "web-2", Node: "n2", Address: "10.0.0.2", Port: 8080, Tags: catalog.Tags{"v2"}, Status: catalog.StatusCritical},
		{Name: "web", ID: "web-3", Node: "n3", Address: "10.0.0.3", Port: 8081, Tags: catalog.Tags{"v2", "prod"}, Status: catalog.StatusWarning},
		{Name: "web", ID: "web-4", Node: "n4", Address: "10.0.0.4", Port: 8082, Tags: catalog.Tags{}, Status: catalog.StatusMaintenance},
	}
}

func TestConsulService(t *testing.T) {
	t.Parallel()
	kv := map[string]string{"/app/x": "1"}
	catalogKV(t, kv, catalog.Query{Kind: catalog.KindService, Name: "web"}, webInstances())
	catalogKV(t, kv, catalog.Query{Kind: catalog.KindService, Name: "web", Datacenter: "dc2"},
		[]catalog.Instance{{Name: "web", ID: "w", Node: "m", Address: "192.0.2.1", Port: 80, Status: catalog.StatusPassing}})
	catalogKV(t, kv, catalog.Query{Kind: catalog.KindService, Name: "empty"}, []catalog.Instance{})
	line := `{{range $i, $s := %s}}{{if $i}} {{end}}{{.ID}}={{.Address}}:{{.Port}}{{end}}`
	tests := []struct {
		name, call, want string
	}{
		{"passing only by default", `service "web"`, "web-1=10.0.0.1:8080"},
		{"any", `service "web" "any"`, "web-1=10.0.0.1:8080 web-2=10.0.0.2:8080 web-3=10.0.0.3:8081 web-4=10.0.0.4:8082"},
		{"listed statuses", `service "web" "passing,warning"`, "web-1=10.0.0.1:8080 web-3=10.0.0.3:8081"},
		{"statuses as arguments", `service "web" "critical" "maintenance"`, "web-2=10.0.0.2:8080 web-4=10.0.0.4:8082"},
		{"tag filter", `service "prod.web" "any"`, "web-1=10.0.0.1:8080 web-3=10.0.0.3:8081"},
		{"tag with dots", `service "v1.2.web" "any"`, ""},
		{"datacenter", `service "web@dc2"`, "w=192.0.2.1:80"},
		{"no instances", `service "empty"`, ""},
		{"piped name", `"web" | service`, "web-1=10.0.0.1:8080"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := renderConsul(t, strings.Replace(line, "%s", tt.call, 1), kv)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	t.Run("fields", func(t *testing.T) {
		t.Parallel()
		got, err := renderConsul(t, `{{with index (service "web") 0}}{{.Name}} {{.Node}} {{.Meta.zone}} {{.Tags}} {{.Tags.Contains "prod"}} {{.Status}} {{.ServiceMeta.zone}}{{end}}`, kv)
		if err != nil {
			t.Fatal(err)
		}
		if want := "web n1 a [v1 prod] true passing a"; got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	})
}

func TestConsulServiceErrors(t *testing.T) {
	t.Parallel()
	kv := map[string]string{}
	catalogKV(t, kv, catalog.Query{Kind: catalog.KindService, Name: "web"}, webInstances())
	kv[catalog.Query{Kind: catalog.KindService, Name: "bad"}.Prefix()] = "{not json"
	tests := []struct {
		name, src string
		is        error
		want      string
	}{
		{"not watched", `{{service "db"}}`, consulfuncs.ErrNotWatched, `service "db"`},
		{"other datacenter not watched", `{{service "web@dc9"}}`, consulfuncs.ErrNotWatched, `service "web@dc9"`},
		{"malformed name", `{{service "web@"}}`, catalog.ErrSyntax, `"web@"`},
		{"empty tag", `{{service ".web"}}`, catalog.ErrSyntax, `".web"`},
		{"unknown filter", `{{service "web" "healthy"}}`, nil, `unknown health filter "healthy"`},
		{"malformed value", `{{service "bad"}}`, nil, `service "bad": malformed catalog value`},
		{"services not watched", `{{services}}`, consulfuncs.ErrNotWatched, "services"},
		{"nodes bad argument", `{{nodes "dc1"}}`, catalog.ErrSyntax, `want "@datacenter"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := renderConsul(t, tt.src, kv)
			if err == nil {
				t.Fatal("no error")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v does not wrap %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q lacks %q", err, tt.want)
			}
		})
	}
}

func TestConsulEveryServiceWatched(t *testing.T) {
	t.Parallel()
	kv := map[string]string{}
	catalogKV(t, kv, catalog.Query{Kind: catalog.KindAllServices}, []string{"web"})
	catalogKV(t, kv, catalog.Query{Kind: catalog.KindService, Name: "web"}, webInstances())
	catalogKV(t, kv, catalog.Query{Kind: catalog.KindServices}, []catalog.Service{{Name: "web", Tags: catalog.Tags{"prod", "v1", "v2"}}})
	got, err := renderConsul(t, `{{range services}}{{.Name}}{{.Tags}}:{{range service .Name}}{{.ID}}{{end}};{{end}}{{len (service "gone")}}`, kv)
	if err != nil {
		t.Fatal(err)
	}
	if want := "web[prod v1 v2]:web-1;0"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestConsulNodes(t *testing.T) {
	t.Parallel()
	kv := map[string]string{}
	catalogKV(t, kv, catalog.Query{Kind: catalog.KindNodes}, []catalog.Node{{Node: "n1", Address: "10.0.0.1", Datacenter: "dc1"}, {Node: "n2", Address: "10.0.0.2", Datacenter: "dc1"}})
	catalogKV(t, kv, catalog.Query{Kind: catalog.KindNodes, Datacenter: "dc2"}, []catalog.Node{{Node: "m1", Address: "192.0.2.1", Datacenter: "dc2"}})
	got, err := renderConsul(t, `{{range nodes}}{{.Node}}={{.Address}} {{end}}{{range nodes "@dc2"}}{{.Node}}@{{.Datacenter}}{{end}}`, kv)
	if err != nil {
		t.Fatal(err)
	}
	if want := "n1=10.0.0.1 n2=10.0.0.2 m1@dc2"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestConsulHiddenFromKV checks that catalog keys never show through the
// key/value functions, even at the root.
func TestConsulHiddenFromKV(t *testing.T) {
	t.Parallel()
	kv := map[string]string{"/a": "1"}
	catalogKV(t, kv, catalog.Query{Kind: catalog.KindNodes}, []catalog.Node{})
	fm, err := funcs.Map(t.Context(), []string{"confd"}, funcs.NewStore(kv).View("/", nil))
	if err != nil {
		t.Fatal(err)
	}
	kvs, err := fm["gets"].(func(string) ([]funcs.KV, error))("/*")
	if err != nil {
		t.Fatal(err)
	}
	if len(kvs) != 1 || kvs[0].Key != "/a" {
		t.Errorf("gets /* = %v, want /a alone", kvs)
	}
	if ls := fm["ls"].(func(string) []string)("/"); !slices.Equal(ls, []string{"a"}) {
		t.Errorf("ls / = %q, want [a]", ls)
	}
}

func TestConsulPrefixes(t *testing.T) {
	t.Parallel()
	c := func(name string, args ...any) funcs.Call {
		call := funcs.Call{Name: name}
		for _, a := range args {
			if s, ok := a.(string); ok {
				call.Args = append(call.Args, funcs.Arg{Value: s, Const: true})
			} else {
				call.Args = append(call.Args, funcs.Arg{})
			}
		}
		return call
	}
	web := catalog.Query{Kind: catalog.KindService, Name: "web"}.Prefix()
	tests := []struct {
		name    string
		sets    []string
		calls   []funcs.Call
		want    []string
		wantErr string
	}{
		{"service", nil, []funcs.Call{c("service", "web"), c("service", "prod.web", "any"), c("get", "/x")}, []string{web}, ""},
		{"datacenter", nil, []funcs.Call{c("service", "web@dc2")}, []string{catalog.Query{Kind: catalog.KindService, Name: "web", Datacenter: "dc2"}.Prefix()}, ""},
		{"variable name", nil, []funcs.Call{c("service", nil)}, []string{catalog.Query{Kind: catalog.KindAllServices}.Prefix()}, ""},
		{"services and nodes", nil, []funcs.Call{c("services"), c("nodes", "@dc3")}, []string{
			catalog.Query{Kind: catalog.KindNodes, Datacenter: "dc3"}.Prefix(), catalog.Query{Kind: catalog.KindServices}.Prefix()}, ""},
		{"no consul set", []string{"confd"}, []funcs.Call{c("service", "web")}, nil, ""},
		{"no name", nil, []funcs.Call{c("service")}, nil, "service: want a service"},
		{"bad name", nil, []funcs.Call{c("service", "a@")}, nil, `service: catalog: bad argument: "a@"`},
		{"bad filter", nil, []funcs.Call{c("service", "web", "up")}, nil, `unknown health filter "up"`},
		{"bad datacenter", nil, []funcs.Call{c("nodes", "dc1")}, nil, `nodes: catalog: bad argument: "dc1"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sets := tt.sets
			if sets == nil {
				sets = funcs.DefaultSets()
			}
			got, err := funcs.Prefixes(t.Context(), sets, tt.calls)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestDefaultSets checks that, linked in, the consul set comes last in
// the default sets, after sprig and confd, as README documents.
func TestDefaultSets(t *testing.T) {
	t.Parallel()
	if got, want := funcs.DefaultSets(), []string{"sprig", "confd", "consul"}; !slices.Equal(got, want) {
		t.Errorf("DefaultSets() = %q, want %q", got, want)
	}
}
