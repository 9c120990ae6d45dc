package test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// The haproxy-runtime tests run the Debian HAProxy (2.6) in master-worker
// mode with a stats socket at level admin, a few Go HTTP backends, and the
// kvconf binary with -watch on embedded etcd. The configuration's servers
// come from the keys /hx/servers/NAME ("127.0.0.1:PORT weight W
// [disabled]"); /hx/rev goes into a frontend line, a structural change.

// hxBackends is the number of HTTP backends a rig starts.
const hxBackends = 6

// hxRig is HAProxy, its backends and kvconf.
type hxRig struct {
	tb      testing.TB
	dir     string // short: holds the unix sockets
	cfg     string // haproxy.cfg, kvconf's dest
	sock    string // the admin stats socket
	master  string // the master CLI socket
	pidfile string
	front   string         // host:port of HAProxy's frontend
	ports   []int          // the backends' ports, by index
	byPort  map[int]string // backend name by port
	etcd    *clientv3.Client
	out     *lockedBuf       // kvconf's and HAProxy's output
	servers map[string]hxSrv // the data, as last put
	rev     int              // /hx/rev, as last put
	dead    int              // a port nothing listens on
	slow    int              // the port of a backend that answers health checks late
	head    string           // the template up to the server lines
	srvLine string           // what follows a server's value on its line
	probe   *http.Client
	slowIn  map[string]*atomic.Int64 // the /slow requests a backend is answering, by name
}

// hxSrv is one server of the data.
type hxSrv struct {
	backend int // index in ports
	weight  int
	maint   bool
	backup  bool   // a backup server
	down    bool   // HAProxy's check counts it down (with fixed: its backend stopped)
	dead    bool   // at the dead port instead
	slow    bool   // at the slow port instead
	fixed   int    // at this port instead: a test's own backend, which answers name
	name    string // with fixed
}

func (s hxSrv) port(r *hxRig) int {
	switch {
	case s.fixed != 0:
		return s.fixed
	case s.dead:
		return r.dead
	case s.slow:
		return r.slow
	}
	return r.ports[s.backend]
}

func (s hxSrv) value(r *hxRig) string {
	v := fmt.Sprintf("127.0.0.1:%d weight %d", s.port(r), s.weight)
	if s.maint {
		v += " disabled"
	}
	if s.backup {
		v += " backup"
	}
	return v
}

// hxOptions say how a rig runs.
type hxOptions struct {
	apply        bool   // with the haproxy-runtime applier
	socket       string // the applier's socket: "" for the admin socket, "user" for one at level user, or a path
	exec         bool   // kvconf exec -- haproxy, with -reload-signal SIGUSR2 and no reload_cmd
	reloadCmd    bool   // without exec: reload_cmd kills the master with SIGUSR2
	srvOpts      string // more options of every server line, such as "check inter 100ms"
	backendLines string // more lines of backend web, each ending in a newline
	checkTimeout string // the applier's check_timeout, when not ""
}

func newHXRig(tb testing.TB, o hxOptions) *hxRig {
	tb.Helper()
	haproxy := requireHAProxy(tb)
	dir, err := os.MkdirTemp("", "kvhx")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = os.RemoveAll(dir) })
	r := &hxRig{tb: tb, dir: dir, cfg: filepath.Join(dir, "haproxy.cfg"), sock: filepath.Join(dir, "admin.sock"),
		master: filepath.Join(dir, "master.sock"), pidfile: filepath.Join(dir, "haproxy.pid"),
		byPort: map[int]string{}, out: &lockedBuf{}, servers: map[string]hxSrv{}, slowIn: map[string]*atomic.Int64{},
		probe: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}}
	tb.Cleanup(r.probe.CloseIdleConnections)
	for i := range hxBackends {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		name := "b" + strconv.Itoa(i)
		in := new(atomic.Int64)
		r.slowIn[name] = in
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if req.URL.Path == "/slow" { // a long request
				in.Add(1)
				defer in.Add(-1)
				select {
				case <-req.Context().Done():
				case <-time.After(2 * time.Second):
				}
			}
			_, _ = io.WriteString(w, name)
		}), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(l) }()
		tb.Cleanup(func() { _ = srv.Close() })
		port := l.Addr().(*net.TCPAddr).Port
		r.ports = append(r.ports, port)
		r.byPort[port] = name
	}
	r.front = freePort(tb)
	r.dead = deadPort(tb)
	r.slow = slowCheckBackend(tb)

	m := startEtcd(tb, nil)
	r.etcd = rawClient(tb, clientv3.Config{Endpoints: urls(m)})
	put(tb, r.etcd, "/hx/rev", "0")
	r.servers["s0"] = hxSrv{backend: 0, weight: 1}
	r.servers["s1"] = hxSrv{backend: 1, weight: 1}
	for n, s := range r.servers {
		put(tb, r.etcd, "/hx/servers/"+n, s.value(r))
	}

	conf := filepath.Join(dir, "conf")
	tmpl := fmt.Sprintf(`global
    stats socket %s level admin expose-fd listeners
    stats socket %s level user
    pidfile %s
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
    retries 3
    option redispatch
frontend f
    bind %s
    http-response set-header X-Pid %%pid
    http-response set-header X-Rev {{getv "/hx/rev"}}
    default_backend web
backend web
    balance roundrobin
    # HAProxy 2.6 keeps a client's server connection across "set server
    # addr": without this, a keep-alive client goes on to the old address.
    option http-server-close
%s`, r.sock, filepath.Join(dir, "user.sock"), r.pidfile, r.front, o.backendLines)
	r.head = tmpl
	r.srvLine = strings.TrimRight(" pool-purge-delay 100ms "+o.srvOpts, " ")
	tmpl += `{{range gets "/hx/servers/*"}}    server {{base .Key}} {{.Value}}` + r.srvLine + "\n{{end}}"
	res := fmt.Sprintf("[template]\nsrc = \"haproxy.cfg.tmpl\"\ndest = %q\nkeys = [\"/hx\"]\ncheck_cmd = \"%s -c -q -f {{.src}}\"\n",
		r.cfg, haproxy)
	if o.reloadCmd && !o.exec {
		res += fmt.Sprintf("reload_cmd = \"test ! -f %[1]s || kill -USR2 $(cat %[1]s)\"\n", r.pidfile)
	}
	if o.apply {
		s := r.sock
		switch o.socket {
		case "":
		case "user":
			s = filepath.Join(dir, "user.sock")
		default:
			s = o.socket
		}
		res += fmt.Sprintf("[template.apply]\ntype = \"haproxy-runtime\"\nsocket = %q\ndrain_timeout = \"20s\"\n", s)
		if o.checkTimeout != "" {
			res += fmt.Sprintf("check_timeout = %q\n", o.checkTimeout)
		}
	}
	for f, c := range map[string]string{"conf.d/haproxy.toml": res, "templates/haproxy.cfg.tmpl": tmpl} {
		if err := os.MkdirAll(filepath.Join(conf, filepath.Dir(f)), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(conf, f), []byte(c), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	flags := []string{"-config-file", os.DevNull, "-confdir", conf, "-backend", "etcd", "-node", m.clientURL.String(),
		"-watch", "-wait", "0s", "-log-level", "debug"}
	hargs := []string{haproxy, "-W", "-db", "-S", r.master, "-f", r.cfg}
	if o.exec {
		argv := append([]string{kvconfBin, "exec", "-reload-signal", "SIGUSR2"}, flags...)
		r.startProc(append(append(argv, "--"), hargs...))
	} else {
		r.startProc(append([]string{kvconfBin}, flags...))
		r.until("kvconf's first render", func() bool { _, err := os.Stat(r.cfg); return err == nil })
		r.startProc(hargs)
	}
	r.until("HAProxy's admin socket", func() bool {
		_, err := r.api(r.sock, "show info")
		return err == nil
	})
	r.until("the master CLI", func() bool { _, err := r.showProc(); return err == nil })
	r.waitTraffic("the first servers", nil)
	return r
}

// requireHAProxy returns the haproxy binary, or skips (fails under CI).
func requireHAProxy(tb testing.TB) string {
	tb.Helper()
	if p, err := exec.LookPath("haproxy"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/haproxy", "/sbin/haproxy"} {
		if isExecutable(p) {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		tb.Fatal("haproxy not found and CI is set: install Debian's haproxy (scripts/test-deps)")
	}
	tb.Skip("haproxy not found: install Debian's haproxy (scripts/test-deps)")
	return ""
}

// startProc starts argv in its own process group, killed at cleanup.
func (r *hxRig) startProc(argv []string) {
	r.tb.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = r.out, r.out
	cmd.Env = execEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		r.tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait() // killed at cleanup
		close(done)
	}()
	r.tb.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
}

// until polls cond for up to watchTimeout.
func (r *hxRig) until(what string, cond func() bool) {
	r.tb.Helper()
	end := time.Now().Add(watchTimeout)
	for !cond() {
		if time.Now().After(end) {
			r.tb.Fatalf("gave up after %v waiting for %s\noutput:\n%s", watchTimeout, what, r.out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// api sends one command to a HAProxy socket and returns the reply.
func (r *hxRig) api(sock, cmd string) (string, error) {
	c, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer func() { _ = c.Close() }()
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return "", err
	}
	if _, err := io.WriteString(c, cmd+"\n"); err != nil {
		return "", err
	}
	// The master CLI answers and closes once the request side is shut.
	if err := c.(*net.UnixConn).CloseWrite(); err != nil {
		return "", err
	}
	b, err := io.ReadAll(c)
	return string(b), err
}

// proc is what "show proc" on the master CLI says.
type hxProc struct {
	master  int
	reloads int
	workers []int // current workers
	old     []int // old workers, still draining
}

func (r *hxRig) showProc() (hxProc, error) {
	out, err := r.api(r.master, "show proc")
	if err != nil {
		return hxProc{}, err
	}
	var p hxProc
	section := ""
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
		case strings.HasPrefix(line, "# workers"):
			section = "workers"
		case strings.HasPrefix(line, "# old workers"):
			section = "old"
		case strings.HasPrefix(line, "#"):
			section = "other"
		case len(f) >= 3 && f[1] == "master":
			p.master, _ = strconv.Atoi(f[0])
			p.reloads, _ = strconv.Atoi(f[2])
		case len(f) >= 2 && f[1] == "worker":
			pid, _ := strconv.Atoi(f[0])
			switch section {
			case "workers":
				p.workers = append(p.workers, pid)
			case "old":
				p.old = append(p.old, pid)
			}
		}
	}
	if p.master == 0 {
		return p, fmt.Errorf("show proc: no master in %q", out)
	}
	return p, nil
}

// reloads returns the master's reload count, -1 while it cannot be read
// (the master re-executes itself on a reload).
func (r *hxRig) reloads() int {
	p, err := r.showProc()
	if err != nil {
		return -1
	}
	return p.reloads
}

// mustProc is showProc, retried while the master re-executes itself.
func (r *hxRig) mustProc() hxProc {
	r.tb.Helper()
	var p hxProc
	r.until("show proc", func() bool {
		var err error
		p, err = r.showProc()
		return err == nil
	})
	return p
}

// expected returns the backends the data sends traffic to: those of the
// servers in service that are not backup servers, or, when there is none,
// those of the backup servers (HAProxy uses the first of them only: tests
// keep at most one backup server in service when no other is).
func (r *hxRig) expected() []string {
	var act, bck []string
	for _, s := range r.servers {
		var name string
		switch {
		case s.maint || s.weight == 0 || s.dead || s.slow || s.down:
			continue
		case s.fixed != 0:
			name = s.name
		default:
			name = "b" + strconv.Itoa(s.backend)
		}
		if s.backup {
			bck = append(bck, name)
		} else {
			act = append(act, name)
		}
	}
	out := act
	if len(act) == 0 {
		out = bck
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// sample sends n requests and returns the backends that answered.
func (r *hxRig) sample(n int) ([]string, error) {
	var got []string
	for range n {
		resp, err := r.probe.Get("http://" + r.front + "/")
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("status %d", resp.StatusCode)
		}
		got = append(got, string(b))
	}
	slices.Sort(got)
	return slices.Compact(got), nil
}

// waitTraffic waits until a sample of requests reaches exactly the
// backends the data names, and returns how long that took from start
// (now when start is nil).
func (r *hxRig) waitTraffic(what string, start *time.Time) time.Duration {
	r.tb.Helper()
	t0 := time.Now()
	if start != nil {
		t0 = *start
	}
	want := r.expected()
	var got []string
	var err error
	end := time.Now().Add(watchTimeout)
	for time.Now().Before(end) {
		got, err = r.sample(8 * len(r.servers))
		if err == nil && slices.Equal(got, want) {
			return time.Since(t0)
		}
	}
	r.tb.Fatalf("%s: traffic reaches %q (last error %v), want %q after %v\noutput:\n%s", what, got, err, want, watchTimeout, r.out)
	return 0
}

// set puts server name's data (or deletes it with del) and returns when.
func (r *hxRig) set(name string, s hxSrv, del bool) time.Time {
	r.tb.Helper()
	t0 := time.Now()
	if del {
		delete(r.servers, name)
		if _, err := r.etcd.Delete(reqCtx(r.tb), "/hx/servers/"+name); err != nil {
			r.tb.Fatal(err)
		}
		return t0
	}
	r.servers[name] = s
	put(r.tb, r.etcd, "/hx/servers/"+name, s.value(r))
	return t0
}

// change makes one random server change: add, remove, re-address,
// weight or maintenance, keeping at least one server in service.
func (r *hxRig) change(rng *rand.Rand) (string, time.Time) {
	r.tb.Helper()
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range r.servers {
			if !yield(n) {
				return
			}
		}
	})
	inService := len(r.expected())
	for {
		switch rng.IntN(5) {
		case 0: // add
			if len(names) >= 8 {
				continue
			}
			var n string
			for i := 0; ; i++ {
				n = "s" + strconv.Itoa(i)
				if _, ok := r.servers[n]; !ok {
					break
				}
			}
			return "add " + n, r.set(n, hxSrv{backend: rng.IntN(hxBackends), weight: 1 + rng.IntN(3)}, false)
		case 1: // remove
			if len(names) <= 2 {
				continue
			}
			n := names[rng.IntN(len(names))]
			if s := r.servers[n]; !s.maint && s.weight > 0 && inService <= 1 {
				continue
			}
			old := r.servers
			r.servers = map[string]hxSrv{}
			for k, v := range old {
				if k != n {
					r.servers[k] = v
				}
			}
			if len(r.expected()) == 0 {
				r.servers = old
				continue
			}
			r.servers = old
			return "remove " + n, r.set(n, hxSrv{}, true)
		case 2: // re-address
			n := names[rng.IntN(len(names))]
			s := r.servers[n]
			s.backend = (s.backend + 1 + rng.IntN(hxBackends-1)) % hxBackends
			return "re-address " + n, r.set(n, s, false)
		case 3: // weight
			n := names[rng.IntN(len(names))]
			s := r.servers[n]
			s.weight = 1 + (s.weight+rng.IntN(2))%3
			return "weight " + n, r.set(n, s, false)
		case 4: // maintenance
			n := names[rng.IntN(len(names))]
			s := r.servers[n]
			if !s.maint && inService <= 1 {
				continue
			}
			old := r.servers[n]
			s.maint = !s.maint
			r.servers[n] = s
			if len(r.expected()) == 0 {
				r.servers[n] = old
				continue
			}
			r.servers[n] = old
			return "maintenance " + n, r.set(n, s, false)
		}
	}
}

// load sends requests continuously from a few keep-alive clients until
// ctx is done, and counts them.
type hxLoad struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	errs       []string
	wg         sync.WaitGroup
}

func (r *hxRig) startLoad(ctx context.Context, clients int) *hxLoad {
	l := &hxLoad{}
	for range clients {
		c := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 2}}
		l.wg.Go(func() {
			defer c.CloseIdleConnections()
			for ctx.Err() == nil {
				resp, err := c.Get("http://" + r.front + "/")
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
					if err == nil && resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					l.failed.Add(1)
					l.mu.Lock()
					if len(l.errs) < 10 {
						l.errs = append(l.errs, err.Error())
					}
					l.mu.Unlock()
					continue
				}
				l.ok.Add(1)
			}
		})
	}
	return l
}

// keepAlive is one HTTP/1.1 connection to HAProxy, held open.
type keepAlive struct {
	c  net.Conn
	br *bufio.Reader
}

func (r *hxRig) dialKeepAlive() *keepAlive {
	r.tb.Helper()
	c, err := net.DialTimeout("tcp", r.front, 5*time.Second)
	if err != nil {
		r.tb.Fatal(err)
	}
	r.tb.Cleanup(func() { _ = c.Close() })
	return &keepAlive{c: c, br: bufio.NewReader(c)}
}

// get sends one request on the connection and returns the X-Pid header.
func (k *keepAlive) get() (string, error) {
	if err := k.c.SetDeadline(time.Now().Add(20 * time.Second)); err != nil {
		return "", err
	}
	if _, err := io.WriteString(k.c, "GET / HTTP/1.1\r\nHost: hx\r\n\r\n"); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(k.br, nil)
	if err != nil {
		return "", err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return "", err
	}
	if resp.Close {
		return "", errors.New("HAProxy closes the connection")
	}
	return resp.Header.Get("X-Pid"), nil
}

// structural puts a new /hx/rev, a change of a frontend line.
func (r *hxRig) structural(rev int) {
	r.tb.Helper()
	r.rev = rev
	put(r.tb, r.etcd, "/hx/rev", strconv.Itoa(rev))
	r.until("X-Rev "+strconv.Itoa(rev), func() bool {
		resp, err := r.probe.Get("http://" + r.front + "/")
		if err != nil {
			return false
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp.Header.Get("X-Rev") == strconv.Itoa(rev)
	})
}

// TestHAProxyRuntime makes 50 server changes under load: HAProxy applies
// them without reloading, traffic follows the data, a keep-alive
// connection survives on the same worker; then 3 structural changes each
// reload HAProxy once.
//
// Every server has a health check (inter 100ms): a server that goes in
// service (added, re-addressed, no longer disabled) does so once its check
// passed, all without a reload. (TestHAProxyRuntimeExec runs servers
// without checks.)
func TestHAProxyRuntime(t *testing.T) {
	r := newHXRig(t, hxOptions{apply: true, reloadCmd: true, srvOpts: "check inter 100ms"})
	testServerChanges(t, r, 50)
	if out := r.out.String(); !strings.Contains(out, "health check passed") {
		t.Fatalf("no server went in service after its health check:\n%s", out)
	}
}

// TestHAProxyRuntimeExec is TestHAProxyRuntime with HAProxy as kvconf's
// child (kvconf exec), where -reload-signal is the fallback.
func TestHAProxyRuntimeExec(t *testing.T) {
	r := newHXRig(t, hxOptions{apply: true, exec: true})
	testServerChanges(t, r, 50)
}

func testServerChanges(t *testing.T, r *hxRig, changes int) {
	p0 := r.mustProc()
	if len(p0.workers) != 1 {
		t.Fatalf("show proc: workers %v, want one", p0.workers)
	}
	ka := r.dialKeepAlive()
	pid0, err := ka.get()
	if err != nil {
		t.Fatal(err)
	}

	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	load := r.startLoad(ctx, 3)
	rng := rand.New(rand.NewPCG(17, 17))
	var lat []time.Duration
	for i := range changes {
		what, t0 := r.change(rng)
		lat = append(lat, r.waitTraffic(fmt.Sprintf("change %d (%s)", i+1, what), &t0))
		pid, err := ka.get()
		if err != nil {
			t.Fatalf("keep-alive connection after change %d (%s): %v", i+1, what, err)
		}
		if pid != pid0 {
			t.Fatalf("keep-alive connection answered by pid %s after change %d, want %s", pid, i+1, pid0)
		}
	}
	p1 := r.mustProc()
	if p1.reloads != p0.reloads || !slices.Equal(p1.workers, p0.workers) {
		t.Fatalf("after %d server changes: %d reloads, workers %v; want %d, %v\noutput:\n%s",
			changes, p1.reloads, p1.workers, p0.reloads, p0.workers, r.out)
	}
	slices.Sort(lat)
	t.Logf("%d server changes without reload: put to traffic min %v, median %v, max %v",
		changes, lat[0], lat[len(lat)/2], lat[len(lat)-1])

	for i := 1; i <= 3; i++ {
		r.structural(i)
		want := p0.reloads + i
		r.until(fmt.Sprintf("reload %d", i), func() bool { return r.reloads() == want })
		// A server change after it is applied live by the new worker.
		what, t0 := r.change(rng)
		r.waitTraffic("after structural change "+strconv.Itoa(i)+" ("+what+")", &t0)
	}
	if p := r.mustProc(); p.reloads != p0.reloads+3 {
		t.Fatalf("after 3 structural changes: %d reloads, want %d", p.reloads, p0.reloads+3)
	}
	stop()
	load.wg.Wait()
	t.Logf("load: %d requests, %d failed", load.ok.Load(), load.failed.Load())
	if n := load.failed.Load(); n != 0 {
		t.Fatalf("%d requests failed: %q", n, load.errs)
	}
	if load.ok.Load() == 0 {
		t.Fatal("no request succeeded")
	}
}

// TestHAProxyRuntimeBackup flips, under load, the backup option of a
// server and back, one server then the other (the second time with its
// weight changed too): an option set that "add server" takes but "set
// server" cannot change. Each flip replaces the server at run time: it
// goes in maintenance, its sessions drain, "del server", "add server" with
// the new options, its health check passes, "state ready". No reload, no
// failed request, dest is the render, HAProxy's servers (backup flag
// included, from "show stat") are the data's, and a backup server gets no
// request while a server that is not a backup is up.
func TestHAProxyRuntimeBackup(t *testing.T) {
	r := newHXRig(t, hxOptions{apply: true, reloadCmd: true, srvOpts: "check inter 100ms"})
	p0 := r.mustProc()
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	load := r.startLoad(ctx, 3)
	// Long requests (2 s) too, so that a replaced server has sessions to
	// drain before it is deleted: none may fail.
	var slowOK, slowFailed atomic.Int64
	var slowErr atomic.Value
	var slow sync.WaitGroup
	for range 4 {
		slow.Go(func() {
			c := &http.Client{Timeout: 30 * time.Second}
			defer c.CloseIdleConnections()
			for ctx.Err() == nil {
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.front+"/slow", nil)
				if err != nil {
					t.Error(err)
					return
				}
				resp, err := c.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
					if err == nil && resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				switch {
				case ctx.Err() != nil:
				case err != nil:
					slowFailed.Add(1)
					slowErr.Store(err.Error())
				default:
					slowOK.Add(1)
				}
			}
		})
	}
	out0 := len(r.out.String()) // the first render's fallback before

	steps := []struct {
		name string
		edit func(*hxSrv)
	}{
		{"s1", func(s *hxSrv) { s.backup = true }},
		{"s1", func(s *hxSrv) { s.backup = false }},
		{"s0", func(s *hxSrv) { s.backup, s.weight = true, 2 }},
		{"s0", func(s *hxSrv) { s.backup, s.weight = false, 1 }},
	}
	for i, st := range steps {
		s := r.servers[st.name]
		st.edit(&s)
		what := fmt.Sprintf("step %d (%s backup %v)", i+1, st.name, s.backup)
		if s.backup {
			// The server takes traffic until the change: wait for a long
			// request on it, which the replacement must let end. (As a
			// backup server, it had none.)
			b := "b" + strconv.Itoa(s.backend)
			r.until(what+": a 2 s request in flight on "+b, func() bool { return r.slowIn[b].Load() > 0 })
		}
		t0 := r.set(st.name, s, false)
		r.waitApplied(what)
		d := r.waitTraffic(what, &t0)
		// Applied: every request reaches exactly the servers the data
		// names; a backup server none while the other is up.
		got, err := r.sample(40)
		if err != nil || !slices.Equal(got, r.expected()) {
			t.Fatalf("%s: after the change, traffic reaches %q (%v), want %q", what, got, err, r.expected())
		}
		t.Logf("%s: put to traffic %v", what, d)
	}
	stop()
	load.wg.Wait()
	slow.Wait()
	t.Logf("load: %d requests, %d failed; 2 s requests: %d, %d failed", load.ok.Load(), load.failed.Load(), slowOK.Load(), slowFailed.Load())
	if n := load.failed.Load(); n != 0 {
		t.Fatalf("%d requests failed: %q", n, load.errs)
	}
	if n := slowFailed.Load(); n != 0 {
		t.Fatalf("%d 2 s requests failed, the last: %v", n, slowErr.Load())
	}
	if load.ok.Load() == 0 || slowOK.Load() == 0 {
		t.Fatal("no request succeeded")
	}
	if p := r.mustProc(); p.reloads != p0.reloads || !slices.Equal(p.workers, p0.workers) {
		t.Fatalf("%d reloads, workers %v; want 0, %v\noutput:\n%s", p.reloads-p0.reloads, p.workers, p0.workers, r.out)
	}
	out := r.out.String()[out0:]
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "server replaced") {
			t.Log(line)
		}
	}
	if n := strings.Count(out, "server replaced"); n != len(steps) {
		t.Fatalf("%d servers replaced at run time, want %d:\n%s", n, len(steps), out)
	}
	if !strings.Contains(out, "health check passed") || strings.Contains(out, "apply fallback") {
		t.Fatalf("a replaced server did not go in service after its health check, or a change fell back:\n%s", out)
	}
}

// TestHAProxyRuntimeReplaceOnly changes, under load, the options of the
// only server in service of the backend (s0 made a backup server):
// replacing it would leave no server to take its traffic meanwhile, so the
// change falls back to the reload, logged with that reason, before s0
// leaves. The other server, s1, is out of service by the data (disabled,
// at run time: the plan says so), or by HAProxy's health check (its
// backend stopped: HAProxy's "show servers state" says so). One reload,
// no failed request, dest is the render and HAProxy's servers the data's.
func TestHAProxyRuntimeReplaceOnly(t *testing.T) {
	tests := []struct {
		name string
		why  string // in the fallback's log line
		// out takes s1 out of service, without a reload.
		out func(t *testing.T, r *hxRig)
	}{
		{"the other disabled", "server s0: options changed, and it is the only server in service",
			func(_ *testing.T, r *hxRig) {
				s1 := r.servers["s1"]
				s1.maint = true
				t0 := r.set("s1", s1, false)
				r.waitApplied("s1 disabled")
				r.waitTraffic("s1 disabled", &t0)
			}},
		{"the other down", "server s0: options changed, and no other server of the backend is up",
			func(t *testing.T, r *hxRig) {
				l, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
					_, _ = io.WriteString(w, "own")
				}), ReadHeaderTimeout: 10 * time.Second}
				go func() { _ = srv.Serve(l) }()
				t.Cleanup(func() { _ = srv.Close() })
				t0 := r.set("s1", hxSrv{weight: 1, fixed: l.Addr().(*net.TCPAddr).Port, name: "own"}, false)
				r.waitApplied("s1 at the test's own backend")
				r.waitTraffic("s1 at the test's own backend", &t0)
				// Stopped gracefully: HAProxy's check counts s1 down,
				// and requests on their way to it go to s0.
				if err := srv.Shutdown(t.Context()); err != nil {
					t.Fatal(err)
				}
				s1 := r.servers["s1"]
				s1.down = true
				r.servers["s1"] = s1
				r.until("HAProxy to count s1 down", func() bool {
					down, err := r.down()
					return err == nil && slices.Contains(down, "s1")
				})
				r.waitTraffic("s1 down", nil)
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newHXRig(t, hxOptions{apply: true, reloadCmd: true, srvOpts: "check inter 100ms"})
			p0 := r.mustProc()
			ctx, stop := context.WithCancel(t.Context())
			defer stop()
			load := r.startLoad(ctx, 3)
			out0 := len(r.out.String()) // the first render's fallback before

			tt.out(t, r)
			if p := r.mustProc(); p.reloads != p0.reloads {
				t.Fatalf("s1 out of service: %d reloads, want 0\noutput:\n%s", p.reloads-p0.reloads, r.out)
			}
			s0 := r.servers["s0"]
			s0.backup = true
			t0 := r.set("s0", s0, false)
			r.until("the fallback reload", func() bool { return r.reloads() == p0.reloads+1 })
			r.waitApplied("s0 backup")
			r.waitTraffic("s0 backup, the only server in service", &t0)
			time.Sleep(time.Second) // a while under load, then the count
			stop()
			load.wg.Wait()
			t.Logf("load: %d requests, %d failed", load.ok.Load(), load.failed.Load())
			if n := load.failed.Load(); n != 0 {
				t.Fatalf("%d requests failed: %q", n, load.errs)
			}
			if load.ok.Load() == 0 {
				t.Fatal("no request succeeded")
			}
			if p := r.mustProc(); p.reloads != p0.reloads+1 {
				t.Fatalf("%d reloads, want 1", p.reloads-p0.reloads)
			}
			out := r.out.String()[out0:]
			var fallback []string
			for _, line := range strings.Split(out, "\n") {
				if strings.Contains(line, "apply fallback") {
					fallback = append(fallback, line)
				}
			}
			if len(fallback) != 1 || !strings.Contains(fallback[0], "reason=unsupported") || !strings.Contains(fallback[0], tt.why) {
				t.Fatalf("fallbacks %q, want one, unsupported, with %q\noutput:\n%s", fallback, tt.why, r.out)
			}
			t.Log(fallback[0])
			if strings.Contains(out, "server replaced") || strings.Contains(out, "web/s0 is going DOWN for maintenance") {
				t.Fatalf("s0 was taken out of service:\n%s", out)
			}
		})
	}
}

// waitApplied waits until the data's change is applied: dest is the
// render, and HAProxy's servers (backup flag included) are the data's.
func (r *hxRig) waitApplied(what string) {
	r.tb.Helper()
	want := r.render()
	r.until(what+": dest to be the new render", func() bool {
		b, err := os.ReadFile(r.cfg)
		return err == nil && string(b) == want
	})
	r.until(what+": HAProxy's servers to be the data's", func() bool {
		v, err := r.view()
		if err != nil || !maps.Equal(v, r.wantView()) {
			return false
		}
		bck, err := r.backups()
		return err == nil && maps.Equal(bck, r.wantBackups())
	})
}

// TestHAProxyRuntimeFallback checks that a server change the applier
// cannot apply (socket missing, the API refusing the command) is applied
// by the fallback reload, with dest correct.
func TestHAProxyRuntimeFallback(t *testing.T) {
	tests := []struct {
		name, socket string
		why          string
	}{
		{"socket missing", "/nonexistent/kvconf-admin.sock", "no such file"},
		{"api error", "user", "Permission denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newHXRig(t, hxOptions{apply: true, socket: tt.socket, reloadCmd: true})
			p0 := r.mustProc()
			t0 := r.set("s2", hxSrv{backend: 2, weight: 2}, false)
			r.waitTraffic("added server", &t0)
			r.until("the fallback reload", func() bool { return r.reloads() == p0.reloads+1 })
			b, err := os.ReadFile(r.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf("server s2 127.0.0.1:%d weight 2 pool-purge-delay 100ms\n", r.ports[2]); !strings.Contains(string(b), want) {
				t.Fatalf("dest lacks %q:\n%s", want, b)
			}
			if out := r.out.String(); !strings.Contains(out, "apply fallback") || !strings.Contains(out, tt.why) {
				t.Fatalf("no fallback logged with %q:\n%s", tt.why, out)
			}
		})
	}
}

// BenchmarkHAProxyServerChange quotes, per server change, the time from
// the put to traffic on the new server, and the most HAProxy processes
// and RSS seen after a change while clients keep 2 s requests going (an
// old worker lingers until its requests end): with the runtime applier,
// and with reloads. Run with -benchtime 50x for the 50 changes.
func BenchmarkHAProxyServerChange(b *testing.B) {
	for _, mode := range []string{"runtime", "reload"} {
		b.Run(mode, func(b *testing.B) {
			r := newHXRig(b, hxOptions{apply: mode == "runtime", reloadCmd: true})
			ctx, stop := context.WithCancel(b.Context())
			var wg sync.WaitGroup
			defer func() { stop(); wg.Wait() }()
			for range 4 {
				wg.Go(func() {
					c := &http.Client{Timeout: 30 * time.Second}
					for ctx.Err() == nil {
						req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.front+"/slow", nil)
						if resp, err := c.Do(req); err == nil {
							_, _ = io.Copy(io.Discard, resp.Body)
							_ = resp.Body.Close()
						}
					}
				})
			}
			rng := rand.New(rand.NewPCG(1, 2))
			var total time.Duration
			maxProcs, maxRSS := 0, 0
			p0 := r.mustProc()
			b.ResetTimer()
			for i := range b.N {
				// Re-address s0 to another backend: its traffic moves.
				s := r.servers["s0"]
				s.backend = (s.backend + 1 + rng.IntN(hxBackends-1)) % hxBackends
				for s.backend == r.servers["s1"].backend {
					s.backend = (s.backend + 1) % hxBackends
				}
				t0 := r.set("s0", s, false)
				total += r.waitTraffic("change "+strconv.Itoa(i), &t0)
				b.StopTimer()
				p := r.mustProc()
				pids := append(append([]int{p.master}, p.workers...), p.old...)
				rss := 0
				for _, pid := range pids {
					rss += rssKB(pid)
				}
				maxProcs, maxRSS = max(maxProcs, len(pids)), max(maxRSS, rss)
				b.StartTimer()
			}
			b.StopTimer()
			b.ReportMetric(float64(total.Microseconds())/float64(b.N)/1000, "ms-put-to-traffic/op")
			b.ReportMetric(float64(maxProcs), "max-haproxy-procs")
			b.ReportMetric(float64(maxRSS)/1024, "max-haproxy-rss-MB")
			b.ReportMetric(float64(r.mustProc().reloads-p0.reloads), "reloads")
		})
	}
}

// rssKB returns the resident set of a process in KiB, 0 if unknown.
func rssKB(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return 0
}
