package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/funcs"
)

// TestPlugins: "kvconf plugins" lists every registered backend and
// function set, one per line, with its description.
func TestPlugins(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"plugins"}, envMap(nil), &out, &errOut); code != exitOK {
		t.Fatalf("exit code = %d, stderr:\n%s", code, errOut.String())
	}
	var want []string
	for _, n := range backends.Names() {
		want = append(want, "backend\t"+n+"\t"+backendDescription(n))
	}
	for _, n := range funcs.Names() {
		want = append(want, "funcs\t"+n+"\t"+funcs.Description(n))
	}
	got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("plugins printed:\n%s\nwant:\n%s", out.String(), strings.Join(want, "\n"))
	}
	for _, line := range []string{"backend\tfile\tYAML or JSON files", "backend\tenv\t", "funcs\tconfd\t", "funcs\tsprig\t"} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("plugins output lacks %q", line)
		}
	}
	for _, l := range got {
		if f := strings.Split(l, "\t"); len(f) != 3 || f[2] == "" {
			t.Errorf("line %q is not KIND\\tNAME\\tDESCRIPTION", l)
		}
	}
	if code := run(t.Context(), []string{"plugins", "extra"}, envMap(nil), io.Discard, io.Discard); code != exitUsage {
		t.Errorf("plugins extra: exit code = %d, want %d", code, exitUsage)
	}
}

// namedDir is a confdir whose config file defines two file backends, one
// and two, each reading its own data file, and a default backend (the
// file backend reading a file that does not exist) that no resource uses.
type namedDir struct {
	dir, cfg, one, two, out string
}

func newNamedDir(t *testing.T, extraCfg string) namedDir {
	t.Helper()
	dir := t.TempDir()
	d := namedDir{
		dir: dir,
		one: writeFile(t, dir, "one.yaml", "v: one-a\n"),
		two: writeFile(t, dir, "two.yaml", "v: two-a\n"),
		out: filepath.Join(dir, "out"),
	}
	d.cfg = writeFile(t, dir, "kvconf.toml", fmt.Sprintf(`backend = "file"
file = [%q]
[backends.one]
type = "file"
file = [%q]
[backends.two]
type = "file"
file = [%q]
%s`, filepath.Join(dir, "absent.yaml"), d.one, d.two, extraCfg))
	writeFile(t, dir, "templates/t.tmpl", `{{getv "/v"}}`)
	for _, name := range []string{"one", "two"} {
		writeFile(t, dir, "conf.d/"+name+".toml", fmt.Sprintf("[template]\nsrc = \"t.tmpl\"\ndest = %q\nkeys = [\"/v\"]\nbackend = %q\n",
			filepath.Join(d.out, name), name))
	}
	return d
}

func (d namedDir) args(extra ...string) []string {
	return append([]string{"-config-file", d.cfg, "-confdir", d.dir}, extra...)
}

// TestNamedBackendsOnetime: two resources read two named backends; the
// default backend, which no resource uses, is never opened (opening it
// would fail: its file does not exist).
func TestNamedBackendsOnetime(t *testing.T) {
	t.Parallel()
	d := newNamedDir(t, "")
	var stderr bytes.Buffer
	if code := run(t.Context(), d.args("-onetime"), envMap(nil), io.Discard, &stderr); code != exitOK {
		t.Fatalf("exit code = %d, stderr:\n%s", code, stderr.String())
	}
	wantContent(t, filepath.Join(d.out, "one"), "one-a")
	wantContent(t, filepath.Join(d.out, "two"), "two-a")
}

// TestNamedBackendsOnetimeFailure: one backend failing fails its own
// resources only, the others render, and the report names the backend.
func TestNamedBackendsOnetimeFailure(t *testing.T) {
	t.Parallel()
	d := newNamedDir(t, "")
	if err := os.Remove(d.two); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	if code := run(t.Context(), d.args("-onetime"), envMap(nil), io.Discard, &stderr); code != exitFailed {
		t.Fatalf("exit code = %d, want %d, stderr:\n%s", code, exitFailed, stderr.String())
	}
	wantContent(t, filepath.Join(d.out, "one"), "one-a")
	wantMissing(t, filepath.Join(d.out, "two"))
	wantContains(t, "stderr", stderr.String(), "kvconf: backend two (file): ", "two.yaml")
}

// TestNamedBackendsDefault: a resource without a backend key reads the
// default backend, set by the flags, beside resources on named backends.
func TestNamedBackendsDefault(t *testing.T) {
	t.Parallel()
	d := newNamedDir(t, "")
	def := writeFile(t, d.dir, "default.yaml", "v: default\n")
	writeFile(t, d.dir, "conf.d/zero.toml", fmt.Sprintf("[template]\nsrc = \"t.tmpl\"\ndest = %q\nkeys = [\"/v\"]\n", filepath.Join(d.out, "zero")))
	var stderr bytes.Buffer
	if code := run(t.Context(), d.args("-onetime", "-file", def), envMap(nil), io.Discard, &stderr); code != exitOK {
		t.Fatalf("exit code = %d, stderr:\n%s", code, stderr.String())
	}
	wantContent(t, filepath.Join(d.out, "zero"), "default")
	wantContent(t, filepath.Join(d.out, "one"), "one-a")
}

// TestNamedBackendsEnv: a named env backend beside a named file backend.
// It sets an environment variable, so it does not run in parallel.
func TestNamedBackendsEnv(t *testing.T) {
	t.Setenv("KVCONF_TEST_NAMED_V", "from-env")
	d := newNamedDir(t, "[backends.vars]\ntype = \"env\"\n")
	writeFile(t, d.dir, "templates/env.tmpl", `{{getv "/kvconf/test/named/v"}}`)
	writeFile(t, d.dir, "conf.d/two.toml", fmt.Sprintf("[template]\nsrc = \"env.tmpl\"\ndest = %q\nkeys = [\"/kvconf/test/named/v\"]\nbackend = \"vars\"\n",
		filepath.Join(d.out, "two")))
	var stderr bytes.Buffer
	if code := run(t.Context(), d.args("-onetime"), envMap(nil), io.Discard, &stderr); code != exitOK {
		t.Fatalf("exit code = %d, stderr:\n%s", code, stderr.String())
	}
	wantContent(t, filepath.Join(d.out, "one"), "one-a")
	wantContent(t, filepath.Join(d.out, "two"), "from-env")
}

// TestNamedBackendsWatch: in -watch mode each named backend has its own
// watch: a change in either data file reaches its resource only.
func TestNamedBackendsWatch(t *testing.T) {
	t.Parallel()
	d := newNamedDir(t, "")
	var stderr lockedBuffer
	stop := startDaemon(t, command{getenv: envMap(nil), stdout: io.Discard, stderr: &stderr}, d.args("-watch", "-wait", "0s"))
	waitUntil(t, "one to be rendered", holds(filepath.Join(d.out, "one"), "one-a"))
	waitUntil(t, "two to be rendered", holds(filepath.Join(d.out, "two"), "two-a"))
	writeFile(t, d.dir, "two.yaml", "v: two-b\n")
	waitUntil(t, "two to follow its backend", holds(filepath.Join(d.out, "two"), "two-b"))
	writeFile(t, d.dir, "one.yaml", "v: one-b\n")
	waitUntil(t, "one to follow its backend", holds(filepath.Join(d.out, "one"), "one-b"))
	wantContent(t, filepath.Join(d.out, "two"), "two-b")
	if code := stop(); code != exitOK {
		t.Errorf("exit code = %d, want %d:\n%s", code, exitOK, stderr.String())
	}
	wantContains(t, "log", stderr.String(), "msg=running backends=\"one (file),two (file)\" watch=true")
}

// TestNamedBackendsDaemonOneDown: in daemon mode, a named backend that
// cannot be opened at start does not stop the others, and is retried
// until it opens.
func TestNamedBackendsDaemonOneDown(t *testing.T) {
	t.Parallel()
	d := newNamedDir(t, "")
	if err := os.Remove(d.two); err != nil {
		t.Fatal(err)
	}
	var stderr lockedBuffer
	stop := startDaemon(t, command{getenv: envMap(nil), stdout: io.Discard, stderr: &stderr}, d.args("-interval", "1"))
	waitUntil(t, "one to be rendered", holds(filepath.Join(d.out, "one"), "one-a"))
	waitUntil(t, "the failure to be logged", func() bool {
		s := stderr.String()
		return strings.Contains(s, `backend="two (file)"`) && (strings.Contains(s, `msg="backend down"`) || strings.Contains(s, `msg="backend open failed"`))
	})
	writeFile(t, d.dir, "two.yaml", "v: two-late\n")
	waitUntil(t, "two to be rendered once its backend opens", holds(filepath.Join(d.out, "two"), "two-late"))
	if code := stop(); code != exitOK {
		t.Errorf("exit code = %d, want %d:\n%s", code, exitOK, stderr.String())
	}
}

// TestNamedBackendsErrors: mistakes in [backends.NAME] tables and in the
// backend key of resources are usage errors naming where they are.
func TestNamedBackendsErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		extraCfg string
		resource string // conf.d/bad.toml, when set
		want     []string
	}{
		{name: "unknown option", extraCfg: "[backends.meta]\ntype = \"env\"\nnodes = [\"x\"]\n",
			want: []string{"kvconf.toml: [backends.meta]: key \"nodes\": not an option of backend \"env\""}},
		{name: "missing type", extraCfg: "[backends.meta]\nfile = [\"x\"]\n",
			want: []string{"kvconf.toml: [backends.meta]: key \"type\": want the backend's type"}},
		{name: "unknown type", extraCfg: "[backends.meta]\ntype = \"nope\"\n",
			want: []string{"kvconf.toml: [backends.meta]: key \"type\": unknown backend \"nope\" (built in: "}},
		{name: "unknown backend in resource", resource: "[template]\nsrc = \"t.tmpl\"\ndest = \"/tmp/x\"\nbackend = \"three\"\n",
			want: []string{`conf.d/bad.toml: template.backend: unknown backend "three" (configured: "one", "two")`}},
		{name: "unknown function set", resource: "[template]\nsrc = \"t.tmpl\"\ndest = \"/tmp/x\"\nfuncs = [\"confd\", \"mine\"]\n",
			want: []string{`conf.d/bad.toml: template.funcs: unknown function set "mine" (known: confd, consul, sprig)`}},
		{name: "function of a set not enabled", resource: "[template]\nsrc = \"t.tmpl\"\ndest = \"/tmp/x\"\nfuncs = [\"sprig\"]\n",
			want: []string{`conf.d/bad.toml: template.src: template: t.tmpl:1: function "getv" not defined (getv is in function set "confd", which template.funcs = ["sprig"] does not enable)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := newNamedDir(t, tt.extraCfg)
			if tt.resource != "" {
				writeFile(t, d.dir, "conf.d/bad.toml", tt.resource)
			}
			var stderr bytes.Buffer
			if code := run(t.Context(), d.args("-onetime"), envMap(nil), io.Discard, &stderr); code != exitUsage {
				t.Fatalf("exit code = %d, want %d, stderr:\n%s", code, exitUsage, stderr.String())
			}
			wantContains(t, "stderr", stderr.String(), tt.want...)
			wantMissing(t, d.out)
		})
	}
}
