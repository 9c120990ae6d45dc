package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// TestConsulServiceExample renders examples/consul (an nginx upstream and
// an HAProxy backend built from service "web") from a real agent, checks
// them with the real nginx and HAProxy (their check_cmd), and compares
// them with examples/consul/golden.
func TestConsulServiceExample(t *testing.T) {
	requireTool(t, "nginx", "apt-get install nginx (scripts/test-deps)")
	requireTool(t, "haproxy", "apt-get install haproxy (scripts/test-deps)")
	a := startConsul(t, false)
	cli := a.client(t, "")
	catRegister(t, cli, "web", "web-2", "10.0.0.2", 8080, []string{"v1", "canary"}, api.HealthPassing)
	catRegister(t, cli, "web", "web-1", "10.0.0.1", 8080, []string{"v1"}, api.HealthPassing)
	catRegister(t, cli, "web", "web-3", "10.0.0.3", 8080, []string{"v1"}, api.HealthCritical)
	catRegister(t, cli, "db", "db-1", "10.0.1.1", 5432, nil, api.HealthPassing)
	consulPut(t, cli, "/lb/web/listen_port", "8081")

	dir := t.TempDir()
	example := filepath.Join(repoRoot(t), "examples", "consul")
	copyTree(t, filepath.Join(example, "conf.d"), filepath.Join(dir, "conf.d"))
	copyTree(t, filepath.Join(example, "templates"), filepath.Join(dir, "templates"))
	cmd := exec.CommandContext(t.Context(), kvconfBin, "-onetime", "-config-file", os.DevNull,
		"-confdir", dir, "-backend", "consul", "-node", a.http)
	cmd.Dir = dir
	cmd.Env = append(execEnv("CONSUL_HTTP_ADDR=", "CONSUL_HTTP_TOKEN="), "PATH="+os.Getenv("PATH")+":/usr/sbin:/sbin")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kvconf: %v\n%s", err, out)
	}
	for _, name := range []string{"consul-nginx.conf", "consul-haproxy.cfg"} {
		got, err := os.ReadFile(filepath.Join(dir, "out", name))
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(filepath.Join(example, "golden", name))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("%s:\n%s\nwant (examples/consul/golden/%s):\n%s", name, got, name, want)
		}
	}
}

// TestConsulServiceWatch runs kvconf -watch on templates reading the
// catalog, and changes the catalog under it: instances registered and
// deregistered, a check going critical and back, a new service, a KV
// change beside them, and the agent restarting with an empty catalog.
func TestConsulServiceWatch(t *testing.T) {
	a := startConsul(t, false)
	cli := a.client(t, "")
	catRegister(t, cli, "web", "web-1", "10.0.0.1", 8080, []string{"v1"}, api.HealthPassing)

	dir := t.TempDir()
	web, all := filepath.Join(dir, "out", "web"), filepath.Join(dir, "out", "all")
	files := map[string]string{
		// A service named by a constant: one blocking query on its health.
		"conf.d/web.toml":    "[template]\nsrc = \"web.tmpl\"\nkeys = [\"/lb\"]\ndest = " + strconv.Quote(web) + "\n",
		"templates/web.tmpl": `{{getv "/lb/port" "80"}}:{{range service "web"}} {{.ID}}={{.Address}}:{{.Port}}{{end}}`,
		// Services named while rendering: every service is watched.
		"conf.d/all.toml":    "[template]\nsrc = \"all.tmpl\"\nkeys = [\"/nothing\"]\ndest = " + strconv.Quote(all) + "\n",
		"templates/all.tmpl": `{{range services}}{{if ne .Name "consul"}}{{.Name}}:{{range service .Name "any"}} {{.ID}}/{{.Status}}{{end}};{{end}}{{end}}`,
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := start(t, []string{kvconfBin, "-watch", "-config-file", os.DevNull, "-confdir", dir,
		"-backend", "consul", "-node", a.http, "-log-level", "debug"}, nil, "CONSUL_HTTP_ADDR=", "CONSUL_HTTP_TOKEN=")
	waitFile := func(path, want string) {
		t.Helper()
		deadline := time.Now().Add(watchTimeout)
		for {
			b, err := os.ReadFile(path)
			if err == nil && string(b) == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s = %q (%v) after %s, want %q\nkvconf stderr:\n%s", filepath.Base(path), b, err, watchTimeout, want, p.stderr)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFile(web, "80: web-1=10.0.0.1:8080")
	waitFile(all, "web: web-1/passing;")

	steps := []struct {
		name     string
		change   func()
		web, all string
	}{
		{"second instance", func() {
			catRegister(t, cli, "web", "web-2", "", 9090, nil, api.HealthPassing)
		}, "80: web-1=10.0.0.1:8080 web-2=127.0.0.1:9090", "web: web-1/passing web-2/passing;"},
		{"check critical", func() { catCheck(t, cli, "web-1", api.HealthCritical) },
			"80: web-2=127.0.0.1:9090", "web: web-1/critical web-2/passing;"},
		{"check warning", func() { catCheck(t, cli, "web-1", api.HealthWarning) },
			"80: web-2=127.0.0.1:9090", "web: web-1/warning web-2/passing;"},
		{"check passing", func() { catCheck(t, cli, "web-1", api.HealthPassing) },
			"80: web-1=10.0.0.1:8080 web-2=127.0.0.1:9090", "web: web-1/passing web-2/passing;"},
		{"deregister", func() {
			if err := cli.Agent().ServiceDeregister("web-2"); err != nil {
				t.Fatal(err)
			}
		}, "80: web-1=10.0.0.1:8080", "web: web-1/passing;"},
		{"new service", func() {
			catRegister(t, cli, "api", "api-1", "10.0.2.1", 7000, nil, api.HealthCritical)
		}, "80: web-1=10.0.0.1:8080", "api: api-1/critical;web: web-1/passing;"},
		{"kv beside", func() { consulPut(t, cli, "/lb/port", "81") },
			"81: web-1=10.0.0.1:8080", "api: api-1/critical;web: web-1/passing;"},
		{"agent restart", func() {
			// Let kvconf's blocking queries reach the agent first (they
			// are paced 100-125 ms apart): a restart cuts them and
			// kvconf notices at once. A restart between two queries
			// is noticed only when the new agent answers the next
			// one, at the end of its wait time (one minute).
			time.Sleep(500 * time.Millisecond)
			a.restart(t)
		}, "80:", ""},
		{"registered again", func() {
			cli = a.client(t, "")
			catRegister(t, cli, "web", "web-9", "10.0.0.9", 8080, nil, api.HealthPassing)
		}, "80: web-9=10.0.0.9:8080", "web: web-9/passing;"},
	}
	for _, s := range steps {
		s.change()
		waitFile(web, s.web)
		waitFile(all, s.all)
	}
	if strings.Contains(p.stderr.String(), "panic") {
		t.Errorf("kvconf stderr mentions a panic:\n%s", p.stderr)
	}
}
