package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/backends/backendtest"
	"github.com/kvconf/kvconf/resource"
)

// The registry is process-wide: the test backend that declares its own
// flags is registered once, under a name no real backend takes.
func init() {
	backends.Register("kvconf-test-flags", func() backends.Config { return new(flagsConfig) })
}

// flagsConfig is a backend, not in cli/'s option table, that declares a
// flag of its own: a new backend needs no edit in cli/.
type flagsConfig struct {
	Greeting string   `toml:"greeting_text"`
	Extra    []string `toml:"extras"`
}

func (c *flagsConfig) Flags() []backends.Option {
	return []backends.Option{
		{Flag: "kvconf-test-greeting", Key: "greeting_text", Usage: "the greeting of the test backend"},
		{Flag: "kvconf-test-extra", Key: "extras", Kind: backends.ListOption, Usage: "extra keys of the test backend", Env: []string{"KVCONF_TEST_CONFD_EXTRA"}},
	}
}

func (c *flagsConfig) Description() string { return "a test backend that declares flags" }

func (c *flagsConfig) Open(context.Context) (backends.Backend, error) {
	f := backendtest.NewFake()
	f.Set("/greeting", c.Greeting)
	for _, e := range c.Extra {
		f.Set("/extra/"+e, e)
	}
	return f, nil
}

// greetingDir is a confdir with one resource that renders /greeting to
// out/g from the default backend.
func greetingDir(t *testing.T) (dir, out string) {
	t.Helper()
	dir = t.TempDir()
	out = filepath.Join(dir, "out", "g")
	writeFile(t, dir, "templates/g.tmpl", `{{getv "/greeting"}}{{range gets "/extra/*"}},{{.Value}}{{end}}`)
	writeFile(t, dir, "conf.d/g.toml", fmt.Sprintf("[template]\nsrc = \"g.tmpl\"\ndest = %q\nkeys = [\"/greeting\", \"/extra\"]\n", out))
	return dir, out
}

// TestBackendDeclaresFlags (issue 14.5): a backend's declared options
// are flags, environment variables and config file keys of the command
// line, go to the backend, and are listed in -help under the backend.
func TestBackendDeclaresFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		env  map[string]string
		file string
		want string
	}{
		{name: "flags", args: []string{"-kvconf-test-greeting", "hello", "-kvconf-test-extra", "a", "-kvconf-test-extra", "b"}, want: "hello,a,b"},
		{name: "environment", env: map[string]string{"KVCONF_KVCONF_TEST_GREETING": "hi", "KVCONF_TEST_CONFD_EXTRA": "x,y"}, want: "hi,x,y"},
		{name: "config file", file: "greeting_text = \"hey\"\nextras = [\"z\"]\n", want: "hey,z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir, out := greetingDir(t)
			cfg := os.DevNull
			if tt.file != "" {
				cfg = writeFile(t, dir, "kvconf.toml", tt.file)
			}
			args := append([]string{"-config-file", cfg, "-confdir", dir, "-backend", "kvconf-test-flags", "-onetime"}, tt.args...)
			var stderr bytes.Buffer
			if code := run(t.Context(), args, envMap(tt.env), io.Discard, &stderr); code != exitOK {
				t.Fatalf("exit code %d, stderr:\n%s", code, stderr.String())
			}
			wantContent(t, out, tt.want)
		})
	}

	var help bytes.Buffer
	if code := run(t.Context(), []string{"help"}, envMap(nil), &help, io.Discard); code != exitOK {
		t.Fatalf("help: exit code %d", code)
	}
	group := helpGroup(t, help.String(), "kvconf-test-flags")
	for _, want := range []string{"-kvconf-test-greeting string", "the greeting of the test backend", "-kvconf-test-extra value", "also KVCONF_TEST_CONFD_EXTRA"} {
		if !strings.Contains(group, want) {
			t.Errorf("help's kvconf-test-flags group lacks %q:\n%s", want, group)
		}
	}
}

// helpGroup returns the lines of the help text under "name:" (a
// backend's group), up to the next blank line.
func helpGroup(t *testing.T, help, name string) string {
	t.Helper()
	for _, block := range strings.Split(help, "\n\n") {
		if head, _, _ := strings.Cut(block, "\n"); slices.Contains(strings.Split(strings.TrimSuffix(head, ":"), ", "), name) {
			return block
		}
	}
	t.Fatalf("help has no group %q:\n%s", name, help)
	return ""
}

// TestHelpListsCompiledInBackends (issue 13.7): -help lists the options
// of the compiled-in backends, grouped by backend, and none of confd's
// backends that are not built in; each of those gets one line saying so
// and how to add it. Their flags are recognised only to say the same.
func TestHelpListsCompiledInBackends(t *testing.T) {
	t.Parallel()
	var help bytes.Buffer
	if code := run(t.Context(), []string{"-h"}, envMap(nil), io.Discard, &help); code != exitOK {
		t.Fatalf("-h: exit code %d", code)
	}
	text := help.String()
	for _, name := range backends.Names() {
		opts, err := backends.Flags(name)
		if err != nil {
			t.Fatal(err)
		}
		group := helpGroup(t, text, name)
		for _, o := range opts {
			if !regexp.MustCompile(`(?m)^  -` + regexp.QuoteMeta(o.Flag) + `\b`).MatchString(group) {
				t.Errorf("help's group of %s lacks -%s:\n%s", name, o.Flag, group)
			}
		}
	}
	if !strings.Contains(helpGroup(t, text, "consul"), "-consul-datacenter string") {
		t.Errorf("the consul group lacks -consul-datacenter")
	}
	if strings.Contains(helpGroup(t, text, "file"), "-node") {
		t.Errorf("the file group lists -node")
	}
	lacking := lackingBackends()
	for _, name := range lacking {
		line := fmt.Sprintf("  %s: confd's %s backend is not built into this kvconf: add it as a plugin", name, name)
		if p, _ := findPlugin(name, pluginDirs(nil), os.Getenv("PATH")); p != "" {
			line = fmt.Sprintf("  %s: confd's %s backend is the plugin %s, which -backend %s runs", name, name, p, name)
		}
		if strings.Count(text, line) != 1 {
			t.Errorf("help has no one line %q:\n%s", line, text)
		}
	}
	// The flags only confd's missing backends take are not in the help.
	for _, b := range confdBackends {
		if !slices.Contains(lacking, b.name) {
			continue
		}
		for _, f := range b.flags {
			if strings.Contains(text, "  -"+f+" ") {
				t.Errorf("help lists -%s, a flag of confd's %s backend, which is not built in", f, b.name)
			}
			var stderr bytes.Buffer
			args := []string{"-config-file", os.DevNull, "-confdir", t.TempDir(), "-onetime", "-" + f, "x"}
			if code := run(t.Context(), args, envMap(nil), io.Discard, &stderr); code != exitUsage {
				t.Errorf("-%s: exit code %d, want %d", f, code, exitUsage)
			}
			if want := "kvconf: flag -" + f + ": confd's " + b.name + " backend is not built into this kvconf: add it as a plugin"; !strings.Contains(stderr.String(), want) {
				t.Errorf("-%s: stderr %q, want %q", f, stderr.String(), want)
			}
		}
	}
	if len(lacking) == 0 {
		t.Log("every confd backend is built in: no line to check")
	}
}

// TestHelpCommand (issue 13.10): "kvconf help" and "kvconf help exec"
// print the usage on stdout and exit 0.
func TestHelpCommand(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want []string
		code int
	}{
		{args: []string{"help"}, want: []string{"Usage: kvconf [flags]", "-onetime", "Backend options"}},
		{args: []string{"help", "exec"}, want: []string{"Usage: kvconf exec [flags] -- COMMAND", "-reload-signal", "-wait-backend", "-watch"}},
		{args: []string{"help", "nope"}, code: exitUsage},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		if code := run(t.Context(), tt.args, envMap(nil), &stdout, &stderr); code != tt.code {
			t.Errorf("%q: exit code %d, want %d", tt.args, code, tt.code)
		}
		for _, w := range tt.want {
			if !strings.Contains(stdout.String(), w) {
				t.Errorf("%q: stdout lacks %q:\n%s", tt.args, w, stdout.String())
			}
		}
	}
}

// TestFormatVersion (issue 13.10): -version prints the release or module
// version, the VCS revision and time, and the Go version.
func TestFormatVersion(t *testing.T) {
	t.Parallel()
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/kvconf/kvconf", Version: "v0.0.0-20261206020000-92028de1a2b3"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "92028de1a2b3c4d5e6f708192a3b4c5d6e7f8091"},
			{Key: "vcs.time", Value: "2026-12-06T02:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		}}
	tests := []struct {
		release string
		bi      *debug.BuildInfo
		want    string
	}{
		{bi: bi, want: "v0.0.0-20261206020000-92028de1a2b3 (rev 92028de1a2b3, 2026-12-06T02:00:00Z, modified; go1.26.8)"},
		{release: "v1.2.0", bi: bi, want: "v1.2.0 (rev 92028de1a2b3, 2026-12-06T02:00:00Z, modified; go1.26.8)"},
		{bi: &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}}, want: "(devel) (go1.26.8)"},
		{want: "(devel)"},
	}
	for _, tt := range tests {
		if got := formatVersion(tt.release, tt.bi); got != tt.want {
			t.Errorf("formatVersion(%q, ...) = %q, want %q", tt.release, got, tt.want)
		}
	}
}

// TestOnetimeWinsOverWatch (issue 13.1): as with confd, -onetime with
// -watch or -interval renders once and exits 0, with one warning.
func TestOnetimeWinsOverWatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{name: "watch", args: []string{"-watch"}, want: `settings="flag -watch"`},
		{name: "interval", args: []string{"-interval", "5"}, want: `settings="flag -interval"`},
		{name: "both, confd style", args: []string{"--watch", "--interval", "5"}, want: `settings="flag -watch, flag -interval"`},
		{name: "watch from the environment", env: map[string]string{"KVCONF_WATCH": "true"}, want: `settings="environment KVCONF_WATCH"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := newDaemonDir(t)
			args := append([]string{"-config-file", os.DevNull, "-confdir", d.dir, "-backend", "file", "-file", d.data, "--onetime"}, tt.args...)
			var stderr bytes.Buffer
			done := make(chan int, 1)
			go func() { done <- run(t.Context(), args, envMap(tt.env), io.Discard, &stderr) }()
			select {
			case code := <-done:
				if code != exitOK {
					t.Fatalf("exit code %d, stderr:\n%s", code, stderr.String())
				}
			case <-time.After(30 * time.Second):
				t.Fatal("kvconf -onetime with -watch did not exit")
			}
			wantContent(t, filepath.Join(d.out, "a"), "one")
			if n := strings.Count(stderr.String(), "level=WARN"); n != 1 {
				t.Errorf("%d warnings, want 1:\n%s", n, stderr.String())
			}
			if want := `msg="ignored with -onetime" ` + tt.want; !strings.Contains(stderr.String(), want) {
				t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
			}
		})
	}
}

// TestLoadTyped (issue 14.4): flags, environment and config file are
// parsed once into the typed configuration, with the daemon's rules.
func TestLoadTyped(t *testing.T) {
	t.Parallel()
	cfgFile := writeFile(t, t.TempDir(), "kvconf.toml", "wait = \"2s\"\ninterval = 30\n")
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want func(c *config) bool
		what string
	}{
		{name: "wait from the file", want: func(c *config) bool { return c.Wait == resource.Wait{Min: 2 * time.Second, Max: 8 * time.Second} },
			what: "Wait 2s:8s"},
		{name: "wait from the environment", env: map[string]string{"KVCONF_WAIT": "1s:3s"},
			want: func(c *config) bool { return c.Wait == resource.Wait{Min: time.Second, Max: 3 * time.Second} }, what: "Wait 1s:3s"},
		{name: "watch keeps an interval set", args: []string{"-watch"},
			want: func(c *config) bool { return c.Watch && c.Interval == 30*time.Second }, what: "Watch, Interval 30s"},
		{name: "onetime drops watch", args: []string{"-watch", "-onetime"},
			want: func(c *config) bool { return c.Onetime && !c.Watch && len(c.Ignored) == 2 }, what: "Onetime, no Watch, 2 ignored"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fs := newFlagSet("test")
			if err := fs.Parse(append([]string{"-config-file", cfgFile}, tt.args...)); err != nil {
				t.Fatal(err)
			}
			c, err := load(fs, envMap(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			if !tt.want(c) {
				t.Errorf("got %+v, want %s", c, tt.what)
			}
		})
	}
	// -watch alone: no reconciliation.
	fs := newFlagSet("test")
	if err := fs.Parse([]string{"-config-file", os.DevNull, "-watch"}); err != nil {
		t.Fatal(err)
	}
	c, err := load(fs, envMap(nil))
	if err != nil || c.Interval != 0 || c.runOptions(nil).Interval != 0 {
		t.Errorf("-watch alone: %+v, %v; want Interval 0", c, err)
	}
}

// TestDefaultBackendNamed (issue 13.4): -backend and the config file's
// backend key may name a [backends.NAME] table; resources without a
// backend key and those naming it share that one backend.
func TestDefaultBackendNamed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		top  string // the config file's top-level keys
		args []string
	}{
		{name: "config file", top: "backend = \"p\"\n"},
		{name: "flag", args: []string{"-backend", "p"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			data := writeFile(t, dir, "data.yaml", "v: from-p\n")
			cfg := writeFile(t, dir, "kvconf.toml", tt.top+fmt.Sprintf("[backends.p]\ntype = \"file\"\nfile = [%q]\n", data))
			writeFile(t, dir, "templates/t.tmpl", `{{getv "/v"}}`)
			writeFile(t, dir, "conf.d/a.toml", fmt.Sprintf("[template]\nsrc = \"t.tmpl\"\ndest = %q\nkeys = [\"/v\"]\n", filepath.Join(dir, "out", "a")))
			writeFile(t, dir, "conf.d/b.toml", fmt.Sprintf("[template]\nsrc = \"t.tmpl\"\ndest = %q\nkeys = [\"/v\"]\nbackend = \"p\"\n", filepath.Join(dir, "out", "b")))
			var stderr bytes.Buffer
			args := append([]string{"-config-file", cfg, "-confdir", dir, "-onetime"}, tt.args...)
			if code := run(t.Context(), args, envMap(nil), io.Discard, &stderr); code != exitOK {
				t.Fatalf("exit code %d, stderr:\n%s", code, stderr.String())
			}
			wantContent(t, filepath.Join(dir, "out", "a"), "from-p")
			wantContent(t, filepath.Join(dir, "out", "b"), "from-p")
		})
	}

	// One backend, not two: the daemon's log names it once.
	dir := t.TempDir()
	data := writeFile(t, dir, "data.yaml", "v: one\n")
	cfg := writeFile(t, dir, "kvconf.toml", fmt.Sprintf("backend = \"p\"\n[backends.p]\ntype = \"file\"\nfile = [%q]\n", data))
	writeFile(t, dir, "templates/t.tmpl", `{{getv "/v"}}`)
	writeFile(t, dir, "conf.d/a.toml", fmt.Sprintf("[template]\nsrc = \"t.tmpl\"\ndest = %q\nkeys = [\"/v\"]\n", filepath.Join(dir, "out", "a")))
	writeFile(t, dir, "conf.d/b.toml", fmt.Sprintf("[template]\nsrc = \"t.tmpl\"\ndest = %q\nkeys = [\"/v\"]\nbackend = \"p\"\n", filepath.Join(dir, "out", "b")))
	var logs lockedBuffer
	stop := startDaemon(t, command{getenv: envMap(nil), stdout: io.Discard, stderr: &logs}, []string{"-config-file", cfg, "-confdir", dir, "-watch", "-wait", "0s"})
	waitUntil(t, "a to be rendered", holds(filepath.Join(dir, "out", "a"), "one"))
	writeFile(t, dir, "data.yaml", "v: two\n")
	waitUntil(t, "a to follow", holds(filepath.Join(dir, "out", "a"), "two"))
	waitUntil(t, "b to follow", holds(filepath.Join(dir, "out", "b"), "two"))
	if code := stop(); code != exitOK {
		t.Errorf("exit code %d:\n%s", code, logs.String())
	}
	wantContains(t, "log", logs.String(), `msg=running backends="p (file)" watch=true`)
}

// TestUnknownBackendErrors (issue 13.4): an unknown backend lists what is
// available, compiled in and named, and never hints at a missing import;
// a confd backend that is not built in says how to add it; backend
// options beside a named default backend are an error naming them.
func TestUnknownBackendErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	data := writeFile(t, dir, "data.yaml", "v: 1\n")
	cfg := writeFile(t, dir, "kvconf.toml", fmt.Sprintf("[backends.p]\ntype = \"file\"\nfile = [%q]\n", data))
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{name: "unknown", args: []string{"-backend", "nope"},
			want: `kvconf: flag -backend: unknown backend "nope" (built in: ` + strings.Join(backends.Names(), ", ") + "; in the config file: p; no plugin kvconf-backend-nope in -plugin-dir or PATH, see docs/plugins.md)\n"},
		{name: "unknown from the environment", env: map[string]string{"KVCONF_BACKEND": "nope"},
			want: `kvconf: environment KVCONF_BACKEND: unknown backend "nope" (built in: `},
		{name: "options beside a named default", args: []string{"-backend", "p", "-file", data},
			want: "kvconf: flag -backend: the default backend is the config file's [backends.p] table: set its options there (flag -file)\n"},
	}
	if lacking := lackingBackends(); len(lacking) > 0 {
		tests = append(tests, struct {
			name string
			args []string
			env  map[string]string
			want string
		}{name: "confd's, not built in", args: []string{"-backend", lacking[0]},
			want: fmt.Sprintf(`kvconf: flag -backend: unknown backend %q: confd's %s backend is not built into this kvconf: add it as a plugin, an executable kvconf-backend-%s that -backend %s finds in -plugin-dir (default: kvconf's directory, /usr/lib/kvconf/plugins) or PATH, written with the plugin SDK (package backends/plugin/sdk), or build a kvconf with it (docs/plugins.md) (built in: `,
				lacking[0], lacking[0], lacking[0], lacking[0])})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stderr bytes.Buffer
			args := append([]string{"-config-file", cfg, "-confdir", dir, "-onetime"}, tt.args...)
			if code := run(t.Context(), args, envMap(tt.env), io.Discard, &stderr); code != exitUsage {
				t.Errorf("exit code %d, want %d", code, exitUsage)
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("stderr:\n%s\nwant it to contain:\n%s", stderr.String(), tt.want)
			}
			if strings.Contains(stderr.String(), "backends/all") || strings.Contains(stderr.String(), "import") {
				t.Errorf("stderr hints at imports: %s", stderr.String())
			}
		})
	}
}

// TestBackendsUnknown (issue 13.4): "kvconf backends NAME" of an
// unknown name lists the compiled-in backends, without an import hint.
func TestBackendsUnknown(t *testing.T) {
	t.Parallel()
	var stderr bytes.Buffer
	if code := run(t.Context(), []string{"backends", "nope"}, envMap(nil), io.Discard, &stderr); code != exitUsage {
		t.Errorf("exit code %d, want %d", code, exitUsage)
	}
	if want := `kvconf backends: unknown backend "nope" (built in: ` + strings.Join(backends.Names(), ", ") + "; no plugin kvconf-backend-nope in -plugin-dir or PATH, see docs/plugins.md)\n"; stderr.String() != want {
		t.Errorf("stderr %q, want %q", stderr.String(), want)
	}
}

// TestBackendErrorsNameTheSetting (issue 13.11): a backend's complaint
// about its options reads once per layer and names the flag, variable or
// config file key the user set, or how to set the missing one.
func TestBackendErrorsNameTheSetting(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		env  map[string]string
		file string // the config file
		want string // stderr, whole
	}{
		{name: "missing option", args: []string{"-backend", "file"},
			want: "kvconf: backend file: no file given (set with -file, KVCONF_FILE or key file in the config file)\n"},
		{name: "bad flag", args: []string{"-backend", "etcd", "-scheme", "ftp"},
			want: "kvconf: backend etcd: scheme \"ftp\" is not http or https (flag -scheme)\n"},
		{name: "bad variable", args: []string{"-backend", "consul"}, env: map[string]string{"KVCONF_SCHEME": "ftp"},
			want: "kvconf: backend consul: scheme \"ftp\" is not http or https (environment KVCONF_SCHEME)\n"},
		{name: "bad config key", file: "backend = \"etcd\"\nscheme = \"ftp\"\n",
			want: "kvconf: backend etcd: scheme \"ftp\" is not http or https (config file key scheme)\n"},
		{name: "two settings", args: []string{"-backend", "etcd", "-node", "a:1", "-srv-domain", "example.com"},
			want: "kvconf: backend etcd: nodes and DNS SRV (srv_domain, srv_record) both given: use one (flag -node; flag -srv-domain)\n"},
		{name: "named table", file: "[backends.f]\ntype = \"file\"\nfilter = \"[\"\nfile = [\"x\"]\n",
			want: "kvconf: config file CFG: [backends.f]: filter \"[\": syntax error in pattern (key \"filter\")\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := os.DevNull
			if tt.file != "" {
				cfg = writeFile(t, t.TempDir(), "kvconf.toml", tt.file)
			}
			var stderr bytes.Buffer
			args := append([]string{"-config-file", cfg, "-confdir", dir, "-onetime"}, tt.args...)
			if code := run(t.Context(), args, envMap(tt.env), io.Discard, &stderr); code != exitUsage {
				t.Errorf("exit code %d, want %d", code, exitUsage)
			}
			if want := strings.ReplaceAll(tt.want, "CFG", cfg); stderr.String() != want {
				t.Errorf("stderr:\n%s\nwant:\n%s", stderr.String(), want)
			}
		})
	}
}

// TestBackendOpenErrorOnce (issue 13.11): a backend's failure reads the
// backend's name once.
func TestBackendOpenErrorOnce(t *testing.T) {
	t.Parallel()
	d := newDaemonDir(t)
	missing := filepath.Join(d.dir, "missing.yaml")
	var stderr bytes.Buffer
	args := []string{"-config-file", os.DevNull, "-confdir", d.dir, "-backend", "file", "-file", missing, "-onetime"}
	if code := run(t.Context(), args, envMap(nil), io.Discard, &stderr); code != exitFailed {
		t.Fatalf("exit code %d, stderr:\n%s", code, stderr.String())
	}
	if !strings.HasPrefix(stderr.String(), "kvconf: backend file: ") || strings.Contains(stderr.String(), "file: file:") || strings.Contains(stderr.String(), "backends:") {
		t.Errorf("stderr stutters:\n%s", stderr.String())
	}
	wantContains(t, "stderr", stderr.String(), missing)
}
