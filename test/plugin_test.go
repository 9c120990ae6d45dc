package test

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/backends/backendtest"
	"github.com/kvconf/kvconf/backends/plugin"
)

var (
	redisPluginOnce sync.Once
	redisPluginBin  string
	redisPluginErr  error
)

// redisPlugin builds plugins/kvconf-backend-redis once, next to kvconfBin.
func redisPlugin(t *testing.T) string {
	t.Helper()
	redisPluginOnce.Do(func() {
		bin := filepath.Join(filepath.Dir(kvconfBin), "kvconf-backend-redis")
		build := exec.Command("go", "build", "-o", bin, "./plugins/kvconf-backend-redis")
		build.Dir = ".."
		if out, err := build.CombinedOutput(); err != nil {
			redisPluginErr = fmt.Errorf("build kvconf-backend-redis: %w\n%s", err, out)
			return
		}
		redisPluginBin = bin
	})
	if redisPluginErr != nil {
		t.Fatal(redisPluginErr)
	}
	return redisPluginBin
}

// startRedis runs redis-server on a free loopback port, without
// persistence and with keyspace notifications on (KA), until the test
// ends, and returns its address.
func startRedis(t *testing.T) string {
	t.Helper()
	s := &redisServer{dir: t.TempDir(), args: []string{"--save", "", "--appendonly", "no", "--notify-keyspace-events", "KA"}}
	s.start(t)
	return s.addr
}

// redisDo runs one command on a new connection to addr and returns the
// first line of its reply.
func redisDo(addr string, args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer func() { _ = c.Close() }() // one command per connection
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	if strings.HasPrefix(line, "-") {
		return "", fmt.Errorf("redis %s: %s", args[0], strings.TrimSpace(line))
	}
	return line, nil
}

func redisMust(t *testing.T, addr string, args ...string) {
	t.Helper()
	if _, err := redisDo(addr, args...); err != nil {
		t.Fatal(err)
	}
}

// TestPluginRedisConformance runs the backend conformance suite through the
// plugin backend and the kvconf-backend-redis plugin, on a real Redis:
// with the keys stored as named, and with -separator ":" (confd's
// mapping: /kvconftest/app/db/host is the Redis key kvconftest:app:db:host).
func TestPluginRedisConformance(t *testing.T) {
	addr := startRedis(t)
	bin := redisPlugin(t)
	for _, sep := range []string{"/", ":"} {
		t.Run("separator "+sep, func(t *testing.T) {
			redisKey := func(k string) string {
				if sep == "/" {
					return k
				}
				return strings.ReplaceAll(strings.TrimPrefix(k, "/"), "/", sep)
			}
			backendtest.Run(t, backendtest.Harness{
				Open: func(t *testing.T) backends.Backend {
					redisMust(t, addr, "FLUSHALL")
					c, err := plugin.New(t.Context(), plugin.Config{
						Command:        []string{bin},
						Options:        map[string]string{"nodes": addr, "separator": sep},
						RestartBackoff: "50ms",
					})
					if err != nil {
						t.Fatal(err)
					}
					return c
				},
				Put:    func(t *testing.T, k, v string) { redisMust(t, addr, "SET", redisKey(k), v) },
				Delete: func(t *testing.T, k string) { redisMust(t, addr, "DEL", redisKey(k)) },
			})
		})
	}
}

// TestPluginRedisKvconf renders a template with kvconf -onetime from a
// named backend of type plugin running kvconf-backend-redis, then of type
// redis (the plugin found by name), on database 3 of a real Redis.
func TestPluginRedisKvconf(t *testing.T) {
	addr := startRedis(t)
	plug := redisPlugin(t)
	kv := kvconfBin
	// redisDo's connections last one command, so SELECT would not hold:
	// the keys go to database 0, and SWAPDB moves them to 3.
	redisMust(t, addr, "MSET", "/myapp/database/url", "db.example.com", "/myapp/database/user", "rob")
	redisMust(t, addr, "SWAPDB", "0", "3")

	// The plugin backend running the plugin by its path, and the plugin
	// found by its name (next to kvconf) as the table's type, with confd's
	// option names.
	for _, cfg := range []string{
		fmt.Sprintf("[backends.r]\ntype = \"plugin\"\ncommand = [%q]\noptions = { address = %q, db = \"3\" }\n", plug, addr),
		fmt.Sprintf("[backends.r]\ntype = \"redis\"\nnodes = [%q]\n", addr+"/3"),
	} {
		renderMyapp(t, kv, cfg)
	}
}

// renderMyapp renders myapp.conf with kvconf -onetime from the backend r
// of the config file cfg, and checks it.
func renderMyapp(t *testing.T, kv, cfg string) {
	t.Helper()
	dir := t.TempDir()
	dest := filepath.Join(dir, "myapp.conf")
	files := map[string]string{
		"kvconf.toml": cfg,
		"conf.d/myapp.toml": fmt.Sprintf("[template]\nsrc = \"myapp.conf.tmpl\"\ndest = %q\nprefix = \"/myapp\"\nkeys = [\"/database\"]\nbackend = \"r\"\n",
			dest),
		"templates/myapp.conf.tmpl": "url = {{getv \"/database/url\"}}\nuser = {{getv \"/database/user\"}}\n",
	}
	for f, content := range files {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.CommandContext(t.Context(), kv, "-onetime", "-config-file", filepath.Join(dir, "kvconf.toml"),
		"-confdir", dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kvconf with %s: %v\n%s", cfg, err, out)
	}
	got, err := os.ReadFile(dest)
	if err != nil {
		t.Fatal(err)
	}
	if want := "url = db.example.com\nuser = rob\n"; string(got) != want {
		t.Errorf("with %s: myapp.conf = %q, want %q", cfg, got, want)
	}
}

// docExample returns the Go code block of docs/plugins.md that calls
// sdk.Serve: the complete plugin the documentation shows.
func docExample(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", "plugins.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, block := range strings.Split(string(b), "```go\n")[1:] {
		code, _, ok := strings.Cut(block, "```")
		if ok && strings.Contains(code, "sdk.Serve(") {
			return code
		}
	}
	t.Fatal("docs/plugins.md has no Go code block calling sdk.Serve")
	return ""
}

// TestPluginSDKDocExample (issue 18.4): the plugin of docs/plugins.md,
// exactly as written there and under 40 lines, builds against this
// checkout; kvconf -backend json finds it in -plugin-dir, hands it -node
// and renders its keys; kvconf plugins lists it with its handshake.
func TestPluginSDKDocExample(t *testing.T) {
	code := docExample(t)
	if n := strings.Count(strings.TrimSpace(code), "\n") + 1; n >= 40 {
		t.Errorf("the documented plugin has %d lines, want under 40", n)
	}
	mod := t.TempDir()
	root := repoRoot(t)
	goMod := "module example.com/kvconf-backend-json\n\ngo 1.26\n\nrequire github.com/kvconf/kvconf v0.0.0\n\nreplace github.com/kvconf/kvconf => " + root + "\n"
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{"main.go": code, "go.mod": goMod, "go.sum": string(sum)} {
		if err := os.WriteFile(filepath.Join(mod, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pluginDir := t.TempDir()
	for _, args := range [][]string{{"mod", "tidy"}, {"build", "-o", filepath.Join(pluginDir, "kvconf-backend-json"), "."}} {
		cmd := exec.CommandContext(t.Context(), "go", args...)
		cmd.Dir = mod
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	dir := t.TempDir()
	keys := filepath.Join(dir, "keys.json")
	dest := filepath.Join(dir, "app.conf")
	files := map[string]string{
		"keys.json":          `{"/app/port": "8080", "/app/host": "example.com", "/other": "x"}`,
		"conf.d/app.toml":    fmt.Sprintf("[template]\nsrc = \"app.tmpl\"\ndest = %q\nkeys = [\"/app\"]\n", dest),
		"templates/app.tmpl": "listen {{getv \"/app/host\"}}:{{getv \"/app/port\"}}\n",
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
	cmd := exec.CommandContext(t.Context(), kvconfBin, "-onetime", "-config-file", os.DevNull, "-confdir", dir,
		"-plugin-dir", pluginDir, "-backend", "json", "-node", keys)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kvconf: %v\n%s", err, out)
	}
	got, err := os.ReadFile(dest)
	if err != nil {
		t.Fatal(err)
	}
	if want := "listen example.com:8080\n"; string(got) != want {
		t.Errorf("app.conf = %q, want %q", got, want)
	}

	cmd = exec.CommandContext(t.Context(), kvconfBin, "plugins", "-config-file", os.DevNull, "-plugin-dir", pluginDir)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kvconf plugins: %v", err)
	}
	if want := "plugin\tjson\tno description (kvconf-backend version 1, " + filepath.Join(pluginDir, "kvconf-backend-json") + ")\n"; !strings.Contains(string(out), want) {
		t.Errorf("kvconf plugins:\n%s\nwant a line %q", out, want)
	}
}
