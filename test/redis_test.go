package test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/backends/plugin"
)

// redisServer is a redis-server of the tests, on a loopback port that
// stays the same across restarts, with its data in dir.
type redisServer struct {
	dir  string
	args []string // besides port, bind and dir
	addr string
	cmd  *exec.Cmd
	once sync.Once
}

// start starts the server (again) and waits until it answers PING.
func (s *redisServer) start(t *testing.T) {
	t.Helper()
	bin := requireTool(t, "redis-server", "install Debian's redis-server package (scripts/test-deps does)")
	if s.addr == "" {
		s.addr = freePort(t)
	}
	_, port, _ := net.SplitHostPort(s.addr)
	logFile := filepath.Join(s.dir, "redis.log")
	log, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = log.Close() }() // the child has its own copy
	args := append([]string{"--port", port, "--bind", "127.0.0.1", "--dir", s.dir, "--daemonize", "no"}, s.args...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.cmd = cmd
	s.once.Do(func() {
		t.Cleanup(func() {
			if s.cmd != nil {
				_ = s.cmd.Process.Kill() // its data is the test's, thrown away
				_ = s.cmd.Wait()         // killed: its status says so
			}
			if t.Failed() {
				b, _ := os.ReadFile(logFile)
				t.Logf("redis-server log:\n%s", b)
			}
		})
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := redisCmds(s.addr, s.auth(), []string{"PING"})
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on %s did not answer PING: %v", s.addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// auth returns the AUTH command of the server's --requirepass, or nil.
func (s *redisServer) auth() []string {
	for i, a := range s.args {
		if a == "--requirepass" && i+1 < len(s.args) {
			return []string{"AUTH", s.args[i+1]}
		}
	}
	return nil
}

// stop shuts the server down cleanly (saving its data when it persists)
// and waits for it to exit.
func (s *redisServer) stop(t *testing.T) {
	t.Helper()
	_, _ = redisCmds(s.addr, s.auth(), []string{"SHUTDOWN"}) // the connection drops as it exits
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Logf("redis-server exited: %v", err) // SHUTDOWN exits 0; a kill is worth a note
		}
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		t.Fatalf("redis-server did not shut down (killed: %v)", <-done)
	}
	s.cmd = nil
}

// redisCmds runs commands on one connection to addr, after auth (when not
// nil), and returns the first line of the last reply.
func redisCmds(addr string, auth []string, cmds ...[]string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer func() { _ = c.Close() }() // nothing more to read
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return "", err
	}
	if auth != nil {
		cmds = append([][]string{auth}, cmds...)
	}
	r := bufio.NewReader(c)
	var line string
	for _, args := range cmds {
		var b strings.Builder
		fmt.Fprintf(&b, "*%d\r\n", len(args))
		for _, a := range args {
			fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
		}
		if _, err := c.Write([]byte(b.String())); err != nil {
			return "", err
		}
		if line, err = readReply(r); err != nil {
			return "", err
		}
		if strings.HasPrefix(line, "-") {
			return "", fmt.Errorf("redis %s: %s", args[0], strings.TrimSpace(line))
		}
	}
	return line, nil
}

// readReply reads one whole reply and returns its first line.
func readReply(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	var n int
	switch line[0] {
	case '$':
		if _, err := fmt.Sscanf(line, "$%d", &n); err == nil && n >= 0 {
			_, err = r.Discard(n + 2)
			return line, err
		}
	case '*':
		if _, err := fmt.Sscanf(line, "*%d", &n); err == nil {
			for range n {
				if _, err := readReply(r); err != nil {
					return "", err
				}
			}
		}
	}
	return line, nil
}

// emptyConfig returns an empty config file, so that a
// /etc/confd/confd.toml of the machine plays no part.
func emptyConfig(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "confd.toml")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// redisConfdir writes a confdir with one resource that renders the keys
// under /app, one level deep then two, one per line, into out.conf, and returns the dir and the
// dest.
func redisConfdir(t *testing.T) (dir, dest string) {
	t.Helper()
	dir = t.TempDir()
	dest = filepath.Join(dir, "out.conf")
	files := map[string]string{
		"conf.d/app.toml":    fmt.Sprintf("[template]\nsrc = \"app.tmpl\"\ndest = %q\nkeys = [\"/app\"]\n", dest),
		"templates/app.tmpl": "{{range gets \"/app/*\"}}{{.Key}}={{.Value}}\n{{end}}{{range gets \"/app/*/*\"}}{{.Key}}={{.Value}}\n{{end}}",
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
	return dir, dest
}

// TestRedisConfdCompat (issue 18.2): confd's integration command line
// for Redis, --backend redis --node 127.0.0.1:PORT, with and without
// --watch, renders confd's integration data from a real Redis: kvconf
// finds the plugin kvconf-backend-redis next to its binary.
func TestRedisConfdCompat(t *testing.T) {
	addr := startRedis(t)
	redisPlugin(t)
	for k, v := range confdData {
		redisMust(t, addr, "SET", k, v)
	}
	runConfdStyle(t, "--backend", "redis", "--node", addr)
}

// TestRedisDatabaseSeparatorHash (issue 18.2): confd's node host:port/db
// selects the database, -separator maps / to the Redis key separator, and
// a hash's fields are keys under the hash, as confd reads them.
func TestRedisDatabaseSeparatorHash(t *testing.T) {
	addr := startRedis(t)
	redisPlugin(t)
	if _, err := redisCmds(addr, nil, []string{"SELECT", "2"}, []string{"SET", "app:db:host", "db.example.com"},
		[]string{"HSET", "app:users", "alice", "admin", "bob", "dev"}, []string{"SET", "other:x", "no"}); err != nil {
		t.Fatal(err)
	}
	redisMust(t, addr, "SET", "app:db:host", "database 0, not read")
	dir, dest := redisConfdir(t)
	empty := filepath.Join(dir, "confd.toml")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), kvconfBin, "--onetime", "--confdir", dir, "--config-file", empty,
		"--backend", "redis", "--node", addr+"/2", "--separator", ":")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kvconf: %v\n%s", err, out)
	}
	got, err := os.ReadFile(dest)
	if err != nil {
		t.Fatal(err)
	}
	if want := "/app/db/host=db.example.com\n/app/users/alice=admin\n/app/users/bob=dev\n"; string(got) != want {
		t.Errorf("out.conf = %q, want %q", got, want)
	}
}

// TestRedisWatchRestart (issue 18.2): kvconf --watch --backend redis
// renders each change from keyspace notifications; Redis restarts
// mid-watch, and the changes made while it was down for kvconf and right
// after it came back (before kvconf subscribed again) are rendered too:
// nothing is missed.
func TestRedisWatchRestart(t *testing.T) {
	s := &redisServer{dir: t.TempDir(), args: []string{"--appendonly", "yes", "--save", "", "--notify-keyspace-events", "KA"}}
	s.start(t)
	redisPlugin(t)
	redisMust(t, s.addr, "SET", "/app/a", "1")
	dir, dest := redisConfdir(t)
	k := startKvconf(t, []string{"KVCONF_CONFIG_FILE=" + emptyConfig(t)}, "--watch", "--confdir", dir, "--backend", "redis", "--node", s.addr, "--log-level", "debug")
	eventually(t, "the first render", func() bool { return fileHas(dest, "/app/a=1\n") })

	redisMust(t, s.addr, "SET", "/app/b", "2")
	eventually(t, "the render of a new key", func() bool { return fileHas(dest, "/app/a=1\n/app/b=2\n") })
	redisMust(t, s.addr, "HSET", "/app/h", "f", "v")
	eventually(t, "the render of a hash", func() bool { return fileHas(dest, "/app/b=2\n/app/h/f=v\n") })

	s.stop(t)
	// While the server is down for kvconf, its data changes: another
	// server on the same data dir, on another port, changes it and shuts
	// down (saving it), then the server comes back on its port.
	other := &redisServer{dir: s.dir, args: s.args}
	other.start(t)
	redisMust(t, other.addr, "SET", "/app/a", "10")
	redisMust(t, other.addr, "DEL", "/app/b")
	other.stop(t)
	s.start(t)
	// And right after the restart, before kvconf subscribes again (after
	// its retry backoff), more changes.
	redisMust(t, s.addr, "SET", "/app/c", "3")
	want := "/app/a=10\n/app/c=3\n/app/h/f=v\n"
	eventually(t, "the render of the changes made across the restart", func() bool {
		b, err := os.ReadFile(dest)
		return err == nil && string(b) == want
	})
	redisMust(t, s.addr, "SET", "/app/d", "4")
	eventually(t, "the render of a change after the watch resumed", func() bool { return fileHas(dest, "/app/c=3\n/app/d=4\n") })
	if !strings.Contains(k.logs(), "subscription lost") {
		t.Errorf("kvconf did not log the lost subscription:\n%s", k.logs())
	}
}

// TestRedisNotificationsOff (issue 18.2): with notify-keyspace-events off
// on the server, --watch fails with an error that says so and how to turn
// them on; -onetime works all the same.
func TestRedisNotificationsOff(t *testing.T) {
	s := &redisServer{dir: t.TempDir(), args: []string{"--save", "", "--appendonly", "no"}}
	s.start(t)
	redisPlugin(t)
	redisMust(t, s.addr, "SET", "/app/a", "1")
	dir, dest := redisConfdir(t)
	k := startKvconf(t, []string{"KVCONF_CONFIG_FILE=" + emptyConfig(t)}, "--watch", "--confdir", dir, "--backend", "redis", "--node", s.addr)
	want := `keyspace notifications are off (notify-keyspace-events is \"\"): -watch needs at least KA; run CONFIG SET notify-keyspace-events KA`
	eventually(t, "the error about keyspace notifications", func() bool { return strings.Contains(k.logs(), want) })
	eventually(t, "the first render, before the watch", func() bool { return fileHas(dest, "/app/a=1\n") })
}

// TestRedisBadPassword (issue 18.2): a wrong -password, or none for a
// server that requires one, fails with an error naming the flag, and
// never the password.
func TestRedisBadPassword(t *testing.T) {
	s := &redisServer{dir: t.TempDir(), args: []string{"--save", "", "--appendonly", "no", "--requirepass", "s3cret-right"}}
	s.start(t)
	redisPlugin(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "wrong", args: []string{"--password", "s3cret-wrong"}, want: "the server refused the credentials of -username/-password"},
		{name: "none", want: "the server requires a password: set -password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, _ := redisConfdir(t)
			args := append([]string{"--onetime", "--confdir", dir, "--config-file", os.DevNull, "--backend", "redis", "--node", s.addr}, tt.args...)
			out, err := exec.CommandContext(t.Context(), kvconfBin, args...).CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Errorf("kvconf: %v, want exit status 1", err)
			}
			if !strings.Contains(string(out), tt.want) {
				t.Errorf("output:\n%s\nwant it to contain %q", out, tt.want)
			}
			if strings.Contains(string(out), "s3cret") {
				t.Errorf("output shows a password:\n%s", out)
			}
		})
	}
	// The right one works, and is not shown either.
	if _, err := redisCmds(s.addr, s.auth(), []string{"SET", "/app/a", "1"}); err != nil {
		t.Fatal(err)
	}
	dir, dest := redisConfdir(t)
	args := []string{"--onetime", "--confdir", dir, "--config-file", os.DevNull, "--backend", "redis", "--node", s.addr, "--password", "s3cret-right"}
	if out, err := exec.CommandContext(t.Context(), kvconfBin, args...).CombinedOutput(); err != nil || strings.Contains(string(out), "s3cret") {
		t.Errorf("kvconf with the right password: %v\n%s", err, out)
	}
	if !fileHas(dest, "/app/a=1\n") {
		t.Errorf("out.conf lacks /app/a")
	}
}

// TestRedisPluginWatchResubscribes (issue 18.2): the plugin's own
// guarantee, without kvconf's re-snapshot after a failed watch: a watch
// that fails because Redis went away is followed by one that subscribes
// again and reads its prefixes in full, so that it reports what changed
// while nothing listened.
func TestRedisPluginWatchResubscribes(t *testing.T) {
	s := &redisServer{dir: t.TempDir(), args: []string{"--appendonly", "yes", "--save", "", "--notify-keyspace-events", "KA"}}
	s.start(t)
	bin := redisPlugin(t)
	redisMust(t, s.addr, "SET", "/app/a", "1")
	c, err := plugin.New(t.Context(), plugin.Config{Command: []string{bin}, Options: map[string]string{"nodes": s.addr}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() }) // idempotent
	prefixes := []string{"/app"}
	snap, err := c.Snapshot(t.Context(), prefixes)
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		u   backends.Update
		err error
	}
	watch := func(after uint64) chan result {
		ch := make(chan result, 1)
		go func() {
			ctx, cancel := context.WithTimeout(t.Context(), watchTimeout)
			defer cancel()
			u, err := c.Watch(ctx, prefixes, after)
			ch <- result{u, err}
		}()
		return ch
	}
	// A first watch is subscribed when a change wakes it.
	redisMust(t, s.addr, "SET", "/app/b", "2")
	r := <-watch(snap.Rev)
	if r.err != nil {
		t.Fatal(r.err)
	}
	pending := watch(r.u.Rev)
	s.stop(t)
	if r := <-pending; r.err == nil || !strings.Contains(r.err.Error(), "subscription lost") {
		t.Fatalf("watch across the shutdown = %+v, %v; want the lost subscription", r.u, r.err)
	}
	other := &redisServer{dir: s.dir, args: s.args}
	other.start(t)
	redisMust(t, other.addr, "SET", "/app/a", "10")
	redisMust(t, other.addr, "DEL", "/app/b")
	other.stop(t)
	s.start(t)
	r2 := <-watch(r.u.Rev)
	if r2.err != nil {
		t.Fatal(r2.err)
	}
	want := []backends.Change{{Key: "/app/a", Value: "10"}, {Key: "/app/b", Deleted: true}}
	slices.SortFunc(r2.u.Changes, func(a, b backends.Change) int { return strings.Compare(a.Key, b.Key) })
	if r2.u.Full != nil || !slices.Equal(r2.u.Changes, want) {
		t.Errorf("watch after the restart = %+v, want changes %+v", r2.u, want)
	}
}
