package resource

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/kvconf/kvconf/backends/consul/catalog"
	_ "github.com/kvconf/kvconf/backends/consul/consulfuncs" // the consul function set, which these tests call
)

// setService stores the instances of service name in the fake as the
// consul backend serves them.
func (e *daemonEnv) setService(name string, is ...catalog.Instance) {
	e.t.Helper()
	if is == nil {
		is = []catalog.Instance{}
	}
	b, err := json.Marshal(is)
	if err != nil {
		e.t.Fatal(err)
	}
	e.fake.Set(catalog.Query{Kind: catalog.KindService, Name: name}.Prefix(), string(b))
}

// TestRunCatalogKeys checks that a template calling service reads the
// catalog key the consul backend serves for it, beside its own keys, and
// renders again when that key changes, and only then.
func TestRunCatalogKeys(t *testing.T) {
	t.Parallel()
	e := newDaemonEnv(t)
	e.fake.Set("/app/port", "80")
	e.setService("web", catalog.Instance{Name: "web", ID: "w1", Node: "n1", Address: "10.0.0.1", Port: 8080, Status: catalog.StatusPassing})
	lb := e.resource("lb", `listen {{getv "/port"}}{{range service "web"}} {{.Address}}:{{.Port}}{{end}}`,
		"dest = "+q(e.dest("lb")), `prefix = "/app"`)
	other := e.resource("other", `{{getv "/port"}}`, "dest = "+q(e.dest("other")), `prefix = "/app"`)
	webKey := catalog.Query{Kind: catalog.KindService, Name: "web"}.Prefix()
	if got, want := lb.Prefixes(), []string{"/app", webKey}; !slices.Equal(got, want) {
		t.Fatalf("Prefixes() = %q, want %q", got, want)
	}
	if got, want := MergePrefixes([]*Resource{lb, other}), []string{"/app", webKey}; !slices.Equal(got, want) {
		t.Fatalf("MergePrefixes = %q, want %q", got, want)
	}
	e.start(e.fake, []*Resource{lb, other}, e.runOptions())
	waitFor(t, e.dest("lb"), "listen 80 10.0.0.1:8080")
	waitFor(t, e.dest("other"), "80")
	e.waitRenders(t, other, 1)

	// A second instance, then the first going critical.
	e.setService("web",
		catalog.Instance{Name: "web", ID: "w1", Node: "n1", Address: "10.0.0.1", Port: 8080, Status: catalog.StatusPassing},
		catalog.Instance{Name: "web", ID: "w2", Node: "n2", Address: "10.0.0.2", Port: 8080, Status: catalog.StatusPassing})
	if n := e.touchedAt(t, e.fake.Rev()); n != 1 {
		t.Errorf("adding an instance touched %d resources, want 1", n)
	}
	waitFor(t, e.dest("lb"), "listen 80 10.0.0.1:8080 10.0.0.2:8080")
	e.setService("web",
		catalog.Instance{Name: "web", ID: "w1", Node: "n1", Address: "10.0.0.1", Port: 8080, Status: catalog.StatusCritical},
		catalog.Instance{Name: "web", ID: "w2", Node: "n2", Address: "10.0.0.2", Port: 8080, Status: catalog.StatusPassing})
	if n := e.touchedAt(t, e.fake.Rev()); n != 1 {
		t.Errorf("a check going critical touched %d resources, want 1", n)
	}
	waitFor(t, e.dest("lb"), "listen 80 10.0.0.2:8080")
	// Another service's key touches nothing.
	e.setService("db")
	e.fake.Set("/app/port", "81")
	waitFor(t, e.dest("lb"), "listen 81 10.0.0.2:8080")
	e.waitRenders(t, other, 2)
	if n := e.renders.count(other); n != 2 {
		t.Errorf("other rendered %d times, want 2 (start-up and /app/port)", n)
	}
}

// TestLoadCatalogErrors checks that a malformed constant argument of a
// consul function fails the load, naming the file and the call.
func TestLoadCatalogErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.write("templates/bad.tmpl", `{{range service "web@"}}{{end}}`)
	_, err := Load(e.write("conf.d/bad.toml", "[template]\nsrc = \"bad.tmpl\"\ndest = "+q(e.dest("bad"))+"\n"), e.opts)
	if err == nil {
		t.Fatal("Load succeeded")
	}
	for _, want := range []string{"bad.toml", "template.src", `service: catalog: bad argument: "web@"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}
