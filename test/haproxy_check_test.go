package test

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestHAProxyRuntimeCheck is issue 17's fault case "the new server fails a
// check": a change puts in service a server (with a health check) whose
// check fails, or does not pass within check_timeout. The applier must not
// put it in service; the resource falls back to its reload, which
// HAProxy takes once; dest is the new render, HAProxy's servers are the
// file's, and a load generator sees no failed request throughout.
//
// The configuration has "retries 3" and "option redispatch", as an
// operator's would: after the fallback reload HAProxy counts a server of
// the file up until its first check (it starts every checked server so),
// and a request sent to a dead one in that window is retried on another.
func TestHAProxyRuntimeCheck(t *testing.T) {
	check := hxOptions{apply: true, reloadCmd: true, srvOpts: "check inter 100ms"}
	late := check
	// The check answers after 30 s, far past check_timeout; the server
	// answers other requests at once.
	late.backendLines = "    option httpchk GET /health\n    timeout check 30s\n"
	late.checkTimeout = "2s"
	tests := []struct {
		name string
		opts hxOptions
		srv  string // the server changed
		data func(r *hxRig) hxSrv
		why  []string // in the fallback's log line
	}{
		{"add, nothing listening", check, "s2",
			func(*hxRig) hxSrv { return hxSrv{weight: 2, dead: true} },
			[]string{"server web/s2: health check failed: L4CON"}},
		{"re-address, nothing listening", check, "s1",
			func(r *hxRig) hxSrv { s := r.servers["s1"]; s.dead = true; return s },
			[]string{"server web/s1: health check failed: L4CON"}},
		{"add, check answers late", late, "s2",
			func(*hxRig) hxSrv { return hxSrv{weight: 1, slow: true} },
			[]string{"server web/s2: health check did not pass within check_timeout 2s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newHXRig(t, tt.opts)
			p0 := r.mustProc()
			ctx, stop := context.WithCancel(t.Context())
			defer stop()
			load := r.startLoad(ctx, 3)

			s := tt.data(r)
			t0 := r.set(tt.srv, s, false)
			r.until("the fallback reload", func() bool { return r.reloads() == p0.reloads+1 })
			if !s.slow { // the late server takes traffic until its check times out
				r.waitTraffic("after the fallback", &t0)
			}
			want := r.render()
			var got []byte
			r.until("dest to be the new render", func() bool {
				got, _ = os.ReadFile(r.cfg)
				return string(got) == want
			})
			r.until("HAProxy's servers to be the file's", func() bool {
				v, err := r.view()
				return err == nil && maps.Equal(v, r.wantView())
			})
			if s.dead {
				r.until("HAProxy to count "+tt.srv+" down", func() bool {
					down, err := r.down()
					return err == nil && slices.Contains(down, tt.srv)
				})
			}
			// A while under load, then the count.
			time.Sleep(time.Second)
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
			out := r.out.String()
			for _, w := range append([]string{"apply fallback"}, tt.why...) {
				if !strings.Contains(out, w) {
					t.Fatalf("no fallback logged with %q:\n%s", w, out)
				}
			}
			for _, line := range strings.Split(out, "\n") {
				if strings.Contains(line, "apply fallback") {
					t.Log(line)
				}
			}
		})
	}
}

// TestHAProxyRuntimeCheckPasses adds, under load, a server whose HTTP
// health check answers (after 300 ms): it goes in service without a
// reload, and no request reaches it before HAProxy's first check of it
// was answered.
func TestHAProxyRuntimeCheckPasses(t *testing.T) {
	r := newHXRig(t, hxOptions{apply: true, reloadCmd: true, srvOpts: "check inter 100ms",
		backendLines: "    option httpchk GET /health\n    timeout check 10s\n"})
	var checked atomic.Bool
	var early atomic.Int64
	port := testBackend(t, func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/health" {
			select {
			case <-req.Context().Done():
			case <-time.After(300 * time.Millisecond):
			}
			checked.Store(true)
		} else if !checked.Load() {
			early.Add(1)
		}
		_, _ = io.WriteString(w, "late")
	})
	p0 := r.mustProc()
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	load := r.startLoad(ctx, 3)

	t0 := r.set("s2", hxSrv{weight: 1, fixed: port, name: "late"}, false)
	d := r.waitTraffic("the checked server", &t0)
	stop()
	load.wg.Wait()
	t.Logf("put to traffic %v; load: %d requests, %d failed", d, load.ok.Load(), load.failed.Load())
	if n := early.Load(); n != 0 {
		t.Fatalf("%d requests reached the server before its health check was answered", n)
	}
	if n := load.failed.Load(); n != 0 {
		t.Fatalf("%d requests failed: %q", n, load.errs)
	}
	if p := r.mustProc(); p.reloads != p0.reloads {
		t.Fatalf("%d reloads, want 0\noutput:\n%s", p.reloads-p0.reloads, r.out)
	}
	if b, err := os.ReadFile(r.cfg); err != nil || string(b) != r.render() {
		t.Fatalf("dest is not the new render (%v):\n%s", err, b)
	}
	if v, err := r.view(); err != nil || !maps.Equal(v, r.wantView()) {
		t.Fatalf("HAProxy's servers %v (%v), want %v", v, err, r.wantView())
	}
	if out := r.out.String(); !strings.Contains(out, "health check passed") || strings.Contains(out, "health check failed") {
		t.Fatalf("the server did not go in service after its health check:\n%s", out)
	}
}

// render returns what kvconf renders of the data.
func (r *hxRig) render() string {
	var b strings.Builder
	b.WriteString(strings.Replace(r.head, `{{getv "/hx/rev"}}`, strconv.Itoa(r.rev), 1))
	for _, n := range slices.Sorted(maps.Keys(r.servers)) {
		fmt.Fprintf(&b, "    server %s %s%s\n", n, r.servers[n].value(r), r.srvLine)
	}
	return b.String()
}

// wantView returns the servers of the data as [hxRig.view] shows them.
func (r *hxRig) wantView() map[string]string {
	m := map[string]string{}
	for n, s := range r.servers {
		m[n] = fmt.Sprintf("127.0.0.1:%d weight %d maint %v", s.port(r), s.weight, s.maint)
	}
	return m
}

// wantBackups returns whether each server of the data is a backup
// server, by name.
func (r *hxRig) wantBackups() map[string]bool {
	m := map[string]bool{}
	for n, s := range r.servers {
		m[n] = s.backup
	}
	return m
}

// backups returns whether HAProxy has each server of backend web as a
// backup server, by name: the bck column of "show stat" ("show servers
// state" has no backup flag).
func (r *hxRig) backups() (map[string]bool, error) {
	out, err := r.api(r.sock, "show stat web 4 -1")
	if err != nil {
		return nil, err
	}
	cr := csv.NewReader(strings.NewReader(strings.TrimPrefix(strings.TrimSpace(out), "# ")))
	cr.FieldsPerRecord = -1
	recs, err := cr.ReadAll()
	if err != nil || len(recs) == 0 {
		return nil, fmt.Errorf("show stat: %q: %w", out, err)
	}
	m := map[string]bool{}
	for _, rec := range recs[1:] {
		row := map[string]string{}
		for i, c := range recs[0] {
			if i < len(rec) {
				row[c] = rec[i]
			}
		}
		if row["pxname"] != "web" || row["bck"] == "" {
			return nil, fmt.Errorf("show stat: row %q", rec)
		}
		m[row["svname"]] = row["bck"] == "1"
	}
	return m, nil
}

// serversState returns "show servers state web" as one map of column to
// value per server, by name.
func (r *hxRig) serversState() (map[string]map[string]string, error) {
	out, err := r.api(r.sock, "show servers state web")
	if err != nil {
		return nil, err
	}
	var cols []string
	res := map[string]map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 0 || len(f) == 1 && f[0] == "1":
		case f[0] == "#":
			cols = f[1:]
		case len(f) == len(cols):
			row := map[string]string{}
			for i, c := range cols {
				row[c] = f[i]
			}
			res[row["srv_name"]] = row
		default:
			return nil, fmt.Errorf("show servers state: line %q", line)
		}
	}
	return res, nil
}

// view returns HAProxy's servers of backend web: "ADDR:PORT weight W
// maint M" by name.
func (r *hxRig) view() (map[string]string, error) {
	st, err := r.serversState()
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for n, row := range st {
		admin, err := strconv.Atoi(row["srv_admin_state"])
		if err != nil {
			return nil, err
		}
		m[n] = fmt.Sprintf("%s:%s weight %s maint %v", row["srv_addr"], row["srv_port"], row["srv_uweight"], admin&0x23 != 0)
	}
	return m, nil
}

// down returns the servers of backend web that HAProxy counts down.
func (r *hxRig) down() ([]string, error) {
	st, err := r.serversState()
	if err != nil {
		return nil, err
	}
	var out []string
	for n, row := range st {
		if row["srv_op_state"] == "0" {
			out = append(out, n)
		}
	}
	return out, nil
}

// deadPort returns a loopback port that nothing listens on.
func deadPort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		tb.Fatal(err)
	}
	return port
}

// slowCheckBackend starts an HTTP backend that answers "slow" at once,
// but /health (HAProxy's check, with option httpchk) only after a minute,
// and returns its port.
func slowCheckBackend(tb testing.TB) int {
	tb.Helper()
	return testBackend(tb, func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/health" {
			select {
			case <-req.Context().Done():
			case <-time.After(time.Minute):
			}
		}
		_, _ = io.WriteString(w, "slow")
	})
}

// testBackend serves h on a loopback port until the test ends, and
// returns the port.
func testBackend(tb testing.TB, h http.HandlerFunc) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	tb.Cleanup(func() { _ = srv.Close() })
	return l.Addr().(*net.TCPAddr).Port
}
