package test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/kvconf/kvconf/backends/zookeeper"
	"github.com/kvconf/kvconf/backends/zookeeper/zktest"
)

// zkKvconf starts kvconf with args (after -config-file /dev/null) and
// stops it when the test ends; its output, which it returns, is logged if
// the test failed.
func zkKvconf(tb testing.TB, args ...string) *lockedBuffer {
	tb.Helper()
	var out lockedBuffer
	cmd := exec.Command(kvconfBin, append([]string{"-config-file", os.DevNull}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }() // interrupted: its exit status says so
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if tb.Failed() {
			tb.Logf("kvconf output:\n%s", out.String())
		}
	})
	return &out
}

// lockedBuffer is an output buffer safe for the writes of a child process
// and the reads of the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
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

// waitFile waits until the file at p holds want.
func waitFile(t *testing.T, p, want string) {
	t.Helper()
	deadline := time.Now().Add(watchTimeout)
	var got []byte
	for time.Now().Before(deadline) {
		got, _ = os.ReadFile(p) // missing until the first render
		if string(got) == want {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s = %q after %v, want %q", filepath.Base(p), got, watchTimeout, want)
}

// TestZookeeperKvconf renders a template from ZooKeeper with the kvconf
// binary and confd's command line, once.
func TestZookeeperKvconf(t *testing.T) {
	s := zktest.Start(t, zktest.Options{})
	admin := s.Client(t)
	zktest.Put(t, admin, "/myapp/database/url", "db.example.com", nil)
	zktest.Put(t, admin, "/myapp/database/user", "rob", nil)
	dir := kvconfDir(t)
	cmd := exec.CommandContext(t.Context(), kvconfBin, "--onetime", "--config-file", os.DevNull,
		"--confdir", dir, "--backend", "zookeeper", "--node", s.Addr)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kvconf: %v\n%s", err, out)
	}
	got, err := os.ReadFile(filepath.Join(dir, "myapp.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "url = db.example.com\nuser = rob\n"; string(got) != want {
		t.Errorf("myapp.conf = %q, want %q", got, want)
	}
}

// TestZookeeperKvconfAuth runs kvconf -onetime against a znode that only
// one digest user may read: the right -username and -password render it,
// wrong ones fail with an error that names those flags.
func TestZookeeperKvconfAuth(t *testing.T) {
	s := zktest.Start(t, zktest.Options{})
	admin := s.Client(t)
	if err := admin.AddAuth("digest", []byte("kvconf:right")); err != nil {
		t.Fatal(err)
	}
	acl := zk.DigestACL(zk.PermAll, "kvconf", "right")
	zktest.Put(t, admin, "/myapp/database/url", "db.example.com", acl)
	zktest.Put(t, admin, "/myapp/database/user", "rob", acl)
	for _, tt := range []struct {
		name, password string
		ok             bool
	}{{"right", "right", true}, {"wrong", "wrong-pw", false}} {
		t.Run(tt.name, func(t *testing.T) {
			dir := kvconfDir(t)
			cmd := exec.CommandContext(t.Context(), kvconfBin, "-onetime", "-config-file", os.DevNull,
				"-confdir", dir, "-backend", "zookeeper", "-node", s.Addr,
				"-username", "kvconf", "-password", tt.password)
			out, err := cmd.CombinedOutput()
			if tt.ok {
				if err != nil {
					t.Fatalf("kvconf: %v\n%s", err, out)
				}
				return
			}
			if err == nil {
				t.Fatalf("kvconf with a wrong password succeeded:\n%s", out)
			}
			if !strings.Contains(string(out), "-username and -password") {
				t.Errorf("kvconf output names neither -username nor -password:\n%s", out)
			}
			if strings.Contains(string(out), tt.password) {
				t.Errorf("kvconf output shows the password:\n%s", out)
			}
		})
	}
}

// TestZookeeperKvconfWatch runs kvconf -watch on ZooKeeper with confd's
// command line: changes are rendered, and so are those made right after a
// restart of the server, while kvconf reconnects.
func TestZookeeperKvconfWatch(t *testing.T) {
	s := zktest.Start(t, zktest.Options{})
	admin := s.Client(t)
	zktest.Put(t, admin, "/myapp/database/url", "db.example.com", nil)
	zktest.Put(t, admin, "/myapp/database/user", "rob", nil)
	dir := kvconfDir(t)
	dest := filepath.Join(dir, "myapp.conf")
	out := zkKvconf(t, "--watch", "--confdir", dir, "--backend", "zookeeper", "--node", s.Addr, "--log-level", "debug")
	waitFile(t, dest, "url = db.example.com\nuser = rob\n")

	zktest.Put(t, admin, "/myapp/database/url", "db2.example.com", nil)
	zktest.Put(t, admin, "/elsewhere", "x", nil)
	waitFile(t, dest, "url = db2.example.com\nuser = rob\n")

	s.Stop()
	time.Sleep(500 * time.Millisecond) // let kvconf see the outage
	s.Restart()
	zktest.Put(t, admin, "/myapp/database/user", "kim", nil)
	zktest.Put(t, admin, "/myapp/database/url", "db3.example.com", nil)
	waitFile(t, dest, "url = db3.example.com\nuser = kim\n")
	// The outage was reported, not waited out in silence.
	for _, msg := range []string{`msg="backend down"`, `msg="backend up"`} {
		if !strings.Contains(out.String(), msg) {
			t.Errorf("kvconf output has no %s", msg)
		}
	}
}

// BenchmarkZookeeperSnapshot reads 10,000 znodes of 64 bytes under one
// prefix: kvconf's backend next to the raw client read, both confd's way
// (one request after the other: Children, then Exists and Get for each
// child) and pipelined (Children, then every Get 64 at a time, as the
// backend does).
func BenchmarkZookeeperSnapshot(b *testing.B) {
	s := zktest.Start(b, zktest.Options{FullJIT: true})
	admin := s.Client(b)
	const n = 10_000
	zktest.Load(b, admin, "/bench", n, 64)
	c, err := zookeeper.New(context.Background(), zookeeper.Config{Nodes: []string{s.Addr}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Close() })
	b.Run("kvconf", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			snap, err := c.Snapshot(b.Context(), []string{"/bench/"})
			if err != nil {
				b.Fatal(err)
			}
			if len(snap.KVs) != n {
				b.Fatalf("Snapshot has %d keys, want %d", len(snap.KVs), n)
			}
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "keys/s")
	})
	b.Run("raw-confd-walk", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if got := confdWalk(b, admin, "/bench"); got != n {
				b.Fatalf("walk read %d keys, want %d", got, n)
			}
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "keys/s")
	})
	b.Run("raw-pipelined", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if got := pipelinedRead(b, admin, "/bench"); got != n {
				b.Fatalf("read %d keys, want %d", got, n)
			}
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "keys/s")
	})
}

// confdWalk reads the leaves under dir the way confd's zookeeper backend
// does, one request at a time, and returns how many it read.
func confdWalk(b *testing.B, conn *zk.Conn, dir string) int {
	kids, _, err := conn.Children(dir)
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	for _, k := range kids {
		p := dir + "/" + k
		_, st, err := conn.Exists(p)
		if err != nil {
			b.Fatal(err)
		}
		if st.NumChildren == 0 {
			if _, _, err := conn.Get(p); err != nil {
				b.Fatal(err)
			}
			n++
		} else {
			n += confdWalk(b, conn, p)
		}
	}
	return n
}

// pipelinedRead reads the children of dir, then their data, 64 requests
// in flight, and returns how many it read.
func pipelinedRead(b *testing.B, conn *zk.Conn, dir string) int {
	kids, _, err := conn.Children(dir)
	if err != nil {
		b.Fatal(err)
	}
	sem := make(chan struct{}, 64)
	errc := make(chan error, len(kids))
	var wg sync.WaitGroup
	for _, k := range kids {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if _, _, err := conn.Get(dir + "/" + k); err != nil {
				errc <- err
			}
		}()
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	return len(kids)
}

// BenchmarkZookeeperPutToFile times, per operation, one set of a znode
// until kvconf -watch has written its new value to the file, with 10,000
// other znodes under the watched prefix, from the client's set to the
// file read back (polled every 200µs). It reports the median, p95 and p99
// as well.
func BenchmarkZookeeperPutToFile(b *testing.B) {
	s := zktest.Start(b, zktest.Options{FullJIT: true})
	admin := s.Client(b)
	zktest.Load(b, admin, "/lat/many", 10_000, 64)
	zktest.Put(b, admin, "/lat/k", "start", nil)
	dir := b.TempDir()
	dest := filepath.Join(dir, "lat.conf")
	files := map[string]string{
		"conf.d/lat.toml":    "[template]\nsrc = \"lat.tmpl\"\ndest = \"" + dest + "\"\nprefix = \"/lat\"\nkeys = [\"/\"]\n",
		"templates/lat.tmpl": "{{getv \"/k\"}}\n",
	}
	for f, content := range files {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(f)), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), []byte(content), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	zkKvconf(b, "-watch", "-confdir", dir, "-backend", "zookeeper", "-node", s.Addr, "-log-level", "warn")
	waitFor := func(want string) {
		deadline := time.Now().Add(60 * time.Second)
		for {
			got, _ := os.ReadFile(dest)
			if string(got) == want {
				return
			}
			if time.Now().After(deadline) {
				b.Fatalf("%s = %q after 60s, want %q", dest, got, want)
			}
			time.Sleep(200 * time.Microsecond)
		}
	}
	waitFor("start\n")
	// The first change is rendered once the watch has walked the 10,000
	// znodes; the timed ones after it.
	if _, err := admin.Set("/lat/k", []byte("armed"), -1); err != nil {
		b.Fatal(err)
	}
	waitFor("armed\n")
	var lat []time.Duration
	i := 0
	for b.Loop() {
		i++
		v := fmt.Sprintf("v%d", i)
		start := time.Now()
		if _, err := admin.Set("/lat/k", []byte(v), -1); err != nil {
			b.Fatal(err)
		}
		waitFor(v + "\n")
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	q := func(f float64) float64 { return float64(lat[int(f*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.95), "p95-ms")
	b.ReportMetric(q(0.99), "p99-ms")
}

// BenchmarkZookeeperWatchDelta sets one znode under a prefix of 10,000 and
// times until Watch returns the change: the cost of a one-key change,
// which must not grow with the znodes under the prefix.
func BenchmarkZookeeperWatchDelta(b *testing.B) {
	s := zktest.Start(b, zktest.Options{FullJIT: true})
	admin := s.Client(b)
	const n = 10_000
	zktest.Load(b, admin, "/delta", n, 64)
	c, err := zookeeper.New(context.Background(), zookeeper.Config{Nodes: []string{s.Addr}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Close() })
	ctx := context.Background()
	prefixes := []string{"/delta/"}
	u, err := c.Watch(ctx, prefixes, 0)
	if err != nil {
		b.Fatal(err)
	}
	u, err = c.Watch(ctx, prefixes, u.Rev) // walks, arming the watches
	if err != nil || u.Full == nil || len(u.Full.KVs) != n {
		b.Fatalf("first Watch = %v, %v; want a full update of %d keys", err, u.Full != nil, n)
	}
	after := u.Rev
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		key := fmt.Sprintf("/delta/%08d", i%n)
		i++
		if _, err := admin.Set(key, []byte("changed"), -1); err != nil {
			b.Fatal(err)
		}
		u, err := c.Watch(ctx, prefixes, after)
		if err != nil {
			b.Fatal(err)
		}
		if u.Full != nil || len(u.Changes) != 1 || u.Changes[0].Key != key {
			b.Fatalf("Watch = %+v, want the change to %s", u, key)
		}
		after = u.Rev
	}
}
