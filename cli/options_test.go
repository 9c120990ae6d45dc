package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// envMap is a getenv backed by a map, so tests need not touch the process
// environment.
func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPrecedence(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := writeFile(t, dir, "kvconf.toml", `
prefix = "/from-file"
interval = 30
nodes = ["file-node"]
log-level = "warn"
`)
	tests := []struct {
		name       string
		args       []string
		env        map[string]string
		wantPrefix string
		wantFrom   source
		wantNodes  []string
		wantIntvl  int
	}{
		{name: "file over default", args: []string{"-config-file", cfg},
			wantPrefix: "/from-file", wantFrom: "config file key prefix", wantNodes: []string{"file-node"}, wantIntvl: 30},
		{name: "env over file", args: []string{"-config-file", cfg},
			env:        map[string]string{"KVCONF_PREFIX": "/from-env", "KVCONF_NODE": "a, b", "KVCONF_INTERVAL": "5"},
			wantPrefix: "/from-env", wantFrom: "environment KVCONF_PREFIX", wantNodes: []string{"a", "b"}, wantIntvl: 5},
		{name: "flag over env", args: []string{"-config-file", cfg, "--prefix=/from-flag", "-node", "x", "-node", "y"},
			env:        map[string]string{"KVCONF_PREFIX": "/from-env", "KVCONF_NODE": "a"},
			wantPrefix: "/from-flag", wantFrom: "flag -prefix", wantNodes: []string{"x", "y"}, wantIntvl: 30},
		{name: "config file from env", env: map[string]string{"KVCONF_CONFIG_FILE": cfg},
			wantPrefix: "/from-file", wantFrom: "config file key prefix", wantNodes: []string{"file-node"}, wantIntvl: 30},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fs := newFlagSet("test")
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			c, err := load(fs, envMap(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Prefix; got != tt.wantPrefix {
				t.Errorf("prefix = %q, want %q", got, tt.wantPrefix)
			}
			if got := c.origin("prefix"); got != tt.wantFrom {
				t.Errorf("prefix from %q, want %q", got, tt.wantFrom)
			}
			if got := c.Interval; got != time.Duration(tt.wantIntvl)*time.Second {
				t.Errorf("interval = %s, want %ds", got, tt.wantIntvl)
			}
			if got := c.BackendOpts["nodes"]; !reflect.DeepEqual(got, tt.wantNodes) {
				t.Errorf("backend option nodes = %v, want %q", got, tt.wantNodes)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	fs := newFlagSet("test")
	if err := fs.Parse([]string{"-config-file", filepath.Join(t.TempDir(), "absent-but-explicit.toml")}); err != nil {
		t.Fatal(err)
	}
	if _, err := load(fs, envMap(nil)); err == nil || !strings.Contains(err.Error(), "absent-but-explicit.toml") {
		t.Fatalf("explicit missing config file: err = %v, want one naming the file", err)
	}

	fs = newFlagSet("test")
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	// The default /etc/confd/confd.toml is read when it exists; point the
	// default elsewhere through the environment to keep the test hermetic.
	if _, err := load(fs, envMap(map[string]string{"KVCONF_CONFIG_FILE": filepath.Join(t.TempDir(), "none.toml")})); err == nil {
		t.Fatalf("a missing config file named in the environment must be an error")
	}

	fs = newFlagSet("test")
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	c, err := load(fs, func(k string) (string, bool) {
		if k == "KVCONF_CONFIG_FILE" {
			return os.DevNull, true
		}
		return "", false
	})
	if err != nil {
		t.Fatal(err)
	}
	want := config{ConfigFile: os.DevNull, ConfDir: "/etc/confd", Backend: "etcd", Interval: 600 * time.Second, LogLevel: slog.LevelInfo, LogFormat: "text"}
	got := *c
	got.from, got.keyFrom, got.keyFlag, got.BackendOpts = nil, nil, nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", got, want)
	}
	if len(c.BackendOpts) != 0 {
		t.Errorf("backend options set by default: %v", c.BackendOpts)
	}
}

func TestConfigFileErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, content, want string
	}{
		{"unknown key", "backend = \"file\"\nbogus = 1\n", `unknown key "bogus"`},
		{"wrong type", "interval = \"soon\"\n", `key "interval": want an integer`},
		{"bad list", "nodes = [1, 2]\n", `key "nodes": want a list of strings`},
		{"syntax", "backend = \n", "line 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := writeFile(t, t.TempDir(), "confd.toml", tt.content)
			var stderr bytes.Buffer
			code := run(t.Context(), []string{"-config-file", cfg, "-onetime"}, envMap(nil), &bytes.Buffer{}, &stderr)
			if code != exitUsage {
				t.Errorf("exit code = %d, want %d", code, exitUsage)
			}
			if !strings.Contains(stderr.String(), cfg) || !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("stderr = %q, want it to name %s and contain %q", stderr.String(), cfg, tt.want)
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	data := writeFile(t, dir, "data.yaml", "a: 1\n")
	base := []string{"-config-file", os.DevNull, "-confdir", dir, "-onetime"}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want []string
	}{
		{name: "backend option the backend lacks", args: []string{"-backend", "file", "-file", data, "-node", "n"},
			want: []string{"flag -node", `not an option of backend "file"`}},
		{name: "confd env name routed to backend", args: []string{"-backend", "env"}, env: map[string]string{"CONFD_CLIENT_CERT": "/c.pem"},
			want: []string{"environment CONFD_CLIENT_CERT", `not an option of backend "env"`}},
		{name: "unknown backend", args: []string{"-backend", "nope"},
			want: []string{`flag -backend: unknown backend "nope" (built in: `, "env", "file"}},
		{name: "bad log level", args: []string{"-backend", "env", "-log-level", "loud"},
			want: []string{"flag -log-level", `"loud"`}},
		{name: "bad interval", args: []string{"-backend", "env"}, env: map[string]string{"KVCONF_INTERVAL": "0"},
			want: []string{"environment KVCONF_INTERVAL", "positive"}},
		{name: "bad wait", args: []string{"-backend", "env", "-wait", "soon"},
			want: []string{"flag -wait", `invalid wait "soon"`}},
		{name: "wait max below min", args: []string{"-backend", "env"}, env: map[string]string{"KVCONF_WAIT": "10s:2s"},
			want: []string{"environment KVCONF_WAIT", "max 2s is less than min 10s"}},
		{name: "bad env bool", args: []string{"-backend", "env"}, env: map[string]string{"KVCONF_NOOP": "perhaps"},
			want: []string{"environment KVCONF_NOOP"}},
		{name: "undefined flag", args: []string{"-no-such-flag"},
			want: []string{"no-such-flag"}},
		{name: "stray argument", args: []string{"-backend", "env", "extra"},
			want: []string{`unexpected argument "extra"`}},
		{name: "file backend without files", args: []string{"-backend", "file"},
			want: []string{"backend file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stderr bytes.Buffer
			code := run(t.Context(), append(append([]string{}, base...), tt.args...), envMap(tt.env), &bytes.Buffer{}, &stderr)
			if code != exitUsage {
				t.Errorf("exit code = %d, want %d (stderr %q)", code, exitUsage, stderr.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr = %q, want it to contain %q", stderr.String(), w)
				}
			}
		})
	}
}

func TestVersionAndBackends(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if code := run(t.Context(), []string{"--version", "-config-file", os.DevNull}, envMap(nil), &out, &bytes.Buffer{}); code != exitOK {
		t.Fatalf("-version exit code = %d", code)
	}
	if !strings.HasPrefix(out.String(), "kvconf ") {
		t.Errorf("-version printed %q", out.String())
	}
	out.Reset()
	if code := run(t.Context(), []string{"backends"}, envMap(nil), &out, &bytes.Buffer{}); code != exitOK {
		t.Fatalf("backends exit code = %d", code)
	}
	for _, name := range []string{"env", "file"} {
		if !strings.Contains(out.String(), name+"\t") {
			t.Errorf("backends output lacks %s:\n%s", name, out.String())
		}
	}
	out.Reset()
	if code := run(t.Context(), []string{"backends", "file"}, envMap(nil), &out, &bytes.Buffer{}); code != exitOK {
		t.Fatalf("backends file exit code = %d", code)
	}
	if !strings.Contains(out.String(), "[backends.file]") {
		t.Errorf("backends file printed no sample:\n%s", out.String())
	}

	// The sample is a config file as it stands: a resource that picks the
	// named backend renders from it once its file exists.
	dir := t.TempDir()
	data := writeFile(t, dir, "data.yaml", "greeting: hello\n")
	sample := strings.Replace(out.String(), `"/etc/kvconf/data.yaml", "/etc/kvconf/data.d"`, strconv.Quote(data), 1)
	cfg := writeFile(t, dir, "kvconf.toml", sample)
	writeFile(t, dir, "templates/t.tmpl", `{{getv "/greeting"}}`)
	writeFile(t, dir, "conf.d/t.toml", "[template]\nsrc = \"t.tmpl\"\ndest = "+strconv.Quote(filepath.Join(dir, "out"))+"\nbackend = \"file\"\n")
	var stderr bytes.Buffer
	if code := run(t.Context(), []string{"-config-file", cfg, "-confdir", dir, "-onetime"}, envMap(nil), &bytes.Buffer{}, &stderr); code != exitOK {
		t.Fatalf("kvconf with the printed sample as its config file: exit %d\n%s", code, stderr.String())
	}
	if b, err := os.ReadFile(filepath.Join(dir, "out")); err != nil || string(b) != "hello" {
		t.Errorf("rendered %q, %v; want hello", b, err)
	}
	out.Reset()
	if code := run(t.Context(), []string{"backends", "nope"}, envMap(nil), &out, &bytes.Buffer{}); code != exitUsage {
		t.Errorf("backends nope exit code = %d, want %d", code, exitUsage)
	}
}

func TestWaitFromConfigFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := writeFile(t, dir, "kvconf.toml", "backend = \"env\"\nwait = \"1s:2s:3s\"\n")
	var stderr bytes.Buffer
	code := run(t.Context(), []string{"-config-file", cfg, "-confdir", dir, "-onetime"}, envMap(nil), io.Discard, &stderr)
	if code != exitUsage || !strings.Contains(stderr.String(), "config file key wait: invalid wait") {
		t.Errorf("exit code %d, stderr %q; want %d and an error naming the wait key", code, stderr.String(), exitUsage)
	}
}

// TestWatchUnwatchedBackend: -watch (by flag or environment) with a
// resource on a backend that cannot watch (env) starts the daemon: the
// env resource is rendered at start and said once not to be watched,
// while a resource on a file backend is watched. It sets an environment
// variable, so it does not run in parallel.
func TestWatchUnwatchedBackend(t *testing.T) {
	t.Setenv("KVCONF_TEST_UNWATCHED_V", "from-env")
	tests := []struct {
		name string
		args []string
		env  map[string]string
	}{
		{name: "flag", args: []string{"-watch"}},
		{name: "environment", env: map[string]string{"KVCONF_WATCH": "true"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newNamedDir(t, "[backends.vars]\ntype = \"env\"\n")
			writeFile(t, d.dir, "templates/env.tmpl", `{{getv "/kvconf/test/unwatched/v"}}`)
			writeFile(t, d.dir, "conf.d/two.toml", fmt.Sprintf("[template]\nsrc = \"env.tmpl\"\ndest = %q\nkeys = [\"/kvconf/test/unwatched/v\"]\nbackend = \"vars\"\n",
				filepath.Join(d.out, "two")))
			var stderr lockedBuffer
			stop := startDaemon(t, command{getenv: envMap(tt.env), stdout: io.Discard, stderr: &stderr}, append(d.args("-wait", "0s"), tt.args...))
			waitUntil(t, "the env resource to be rendered", holds(filepath.Join(d.out, "two"), "from-env"))
			waitUntil(t, "one to be rendered", holds(filepath.Join(d.out, "one"), "one-a"))
			writeFile(t, d.dir, "one.yaml", "v: one-b\n")
			waitUntil(t, "one to follow its watched backend", holds(filepath.Join(d.out, "one"), "one-b"))
			if code := stop(); code != exitOK {
				t.Errorf("exit code = %d, want %d:\n%s", code, exitOK, stderr.String())
			}
			out := stderr.String()
			if n := strings.Count(out, `msg="backend cannot watch; resources render at start, on reload and every interval" backend="vars (env)"`); n != 1 {
				t.Errorf("the not-watched line for vars (env) was logged %d times, want 1:\n%s", n, out)
			}
			if strings.Contains(out, `backend="one (file)" msg="backend cannot watch`) || strings.Contains(out, "cannot watch for changes") {
				t.Errorf("unexpected refusal or line for the watched backend:\n%s", out)
			}
		})
	}
}

// lockedBuffer is a bytes.Buffer that a daemon may write while a test
// reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitUntil polls cond until it holds, and fails the test if it still
// does not after a generous deadline. It asserts no timing.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// holds reports whether the file at p holds want.
func holds(p, want string) func() bool {
	return func() bool {
		data, err := os.ReadFile(p)
		return err == nil && string(data) == want
	}
}

// daemonDir is a confdir with one resource, a.toml, rendering the key /v
// of data.yaml to out/a, for the file backend.
type daemonDir struct {
	dir, data, out string
}

func newDaemonDir(t *testing.T) daemonDir {
	t.Helper()
	dir := t.TempDir()
	d := daemonDir{dir: dir, data: writeFile(t, dir, "data.yaml", "v: one\n"), out: filepath.Join(dir, "out")}
	writeFile(t, dir, "templates/t.tmpl", `{{getv "/v"}}`)
	d.resource(t, "a")
	return d
}

// resource writes conf.d/name.toml, rendering /v to out/name.
func (d daemonDir) resource(t *testing.T, name string) {
	t.Helper()
	writeFile(t, d.dir, "conf.d/"+name+".toml",
		fmt.Sprintf("[template]\nsrc = \"t.tmpl\"\ndest = %q\nkeys = [\"/v\"]\n", filepath.Join(d.out, name)))
}

// args are the flags of a daemon that polls data.yaml every second.
func (d daemonDir) args() []string {
	return []string{"-config-file", os.DevNull, "-confdir", d.dir, "-backend", "file", "-file", d.data, "-interval", "1"}
}

// startDaemon runs c in the background; stop cancels it and returns the
// exit code.
func startDaemon(t *testing.T, c command, args []string) (stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int, 1)
	go func() { done <- c.run(ctx, args) }()
	var once sync.Once
	code := -1
	stop = func() int {
		once.Do(func() {
			cancel()
			code = <-done
		})
		return code
	}
	t.Cleanup(func() { stop() })
	return stop
}

func TestReload(t *testing.T) {
	t.Parallel()
	d := newDaemonDir(t)
	reload := make(chan struct{})
	var stderr lockedBuffer
	stop := startDaemon(t, command{getenv: envMap(nil), stdout: io.Discard, stderr: &stderr, reload: reload}, d.args())
	fire := func() {
		t.Helper()
		select {
		case reload <- struct{}{}:
		case <-time.After(20 * time.Second):
			t.Fatalf("the daemon takes no reload:\n%s", stderr.String())
		}
	}
	waitUntil(t, "a to be rendered", holds(filepath.Join(d.out, "a"), "one"))

	// A new resource file is picked up.
	d.resource(t, "b")
	fire()
	waitUntil(t, "b to be rendered", holds(filepath.Join(d.out, "b"), "one"))

	// A broken one is reported, and the old set keeps running.
	writeFile(t, d.dir, "conf.d/c.toml", "[template]\nsrc = \"t.tmpl\"\n")
	fire()
	waitUntil(t, "the reload failure", func() bool { return strings.Contains(stderr.String(), `msg="reload failed"`) })
	if !strings.Contains(stderr.String(), "conf.d/c.toml: template.dest: missing") {
		t.Errorf("the reload failure does not name the file and field:\n%s", stderr.String())
	}
	writeFile(t, d.dir, "data.yaml", "v: two\n")
	waitUntil(t, "a to be rendered again", holds(filepath.Join(d.out, "a"), "two"))
	waitUntil(t, "b to be rendered again", holds(filepath.Join(d.out, "b"), "two"))

	if code := stop(); code != exitOK {
		t.Errorf("exit code = %d, want %d:\n%s", code, exitOK, stderr.String())
	}
	out := stderr.String()
	for _, want := range []string{`msg=reloaded backends=file resources=2`, `msg=stopped`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

func TestWatchDaemon(t *testing.T) {
	t.Parallel()
	d := newDaemonDir(t)
	var stderr lockedBuffer
	args := []string{"-config-file", os.DevNull, "-confdir", d.dir, "-backend", "file", "-file", d.data, "-watch", "-wait", "0s"}
	stop := startDaemon(t, command{getenv: envMap(nil), stdout: io.Discard, stderr: &stderr}, args)
	waitUntil(t, "a to be rendered", holds(filepath.Join(d.out, "a"), "one"))
	writeFile(t, d.dir, "data.yaml", "v: two\n")
	waitUntil(t, "a to follow the change", holds(filepath.Join(d.out, "a"), "two"))
	if code := stop(); code != exitOK {
		t.Errorf("exit code = %d, want %d:\n%s", code, exitOK, stderr.String())
	}
	// -watch without -interval: no periodic reconciliation.
	if want := "msg=running backends=file watch=true interval=0s"; !strings.Contains(stderr.String(), want) {
		t.Errorf("log lacks %q:\n%s", want, stderr.String())
	}
}

// TestReloadOnSIGHUP sends a real SIGHUP to the test process. It does not
// run in parallel with other tests, and a handler of its own is in place
// before the signal is sent, so the signal cannot end the process.
func TestReloadOnSIGHUP(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" {
		t.Skip("no SIGHUP on " + runtime.GOOS)
	}
	guard := make(chan os.Signal, 1)
	signal.Notify(guard, syscall.SIGHUP)
	defer signal.Stop(guard)
	d := newDaemonDir(t)
	var stderr lockedBuffer
	stop := startDaemon(t, command{getenv: envMap(nil), stdout: io.Discard, stderr: &stderr}, d.args())
	// Once a is rendered, the daemon's own SIGHUP handler is in place.
	waitUntil(t, "a to be rendered", holds(filepath.Join(d.out, "a"), "one"))
	d.resource(t, "b")
	p, err := os.FindProcess(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "b to be rendered", holds(filepath.Join(d.out, "b"), "one"))
	if code := stop(); code != exitOK {
		t.Errorf("exit code = %d, want %d:\n%s", code, exitOK, stderr.String())
	}
}
