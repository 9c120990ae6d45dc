package test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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

// TestConsulWatchRefused runs kvconf -watch -listen with 40 resources on
// prefixes of their own against an agent whose limit of connections per
// client (4) is below what the watch's ten queries take (x0 … x9 and the
// prefixes that share their first digit): the agent refuses
// some (HTTP 429). kvconf must render every file from its snapshot, log the
// refusal once with the setting to change, and count the refusals in
// /metrics while it retries them with backoff.
func TestConsulWatchRefused(t *testing.T) {
	a := startConsul(t, false, "limits {\n  http_max_conns_per_client = 4\n}\n")
	cli := consulClientFrom(t, a.http, "127.0.0.2") // the test's own connections do not count
	const n = 40
	kvs := map[string]string{}
	for i := range n {
		kvs[fmt.Sprintf("/refused/x%d/k", i)] = fmt.Sprintf("v%d", i)
	}
	consulLoad(t, cli, kvs)
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	for _, d := range []string{"conf.d", "templates", "out"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "templates", "r.tmpl"), []byte(`{{getv "/k"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		toml := fmt.Sprintf("[template]\nsrc = \"r.tmpl\"\ndest = %q\nprefix = \"/refused/x%d\"\nkeys = [\"/k\"]\n",
			filepath.Join(out, fmt.Sprintf("r%02d.conf", i)), i)
		if err := os.WriteFile(filepath.Join(dir, "conf.d", fmt.Sprintf("r%02d.toml", i)), []byte(toml), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := startKvconf(t, []string{"CONSUL_HTTP_ADDR=", "CONSUL_HTTP_TOKEN="}, "-watch", "-config-file", os.DevNull,
		"-confdir", dir, "-backend", "consul", "-node", a.http, "-listen", "127.0.0.1:0", "-log-format", "json")
	base := p.addr(t)
	for i := range n {
		want := fmt.Sprintf("v%d", i)
		eventually(t, "r"+strconv.Itoa(i)+".conf rendered", func() bool {
			b, err := os.ReadFile(filepath.Join(out, fmt.Sprintf("r%02d.conf", i)))
			return err == nil && string(b) == want
		})
	}
	var refused float64
	eventually(t, "kvconf_backend_refused_total above 0", func() bool {
		m, _ := scrape(t, base)
		for k, v := range m {
			if strings.HasPrefix(k, "kvconf_backend_refused_total{") {
				refused = v
			}
		}
		return refused > 0
	})
	eventually(t, "the refusal logged", func() bool {
		return strings.Contains(p.logs(), "limits.http_max_conns_per_client")
	})
	// Retried with backoff: the count grows, but the warning stays one.
	eventually(t, "more refusals counted", func() bool {
		m, _ := scrape(t, base)
		for k, v := range m {
			if strings.HasPrefix(k, "kvconf_backend_refused_total{") && v > refused {
				return true
			}
		}
		return false
	})
	if c := strings.Count(p.logs(), "per-client limit"); c != 1 {
		t.Errorf("the per-client limit warning logged %d times, want once:\n%s", c, p.logs())
	}
}

// TestConsulWatchInParts watches 200 prefixes of 25 keys each: the watch
// reads the heavy group of p100 … p199 (2,500 keys, which its twelve
// queries cannot cut finer) in parts, asking each part's index and
// listing again only the parts that moved. Every kind of change in one
// part or several must come out as the exact deltas.
func TestConsulWatchInParts(t *testing.T) {
	a := startConsul(t, false)
	cli := a.client(t, "")
	kvs := map[string]string{}
	prefixes := make([]string, 200)
	for i := range prefixes {
		prefixes[i] = fmt.Sprintf("/parts/p%03d", i)
		for k := range 25 {
			kvs[fmt.Sprintf("%s/k%02d", prefixes[i], k)] = "v"
		}
	}
	consulLoad(t, cli, kvs)
	var log lockedBuffer
	cfg := consul.Config{Nodes: []string{a.http}}
	cfg.SetLogger(slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug})))
	c := openConsul(t, cfg)
	s, err := c.Snapshot(reqCtx(t), prefixes)
	if err != nil {
		t.Fatal(err)
	}
	after := s.Rev
	// watch waits for the changes want, over one update or several.
	watch := func(what string, want ...backends.Change) {
		t.Helper()
		var got []backends.Change
		for len(got) < len(want) {
			u := consulWatch(t, c, prefixes, after)
			if u.Full != nil {
				t.Fatalf("%s: a full snapshot, want changes %v", what, want)
			}
			got = append(got, u.Changes...)
			after = u.Rev
		}
		slices.SortFunc(got, func(a, b backends.Change) int { return strings.Compare(a.Key, b.Key) })
		if !slices.Equal(got, want) {
			t.Fatalf("%s: changes %+v, want %+v", what, got, want)
		}
	}
	// The first update may be a full snapshot: the snapshot keeps for the
	// watch only the listings no newer than its revision (the index of its
	// first prefix), and the keys went in by several transactions.
	consulPut(t, cli, "/parts/p150/k03", "changed")
	if u := consulWatch(t, c, prefixes, after); u.Full != nil {
		if got := u.Full.KVs["/parts/p150/k03"]; got != "changed" || len(u.Full.KVs) != 5000 {
			t.Fatalf("full snapshot with %d keys, /parts/p150/k03 = %q; want 5000 keys and %q", len(u.Full.KVs), got, "changed")
		}
		after = u.Rev
		consulPut(t, cli, "/parts/p150/k03", "changed again")
		watch("a value", backends.Change{Key: "/parts/p150/k03", Value: "changed again"})
	} else if !slices.Equal(u.Changes, []backends.Change{{Key: "/parts/p150/k03", Value: "changed"}}) {
		t.Fatalf("a value: changes %+v", u.Changes)
	} else {
		after = u.Rev
	}
	if !strings.Contains(log.String(), `\"/parts/p1\" (in 10 parts)`) {
		t.Fatalf("the watch did not read /parts/p1 in parts:\n%s", log.String())
	}
	consulDelete(t, cli, "/parts/p123/k07", false)
	watch("a deletion", backends.Change{Key: "/parts/p123/k07", Deleted: true})
	consulPut(t, cli, "/parts/p199/new", "n")
	watch("a new key", backends.Change{Key: "/parts/p199/new", Value: "n"})
	consulPut(t, cli, "/parts/p110/k00", "x")
	consulPut(t, cli, "/parts/p190/k00", "y")
	consulPut(t, cli, "/parts/p005/k00", "z") // a group read whole
	watch("three parts at once",
		backends.Change{Key: "/parts/p005/k00", Value: "z"},
		backends.Change{Key: "/parts/p110/k00", Value: "x"},
		backends.Change{Key: "/parts/p190/k00", Value: "y"})
	consulDelete(t, cli, "/parts/p177/", true)
	var gone []backends.Change
	for k := range 25 {
		gone = append(gone, backends.Change{Key: fmt.Sprintf("/parts/p177/k%02d", k), Deleted: true})
	}
	watch("a deleted tree", gone...)
	consulPut(t, cli, "/parts/p177/k00", "back")
	watch("a key in an emptied prefix", backends.Change{Key: "/parts/p177/k00", Value: "back"})
}
