package test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kvconf/kvconf/backends/etcd"
	"github.com/kvconf/kvconf/resource"
)

// renderCounter counts resource.Run's renders per resource.
type renderCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *renderCounter) observe(name string, _ resource.Result, _ error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[name]++
}

func (c *renderCounter) get(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[name]
}

func (c *renderCounter) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := 0
	for _, v := range c.n {
		t += v
	}
	return t
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(watchTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting for %s", watchTimeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fileHas reports whether the file at p contains s.
func fileHas(p, s string) bool {
	b, err := os.ReadFile(p)
	return err == nil && strings.Contains(string(b), s)
}

// daemonConfdir writes n resources; resource i (conf.d/rNNN.toml) reads
// the keys /d/k/<i mod 100, 4 digits>... and writes out/rNNN.conf.
func daemonConfdir(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{"conf.d", "templates"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tmpl := "{{range gets \"/k/*/*\"}}{{base .Key}}={{.Value}}\n{{end}}"
	if err := os.WriteFile(filepath.Join(dir, "templates", "r.tmpl"), []byte(tmpl), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		res := fmt.Sprintf("[template]\nsrc = \"r.tmpl\"\ndest = %q\nprefix = \"/d\"\nkeys = [\"/k/%04d\"]\n",
			filepath.Join(dir, "out", fmt.Sprintf("r%03d.conf", i)), i%100)
		if err := os.WriteFile(filepath.Join(dir, "conf.d", fmt.Sprintf("r%03d.toml", i)), []byte(res), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// startRun runs resource.Run on the confdir's resources with the etcd
// nodes, and stops it when the test ends.
func startRun(t *testing.T, dir string, nodes []string, counter *renderCounter) []*resource.Resource {
	t.Helper()
	rs, err := resource.LoadDir(resource.Options{ConfDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	b := openEtcd(t, etcd.Config{Nodes: nodes, RequestTimeout: "5s"})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- resource.Run(ctx, b, rs, resource.RunOptions{
			Watch:    true,
			Retry:    resource.Backoff{Min: 50 * time.Millisecond, Max: 500 * time.Millisecond},
			OnRender: counter.observe,
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v, want context.Canceled", err)
		}
	})
	return rs
}

// TestEtcdDaemonSharesOneWatch runs 200 resources over 10,000 keys with
// resource.Run: they share one etcd watcher, a put re-renders only the
// resource that reads the key, a key outside every resource's prefixes
// renders nothing, and a delete is picked up.
func TestEtcdDaemonSharesOneWatch(t *testing.T) {
	m := startEtcd(t, nil)
	cli := rawClient(t, clientv3.Config{Endpoints: urls(m)})
	for b := 0; b < 100; b++ {
		load(t, cli, fmt.Sprintf("/d/k/%04d", b), 100, 16) // keys /d/k/<block>/<8 digits>
	}
	dir := daemonConfdir(t, 200)
	base := watchers(t)
	counter := &renderCounter{n: map[string]int{}}
	startRun(t, dir, urls(m), counter)
	eventually(t, "200 first renders", func() bool { return counter.total() >= 200 })
	eventually(t, "one watcher", func() bool { return watchers(t) == base+1 })
	if got := watchers(t) - base; got != 1 {
		t.Fatalf("200 resources use %v etcd watchers, want 1", got)
	}

	// r007 and r107 read block 0007; nobody else does.
	out := func(i int) string { return filepath.Join(dir, "out", fmt.Sprintf("r%03d.conf", i)) }
	before := counter.total()
	put(t, cli, "/d/k/0007/new", "seven")
	eventually(t, "r007 and r107 rendered", func() bool { return fileHas(out(7), "new=seven") && fileHas(out(107), "new=seven") })
	put(t, cli, "/elsewhere/x", "outside every prefix")
	put(t, cli, "/d/k/0008/new", "eight")
	eventually(t, "r008 rendered", func() bool { return fileHas(out(8), "new=eight") && fileHas(out(108), "new=eight") })
	// Updates are applied in order, so the outside key was handled
	// before block 0008's: it rendered nothing.
	eventually(t, "renders settled", func() bool { return counter.total() >= before+4 })
	if got := counter.total() - before; got != 4 {
		t.Errorf("three puts (two in blocks read by two resources each, one outside) gave %d renders, want 4", got)
	}
	if counter.get("conf.d/r009.toml") != 1 {
		t.Errorf("r009 rendered %d times, want 1 (start-up only)", counter.get("conf.d/r009.toml"))
	}

	del(t, cli, "/d/k/0007/new")
	eventually(t, "delete rendered", func() bool { return !fileHas(out(7), "new=seven") })
}

// TestEtcdDaemonRestart stops and restarts etcd on the same data directory
// while resource.Run watches: it recovers by itself and renders a change
// made after the restart.
func TestEtcdDaemonRestart(t *testing.T) {
	m := startEtcd(t, nil)
	cli := rawClient(t, clientv3.Config{Endpoints: urls(m)})
	put(t, cli, "/d/k/0001/a", "before")
	dir := daemonConfdir(t, 2)
	counter := &renderCounter{n: map[string]int{}}
	startRun(t, dir, urls(m), counter)
	dest := filepath.Join(dir, "out", "r001.conf")
	eventually(t, "first render", func() bool { return fileHas(dest, "a=before") })

	m.stop()
	time.Sleep(500 * time.Millisecond) // let the watch notice
	m.start(t)
	m.waitReady(t)
	put(t, cli, "/d/k/0001/a", "after")
	eventually(t, "render after the restart", func() bool { return fileHas(dest, "a=after") })
}

// TestEtcdDaemonCompactedGap cuts kvconf off from etcd (through a proxy),
// changes and deletes keys and compacts the history while it is away, and
// reconnects it: the watch finds its revision compacted, takes a fresh
// snapshot, and every change is rendered, none missed.
func TestEtcdDaemonCompactedGap(t *testing.T) {
	m := startEtcd(t, nil)
	cli := rawClient(t, clientv3.Config{Endpoints: urls(m)})
	put(t, cli, "/d/k/0001/keep", "1")
	put(t, cli, "/d/k/0001/gone", "1")
	p := startProxy(t, m.clientURL.Host)
	dir := daemonConfdir(t, 2)
	counter := &renderCounter{n: map[string]int{}}
	startRun(t, dir, []string{"http://" + p.addr()}, counter)
	dest := filepath.Join(dir, "out", "r001.conf")
	eventually(t, "first render", func() bool { return fileHas(dest, "gone=1") })

	p.cut()
	put(t, cli, "/d/k/0001/keep", "2")
	del(t, cli, "/d/k/0001/gone")
	rev := put(t, cli, "/d/k/0001/added", "3")
	if _, err := cli.Compact(reqCtx(t), int64(rev)); err != nil {
		t.Fatal(err)
	}
	p.restore()
	want := "added=3\nkeep=2\n"
	eventually(t, "the changes made while cut off", func() bool {
		b, _ := os.ReadFile(dest)
		return string(b) == want
	})
}

// proxy forwards TCP connections to an etcd member and can cut them all,
// to stand for a network partition that etcd itself cannot simulate.
type proxy struct {
	l      net.Listener
	target string

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{l: l, target: target, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		_ = l.Close() // ends accept
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) addr() string { return p.l.Addr().String() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		p.conns[c], p.conns[up] = true, true
		p.wg.Add(2)
		p.mu.Unlock()
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

func (p *proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src) // ends when either side is closed
	_ = dst.Close()
	_ = src.Close()
}

// cut closes every connection and refuses new ones until restore.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		_ = c.Close()
		delete(p.conns, c)
	}
}

func (p *proxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}
