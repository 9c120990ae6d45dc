package test

import (
	"debug/elf"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kvconf/kvconf/backends/metadata/metadatatest"
)

// confdData is the data of confd's integration scripts
// (integration/*/test.sh), flattened: every backend is loaded with it.
var confdData = map[string]string{
	"/key":                      "foobar",
	"/database/host":            "127.0.0.1",
	"/database/password":        "p@sSw0rd",
	"/database/port":            "3306",
	"/database/username":        "confd",
	"/upstream/app1":            "10.0.1.10:8080",
	"/upstream/app2":            "10.0.1.11:8080",
	"/prefix/database/host":     "127.0.0.1",
	"/prefix/database/password": "p@sSw0rd",
	"/prefix/database/port":     "3306",
	"/prefix/database/username": "confd",
	"/prefix/upstream/app1":     "10.0.1.10:8080",
	"/prefix/upstream/app2":     "10.0.1.11:8080",
}

// confdDir writes a confdir shaped like confd's integration/confdir: a
// resource reading keys, one iterating over a directory and one with a
// resource prefix; want maps each dest to the content it must get.
func confdDir(t *testing.T) (dir string, want map[string]string) {
	t.Helper()
	dir = t.TempDir()
	out := filepath.Join(dir, "out")
	files := map[string]string{
		"conf.d/basic.toml": "[template]\nsrc = \"basic.conf.tmpl\"\ndest = \"" + filepath.Join(out, "basic.conf") +
			"\"\nkeys = [\"/key\", \"/database/host\", \"/database/password\", \"/database/port\", \"/database/username\"]\n",
		"templates/basic.conf.tmpl": "key: {{getv \"/key\"}}\n[database]\nhost={{getv \"/database/host\"}}\npassword={{getv \"/database/password\"}}\n" +
			"port={{getv \"/database/port\"}}\nusername={{getv \"/database/username\"}}\n",
		"conf.d/iteration.toml": "[template]\nsrc = \"iteration.conf.tmpl\"\ndest = \"" + filepath.Join(out, "iteration.conf") +
			"\"\nkeys = [\"/upstream\"]\n",
		"templates/iteration.conf.tmpl": "upstream app_servers {\n{{range getvs \"/upstream/*\"}}    server {{.}};\n{{end}}}\n",
		"conf.d/prefix.toml": "[template]\nprefix = \"/prefix\"\nsrc = \"prefix.conf.tmpl\"\ndest = \"" + filepath.Join(out, "prefix.conf") +
			"\"\nkeys = [\"/database\", \"/upstream\"]\n",
		"templates/prefix.conf.tmpl": "[database]\nhost={{getv \"/database/host\"}}\nusername={{getv \"/database/username\"}}\n" +
			"{{range gets \"/upstream/*\"}}{{base .Key}}={{.Value}}\n{{end}}",
	}
	for f, content := range files {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	db := "[database]\nhost=127.0.0.1\n"
	return dir, map[string]string{
		filepath.Join(out, "basic.conf"):     "key: foobar\n" + db + "password=p@sSw0rd\nport=3306\nusername=confd\n",
		filepath.Join(out, "iteration.conf"): "upstream app_servers {\n    server 10.0.1.10:8080;\n    server 10.0.1.11:8080;\n}\n",
		filepath.Join(out, "prefix.conf"):    db + "username=confd\napp1=10.0.1.10:8080\napp2=10.0.1.11:8080\n",
	}
}

// runConfdStyle runs the kvconf binary as confd's integration scripts run
// confd: --onetime --log-level debug --confdir DIR, then the backend's
// flags, with and without --watch, and checks the dest files each time.
// The config file is an empty one (KVCONF_CONFIG_FILE), so that a
// /etc/confd/confd.toml of the machine plays no part.
func runConfdStyle(t *testing.T, backendArgs ...string) {
	t.Helper()
	for _, watch := range []bool{true, false} {
		name := "without --watch"
		if watch {
			name = "with --watch"
		}
		t.Run(name, func(t *testing.T) {
			dir, want := confdDir(t)
			empty := filepath.Join(dir, "confd.toml")
			if err := os.WriteFile(empty, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			args := append([]string{"--onetime", "--log-level", "debug", "--confdir", dir}, backendArgs...)
			if watch {
				args = append(args, "--watch")
			}
			cmd := exec.CommandContext(t.Context(), kvconfBin, args...)
			cmd.Env = append(os.Environ(), "KVCONF_CONFIG_FILE="+empty, "CONSUL_HTTP_ADDR=", "CONSUL_HTTP_TOKEN=")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("kvconf %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			for p, w := range want {
				got, err := os.ReadFile(p)
				if err != nil {
					t.Errorf("%s: %v\n%s", p, err, out)
					continue
				}
				if string(got) != w {
					t.Errorf("%s = %q, want %q", filepath.Base(p), got, w)
				}
			}
			warned := strings.Contains(string(out), `msg="ignored with -onetime" settings="flag -watch"`)
			if warned != watch {
				t.Errorf("warning that --watch was ignored: %t, want %t:\n%s", warned, watch, out)
			}
		})
	}
}

// TestConfdCompatEtcd: confd's etcdv3 script, against embedded etcd,
// under both of the backend's names, and with a global --prefix.
func TestConfdCompatEtcd(t *testing.T) {
	m := startEtcd(t, nil)
	cli := rawClient(t, clientv3.Config{Endpoints: urls(m)})
	for k, v := range confdData {
		put(t, cli, k, v)
		put(t, cli, "/global"+k, v)
	}
	for _, name := range []string{"etcdv3", "etcd"} {
		t.Run(name, func(t *testing.T) {
			runConfdStyle(t, "--backend", name, "--node", urls(m)[0])
		})
	}
	t.Run("prefix", func(t *testing.T) {
		runConfdStyle(t, "--backend", "etcdv3", "--node", urls(m)[0], "--prefix", "/global")
	})
}

// TestConfdCompatConsul: confd's consul script, against a real Consul
// agent.
func TestConfdCompatConsul(t *testing.T) {
	a := startConsul(t, false)
	cli := a.client(t, "")
	consulLoad(t, cli, confdData)
	runConfdStyle(t, "--backend", "consul", "--node", a.http)
}

// TestConfdCompatFile: confd's file script, with its two directories.
func TestConfdCompatFile(t *testing.T) {
	dir := t.TempDir()
	for p, content := range map[string]string{
		"backends1/1.yaml": "key: foobar\ndatabase:\n  host: 127.0.0.1\n  password: p@sSw0rd\n  port: \"3306\"\n  username: confd\n",
		"backends1/2.yaml": "upstream:\n  app1: 10.0.1.10:8080\n  app2: 10.0.1.11:8080\n",
		"backends2/1.yaml": "nested:\n  app1: 10.0.1.10:8080\n  app2: 10.0.1.11:8080\n",
		"backends2/2.yaml": "prefix:\n  database:\n    host: 127.0.0.1\n    password: p@sSw0rd\n    port: \"3306\"\n    username: confd\n" +
			"  upstream:\n    app1: 10.0.1.10:8080\n    app2: 10.0.1.11:8080\n",
	} {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	runConfdStyle(t, "--backend", "file", "--file", filepath.Join(dir, "backends1")+"/", "--file", filepath.Join(dir, "backends2")+"/")
}

// TestConfdCompatRancher: confd's rancher script, against the
// rancher-metadata-compatible server of metadatatest: the API version in
// --prefix, the node without a scheme.
func TestConfdCompatRancher(t *testing.T) {
	s := metadatatest.NewServer(metadatatest.Options{Path: "/2015-07-25"})
	t.Cleanup(s.Close)
	doc := map[string]any{}
	for k, v := range confdData {
		m := doc
		segs := strings.Split(strings.TrimPrefix(k, "/"), "/")
		for _, seg := range segs[:len(segs)-1] {
			next, ok := m[seg].(map[string]any)
			if !ok {
				next = map[string]any{}
				m[seg] = next
			}
			m = next
		}
		m[segs[len(segs)-1]] = v
	}
	// rancher-metadata answers port as a number, as confd's script has it.
	doc["database"].(map[string]any)["port"] = json.Number("3306")
	data, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetJSON(data); err != nil {
		t.Fatal(err)
	}
	node := strings.TrimPrefix(strings.TrimSuffix(s.URL(), "/2015-07-25"), "http://")
	runConfdStyle(t, "--prefix", "/2015-07-25", "--backend", "rancher", "--node", node)
}

// TestBuildStaticVersion (issues 13.9, 13.10): make build makes a static
// binary (no ELF interpreter, so it runs on scratch or alpine) that
// prints the version it was given, and a build without one prints the
// VCS revision.
func TestBuildStaticVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds kvconf with CGO_ENABLED=0: slow the first time; skipped with -short")
	}
	makeBin := requireTool(t, "make", "apt-get install make")
	bin := filepath.Join(t.TempDir(), "kvconf")
	cmd := exec.CommandContext(t.Context(), makeBin, "build", "BIN="+bin, "VERSION=v9.9.9-test")
	cmd.Dir = repoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make build: %v\n%s", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }() // read-only
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s has an ELF interpreter: not a static binary", bin)
		}
	}
	out, err := exec.CommandContext(t.Context(), bin, "-version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "kvconf v9.9.9-test (") {
		t.Errorf("-version: %q, %v; want kvconf v9.9.9-test (...)", out, err)
	}
	// Without VERSION, the revision of the checkout (stamped by make
	// build itself, whatever GOFLAGS=-buildvcs says).
	if _, err := exec.LookPath("git"); err != nil {
		return
	}
	rev := exec.CommandContext(t.Context(), "git", "rev-parse", "HEAD")
	rev.Dir = repoRoot(t)
	head, err := rev.Output()
	if err != nil {
		t.Logf("not a git checkout (%v): no revision to check", err)
		return
	}
	cmd = exec.CommandContext(t.Context(), makeBin, "build", "BIN="+bin, "VERSION=")
	cmd.Dir = repoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make build: %v\n%s", err, out)
	}
	out, err = exec.CommandContext(t.Context(), bin, "-version").CombinedOutput()
	if want := "rev " + string(head[:12]) + ", "; err != nil || !strings.Contains(string(out), want) {
		t.Errorf("-version: %q, %v; want it to contain %q", out, err, want)
	}
}
