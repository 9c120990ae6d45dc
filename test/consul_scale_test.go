package test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/backends/consul"
	"github.com/kvconf/kvconf/backends/consul/catalog"
)

// maxConsulConns is the most connections from kvconf to one agent that
// issue 19 allows, counting those the agent still holds in CLOSE-WAIT.
const maxConsulConns = 16

// TestConsulWatchScale runs kvconf -watch with 200, then 1,000 resources,
// each on a prefix of its own, over 10,000 keys, against a dev agent at
// Consul's default limits (http_max_conns_per_client 200). It changes 20
// keys, each under a different prefix, 250 ms apart, and checks that all
// 20 files follow, that the agent never refuses a connection (HTTP 429,
// which kvconf would log), and that kvconf never holds more than
// [maxConsulConns] connections to the agent, counted with ss on the
// agent's side every 50 ms, CLOSE-WAIT included.
func TestConsulWatchScale(t *testing.T) {
	for _, n := range []int{200, 1000} {
		t.Run(fmt.Sprintf("resources=%d", n), func(t *testing.T) {
			a := startConsul(t, false)
			// The test's own requests come from 127.0.0.2, so that the
			// connections from 127.0.0.1 are kvconf's.
			cli := consulClientFrom(t, a.http, "127.0.0.2")
			width := len(strconv.Itoa(n - 1))
			prefix := func(i int) string { return fmt.Sprintf("scale/p%0*d", width, i) }
			kvs := make(map[string]string, 10_000)
			for k := range 10_000 {
				kvs[fmt.Sprintf("/%s/k%05d", prefix(k%n), k)] = "v" + strconv.Itoa(k)
			}
			consulLoad(t, cli, kvs)

			dir := t.TempDir()
			out := filepath.Join(dir, "out")
			for _, d := range []string{"conf.d", "templates", "out"} {
				if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			tmpl := `{{range gets "/*"}}{{.Key}}={{.Value}}` + "\n{{end}}"
			if err := os.WriteFile(filepath.Join(dir, "templates", "r.tmpl"), []byte(tmpl), 0o644); err != nil {
				t.Fatal(err)
			}
			for i := range n {
				toml := fmt.Sprintf("[template]\nsrc = \"r.tmpl\"\ndest = %q\nprefix = %q\nkeys = [\"/\"]\n",
					filepath.Join(out, fmt.Sprintf("r%04d.conf", i)), "/"+prefix(i))
				if err := os.WriteFile(filepath.Join(dir, "conf.d", fmt.Sprintf("r%04d.toml", i)), []byte(toml), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			conns := sampleConns(t, a.http, "127.0.0.1")
			p := start(t, []string{kvconfBin, "-watch", "-config-file", os.DevNull, "-confdir", dir,
				"-backend", "consul", "-node", a.http, "-log-level", "info"}, nil, "CONSUL_HTTP_ADDR=", "CONSUL_HTTP_TOKEN=")
			file := func(i int) string { return filepath.Join(out, fmt.Sprintf("r%04d.conf", i)) }
			deadline := time.Now().Add(2 * time.Minute)
			for i := range n {
				for !fileHas(file(i), "=v") {
					if time.Now().After(deadline) {
						t.Fatalf("%s not rendered after 2 minutes\nkvconf stderr:\n%s", file(i), p.stderr)
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
			// Let the watch settle: its queries blocking on every group.
			time.Sleep(time.Second)

			const changes = 20
			changed := make([]int, changes)
			for j := range changes {
				i := (j*n/changes + j) % n // spread over the prefixes
				changed[j] = i
				consulPut(t, cli, fmt.Sprintf("/%s/k%05d", prefix(i), i), fmt.Sprintf("changed-%d", j))
				time.Sleep(250 * time.Millisecond)
			}
			seen := 0
			deadline = time.Now().Add(60 * time.Second)
			for j, i := range changed {
				want := fmt.Sprintf("=changed-%d\n", j)
				for !fileHas(file(i), want) && time.Now().Before(deadline) {
					time.Sleep(20 * time.Millisecond)
				}
				if fileHas(file(i), want) {
					seen++
				} else {
					t.Errorf("change %d under /%s not in %s", j, prefix(i), file(i))
				}
			}
			peak := conns.stop()
			t.Logf("%d resources: %d/%d changes seen; at most %d connections from kvconf to the agent", n, seen, changes, peak)
			if peak > maxConsulConns {
				t.Errorf("kvconf held up to %d connections to the agent, want at most %d", peak, maxConsulConns)
			}
			logs := p.stderr.String()
			for _, bad := range []string{"HTTP 429", "backend down", "per-client limit"} {
				if strings.Contains(logs, bad) {
					t.Errorf("kvconf logged %q:\n%s", bad, logs)
				}
			}
			a.mu.Lock()
			agentLog := a.log.String()
			a.mu.Unlock()
			if strings.Contains(strings.ToLower(agentLog), "too many") {
				t.Errorf("the agent refused connections:\n%s", agentLog)
			}
		})
	}
}

// consulClientFrom returns an API client of the agent at addr whose
// connections come from the local address local (a loopback address
// other than 127.0.0.1), so that ss tells them from kvconf's.
func consulClientFrom(t testing.TB, addr, local string) *api.Client {
	t.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	tr.DialContext = d.DialContext
	cfg := api.DefaultConfig()
	cfg.Address = addr
	cfg.Token = ""
	cfg.HttpClient = &http.Client{Transport: tr}
	cli, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.CloseIdleConnections)
	return cli
}

// connSampler counts, every 50 ms, the TCP connections that the agent
// at addr holds with peers at the address from, and keeps the highest
// count.
type connSampler struct {
	mu     sync.Mutex
	peak   int
	cancel context.CancelFunc
	done   chan struct{}
}

// sampleConns starts a [connSampler]; stop ends it and returns the peak.
func sampleConns(t *testing.T, addr, from string) *connSampler {
	t.Helper()
	if _, err := exec.LookPath("ss"); err != nil {
		t.Fatal("ss (iproute2) is needed to count connections: apt-get install iproute2")
	}
	ctx, cancel := context.WithCancel(t.Context())
	s := &connSampler{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			n, err := countConns(ctx, addr, from)
			if err == nil {
				s.mu.Lock()
				s.peak = max(s.peak, n)
				s.mu.Unlock()
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { s.stop() })
	return s
}

func (s *connSampler) stop() int {
	s.cancel()
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}

// countConns counts the sockets of the agent at addr (its local side)
// connected to a peer at address from, in any state but LISTEN:
// established ones and those the peer has closed (CLOSE-WAIT).
func countConns(ctx context.Context, addr, from string) (int, error) {
	out, err := exec.CommandContext(ctx, "ss", "-Htan").Output()
	if err != nil {
		return 0, err
	}
	n := 0
	for line := range bytes.Lines(out) {
		f := strings.Fields(string(line))
		if len(f) < 5 || f[0] == "LISTEN" || f[3] != addr {
			continue
		}
		if host, _, err := net.SplitHostPort(f[4]); err == nil && host == from {
			n++
		}
	}
	return n, nil
}

// TestConsulWatchManyServices watches more services of one datacenter
// than get a health query each (they then share the datacenter's nodes,
// checks and services queries): a new instance of one service, and a
// check of another going critical, come out as changes of those
// services only.
func TestConsulWatchManyServices(t *testing.T) {
	a := startConsul(t, false)
	cli := a.client(t, "")
	svcKey := func(name string) string { return catalog.Query{Kind: catalog.KindService, Name: name}.Prefix() }
	var prefixes []string
	for i := range 6 {
		name := fmt.Sprintf("svc%d", i)
		catRegister(t, cli, name, name+"-1", "10.0.0.1", 8000+i, nil, api.HealthPassing)
		prefixes = append(prefixes, svcKey(name))
	}
	c := openConsul(t, consul.Config{Nodes: []string{a.http}})
	// Twice: a snapshot's revision is the highest index seen before it,
	// so the second holds every listing at its revision.
	var s backends.Snapshot
	for range 2 {
		var err error
		if s, err = c.Snapshot(reqCtx(t), prefixes); err != nil {
			t.Fatal(err)
		}
	}
	after, state := s.Rev, s.KVs
	catRegister(t, cli, "svc4", "svc4-2", "10.0.0.2", 9000, nil, api.HealthPassing)
	after = catWatchUntil(t, c, prefixes, after, state, []string{svcKey("svc4")},
		catStatusesAre(t, svcKey("svc4"), map[string]string{"svc4-1": catalog.StatusPassing, "svc4-2": catalog.StatusPassing}))
	catCheck(t, cli, "svc1-1", api.HealthCritical)
	catWatchUntil(t, c, prefixes, after, state, []string{svcKey("svc1")},
		catStatusesAre(t, svcKey("svc1"), map[string]string{"svc1-1": catalog.StatusCritical}))
}
