package test

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// kvProc is a kvconf process run by a test, with its log kept.
type kvProc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	log  bytes.Buffer
	done chan struct{} // closed when the log ends
}

// startKvconf starts the kvconf binary with args and env (added to the
// test's environment) and stops it with SIGTERM when the test ends.
func startKvconf(t *testing.T, env []string, args ...string) *kvProc {
	t.Helper()
	p := &kvProc{done: make(chan struct{})}
	p.cmd = exec.Command(kvconfBin, args...)
	p.cmd.Env = append(append(os.Environ(), "PATH="+os.Getenv("PATH")+":/usr/sbin:/sbin"), env...)
	r, w := io.Pipe()
	p.cmd.Stdout, p.cmd.Stderr = w, w
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			p.mu.Lock()
			p.log.Write(sc.Bytes())
			p.log.WriteByte('\n')
			p.mu.Unlock()
		}
	}()
	waited := make(chan struct{})
	go func() {
		_ = p.cmd.Wait() // stopped by SIGTERM: its exit status says so
		_ = w.Close()    // a pipe: ends the log reader
		close(waited)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-waited:
		case <-time.After(30 * time.Second):
			_ = p.cmd.Process.Kill()
			<-waited
		}
		<-p.done
		if t.Failed() {
			t.Logf("kvconf log:\n%s", p.logs())
		}
	})
	return p
}

func (p *kvProc) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// addr waits for the JSON "listening" line and returns the base URL.
func (p *kvProc) addr(t *testing.T) string {
	t.Helper()
	var base string
	eventually(t, "the listening line", func() bool {
		for _, line := range strings.Split(p.logs(), "\n") {
			var m struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &m) == nil && m.Msg == "listening" {
				base = "http://" + m.Addr
				return true
			}
		}
		return false
	})
	return base
}

// httpGet fetches url and returns the status code and body.
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// scrape reads /metrics into series → value; a series is its name with
// its labels as printed, such as kvconf_backend_up{backend="etcd"}.
func scrape(t *testing.T, base string) (map[string]float64, string) {
	t.Helper()
	code, body := httpGet(t, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics = %d", code)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(body, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out, body
}

// res is the series of a resource metric of conf.d/name.toml.
func res(metric, name string) string {
	return fmt.Sprintf(`kvconf_resource_%s{resource="conf.d/%s.toml"}`, metric, name)
}

// opsConfdir writes three resources reading /ops/NAME/: app (no hooks),
// checked (check_cmd rejects BAD) and reloaded (reload_cmd fails on
// FAIL, so dest is rolled back).
func opsConfdir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"templates/v.tmpl": "value={{getv \"/value\"}}\n",
		"conf.d/app.toml":  "[template]\nsrc = \"v.tmpl\"\ndest = \"@/out/app.conf\"\nprefix = \"/ops/app\"\nkeys = [\"/\"]\n",
		"conf.d/checked.toml": "[template]\nsrc = \"v.tmpl\"\ndest = \"@/out/checked.conf\"\nprefix = \"/ops/checked\"\nkeys = [\"/\"]\n" +
			"check_cmd = \"! grep -q BAD {{.src}}\"\n",
		"conf.d/reloaded.toml": "[template]\nsrc = \"v.tmpl\"\ndest = \"@/out/reloaded.conf\"\nprefix = \"/ops/reloaded\"\nkeys = [\"/\"]\n" +
			"reload_cmd = \"! grep -q FAIL {{.dest}}\"\n",
	}
	for f, content := range files {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(strings.ReplaceAll(content, "@", dir)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestOpsDaemonMetrics runs kvconf -watch -listen against embedded etcd:
// /ready is 503 while the keys are missing (every render fails) and 200
// once each resource rendered; then a put, a failing check_cmd, a failing
// reload_cmd and an unchanged render each move their counters and gauges;
// promtool check metrics passes on a real scrape.
func TestOpsDaemonMetrics(t *testing.T) {
	m := startEtcd(t, nil)
	cli := rawClient(t, clientv3.Config{Endpoints: urls(m)})
	dir := opsConfdir(t)
	p := startKvconf(t, nil, "-watch", "-config-file", os.DevNull, "-confdir", dir,
		"-backend", "etcd", "-node", m.clientURL.String(), "-listen", "127.0.0.1:0", "-log-format", "json")
	base := p.addr(t)

	// No keys yet: etcd answers, every render fails with a missing key.
	eventually(t, "a failed render of each resource", func() bool {
		mt, _ := scrape(t, base)
		return mt[res("render_errors_total", "app")] >= 1 && mt[res("render_errors_total", "checked")] >= 1 &&
			mt[res("render_errors_total", "reloaded")] >= 1
	})
	code, body := httpGet(t, base+"/ready")
	if code != http.StatusServiceUnavailable {
		t.Fatalf("/ready before the first render = %d, want 503: %s", code, body)
	}
	for _, name := range []string{"app", "checked", "reloaded"} {
		if !strings.Contains(body, "conf.d/"+name+".toml") {
			t.Errorf("/ready body does not name %s: %s", name, body)
		}
	}
	if code, _ := httpGet(t, base+"/health"); code != http.StatusOK {
		t.Errorf("/health = %d, want 200 while the loops run", code)
	}
	before, _ := scrape(t, base)
	if before[res("last_success_timestamp_seconds", "app")] != 0 || before[res("last_failure_timestamp_seconds", "app")] == 0 {
		t.Errorf("before the first render: last success %v (want 0), last failure %v (want set)",
			before[res("last_success_timestamp_seconds", "app")], before[res("last_failure_timestamp_seconds", "app")])
	}

	put(t, cli, "/ops/app/value", "a1")
	put(t, cli, "/ops/checked/value", "c1")
	rev := put(t, cli, "/ops/reloaded/value", "r1")
	eventually(t, "/ready 200", func() bool { code, _ := httpGet(t, base+"/ready"); return code == http.StatusOK })
	eventually(t, "the revision gauge", func() bool {
		mt, _ := scrape(t, base)
		return mt[`kvconf_backend_revision{backend="etcd"}`] == float64(rev)
	})
	after, _ := scrape(t, base)
	for _, c := range []struct {
		series string
		want   float64
	}{
		{res("writes_total", "app"), 1},
		{res("writes_total", "checked"), 1},
		{res("writes_total", "reloaded"), 1},
		{res("checks_total", "checked"), 1},
		{res("reloads_total", "reloaded"), 1},
		{res("check_failures_total", "checked"), 0},
		{`kvconf_backend_up{backend="etcd"}`, 1},
		{`kvconf_backend_snapshots_total{backend="etcd"}`, 1},
	} {
		if got := after[c.series]; got != c.want {
			t.Errorf("%s = %v after the puts, want %v", c.series, got, c.want)
		}
	}
	if after[`kvconf_backend_watch_updates_total{backend="etcd"}`] < 1 {
		t.Errorf("no watch update counted")
	}
	if after[res("last_success_timestamp_seconds", "app")] < float64(time.Now().Add(-time.Hour).Unix()) {
		t.Errorf("last success of app = %v, want about now", after[res("last_success_timestamp_seconds", "app")])
	}
	if after[res("renders_total", "app")] <= before[res("renders_total", "app")] {
		t.Errorf("renders_total of app did not grow")
	}
	if after[`kvconf_resource_hook_duration_seconds_count{hook="reload_cmd",resource="conf.d/reloaded.toml"}`] != 1 {
		t.Errorf("no reload_cmd duration observed")
	}

	// A value that check_cmd rejects: dest stays, the failure is counted.
	put(t, cli, "/ops/checked/value", "BAD")
	eventually(t, "the check failure", func() bool {
		mt, _ := scrape(t, base)
		return mt[res("check_failures_total", "checked")] >= 1
	})
	// A value that makes reload_cmd fail: dest is rolled back.
	put(t, cli, "/ops/reloaded/value", "FAIL")
	eventually(t, "the reload failure and rollback", func() bool {
		mt, _ := scrape(t, base)
		return mt[res("reload_failures_total", "reloaded")] >= 1 && mt[res("rollbacks_total", "reloaded")] >= 1
	})
	// A key under app's prefix that its template does not read: app
	// renders again, and its dest is unchanged.
	put(t, cli, "/ops/app/unused", "x")
	eventually(t, "the unchanged render", func() bool {
		mt, _ := scrape(t, base)
		return mt[res("unchanged_total", "app")] >= 1
	})
	rev = put(t, cli, "/ops/app/value", "a2")
	eventually(t, "the second write of app", func() bool {
		mt, _ := scrape(t, base)
		return mt[res("writes_total", "app")] == 2 && mt[`kvconf_backend_revision{backend="etcd"}`] == float64(rev)
	})
	final, text := scrape(t, base)
	if final[res("writes_total", "checked")] != 1 {
		t.Errorf("checked was written although its check failed")
	}
	if final[res("last_failure_timestamp_seconds", "checked")] <= after[res("last_failure_timestamp_seconds", "checked")] {
		t.Errorf("last failure of checked did not move")
	}
	if final[res("failures_total", "reloaded")] < 1 {
		t.Errorf("the failed reload is not counted as a failure")
	}
	if got := readFileString(t, filepath.Join(dir, "out/checked.conf")); got != "value=c1\n" {
		t.Errorf("checked.conf = %q, want the last value that passed", got)
	}
	eventually(t, "reloaded.conf rolled back", func() bool {
		return readFileString(t, filepath.Join(dir, "out/reloaded.conf")) == "value=r1\n"
	})
	if age := final[`kvconf_backend_seconds_since_update{backend="etcd"}`]; age < 0 || age > 600 {
		t.Errorf("seconds since update = %v", age)
	}

	// Still ready: each resource was brought up to date once; verbose
	// names the failures.
	code, body = httpGet(t, base+"/ready?verbose")
	if code != http.StatusOK {
		t.Errorf("/ready?verbose = %d, want 200", code)
	}
	var rep struct {
		Resources []struct {
			File        string     `json:"file"`
			Dest        string     `json:"dest"`
			LastError   string     `json:"last_error"`
			LastSuccess *time.Time `json:"last_success"`
		} `json:"resources"`
		Backends []struct {
			Name     string
			Answered bool
		} `json:"backends"`
	}
	if err := json.Unmarshal([]byte(body), &rep); err != nil {
		t.Fatalf("/ready?verbose: %v: %s", err, body)
	}
	if len(rep.Resources) != 3 || len(rep.Backends) != 1 || !rep.Backends[0].Answered {
		t.Errorf("/ready?verbose = %s", body)
	}
	for _, r := range rep.Resources {
		if r.LastSuccess == nil {
			t.Errorf("%s: no last_success", r.File)
		}
		if strings.HasSuffix(r.File, "checked.toml") && !strings.Contains(r.LastError, "check_cmd") {
			t.Errorf("checked: last_error %q does not name check_cmd", r.LastError)
		}
	}

	promtool := requireTool(t, "promtool", "apt-get install prometheus (scripts/test-deps does it)")
	cmd := exec.CommandContext(t.Context(), promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	// Every log line about a resource names it.
	for _, line := range strings.Split(p.logs(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil {
			continue
		}
		if _, hasDest := m["dest"]; hasDest && m["resource"] == nil {
			t.Errorf("log line with a dest but no resource: %s", line)
		}
	}
}

func readFileString(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

// TestOpsExecReady runs kvconf exec with -listen: /ready answers 200 once
// the first render is done and the command runs.
func TestOpsExecReady(t *testing.T) {
	dir := opsConfdir(t)
	data := filepath.Join(dir, "data.yaml")
	yaml := "ops:\n  app:\n    value: a\n  checked:\n    value: c\n  reloaded:\n    value: r\n"
	if err := os.WriteFile(data, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startKvconf(t, nil, "exec", "-config-file", os.DevNull, "-confdir", dir, "-backend", "file",
		"-file", data, "-interval", "60", "-listen", "127.0.0.1:0", "-log-format", "json", "--", "sleep", "600")
	base := p.addr(t)
	eventually(t, "/ready 200 in exec mode", func() bool { code, _ := httpGet(t, base+"/ready"); return code == http.StatusOK })
	if code, _ := httpGet(t, base+"/health"); code != http.StatusOK {
		t.Errorf("/health = %d in exec mode", code)
	}
}

// TestOpsSystemdNotify runs the daemon as systemd would with Type=notify
// and a watchdog, on a real unix datagram socket: READY=1 after the first
// render, WATCHDOG=1 while it runs, RELOADING=1 and READY=1 around
// SIGHUP, STOPPING=1 on SIGTERM.
func TestOpsSystemdNotify(t *testing.T) {
	dir := opsConfdir(t)
	data := filepath.Join(dir, "data.yaml")
	yaml := "ops:\n  app:\n    value: a\n  checked:\n    value: c\n  reloaded:\n    value: r\n"
	if err := os.WriteFile(data, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	msgs := make(chan string, 100)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	// next returns the next notification that is not a watchdog ping,
	// counting those.
	pings := 0
	next := func() string {
		t.Helper()
		timeout := time.After(watchTimeout)
		for {
			select {
			case m, ok := <-msgs:
				if !ok {
					t.Fatal("socket closed")
				}
				if m == "WATCHDOG=1" {
					pings++
					continue
				}
				return m
			case <-timeout:
				t.Fatalf("no notification after %v", watchTimeout)
			}
		}
	}
	p := startKvconf(t, []string{"NOTIFY_SOCKET=" + sock, "WATCHDOG_USEC=200000"},
		"-config-file", os.DevNull, "-confdir", dir, "-backend", "file", "-file", data, "-interval", "60")
	if got := next(); got != "READY=1" {
		t.Fatalf("first notification %q, want READY=1", got)
	}
	if got := readFileString(t, filepath.Join(dir, "out/app.conf")); got != "value=a\n" {
		t.Errorf("READY=1 before the first render: app.conf = %q", got)
	}
	// The watchdog pings every 100 ms: wait for a few.
	deadline := time.Now().Add(watchTimeout)
	for pings < 3 && time.Now().Before(deadline) {
		select {
		case m := <-msgs:
			if m != "WATCHDOG=1" {
				t.Fatalf("unexpected notification %q while idle", m)
			}
			pings++
		case <-time.After(time.Second):
		}
	}
	if pings < 3 {
		t.Fatalf("%d watchdog pings, want at least 3", pings)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if got := next(); !strings.HasPrefix(got, "RELOADING=1\nMONOTONIC_USEC=") {
		t.Fatalf("after SIGHUP %q, want RELOADING=1 with MONOTONIC_USEC", got)
	}
	if got := next(); got != "READY=1" {
		t.Fatalf("after the reload %q, want READY=1", got)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if got := next(); got != "STOPPING=1" {
		t.Fatalf("after SIGTERM %q, want STOPPING=1", got)
	}
}

// TestCheckExamples runs kvconf check on the bundled examples with the
// real HAProxy, nginx and keepalived: all pass and nothing is written;
// then a value that breaks each config fails the check, naming the
// resource and showing the checker's output.
func TestCheckExamples(t *testing.T) {
	const hint = "apt-get install haproxy nginx keepalived (make test does it when run as root)"
	for _, tool := range []string{"haproxy", "nginx", "keepalived"} {
		requireTool(t, tool, hint)
	}
	check := func(t *testing.T, dir string, data []byte) (int, string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "data.yaml"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.CommandContext(t.Context(), kvconfBin, "check", "-diff", "-config-file", os.DevNull,
			"-confdir", dir, "-backend", "file", "-file", filepath.Join(dir, "data.yaml"))
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "PATH="+os.Getenv("PATH")+":/usr/sbin:/sbin")
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		switch {
		case err == nil:
			return 0, string(out)
		case errors.As(err, &ee):
			return ee.ExitCode(), string(out)
		}
		t.Fatalf("kvconf check: %v", err)
		return 0, ""
	}
	dir := exampleDir(t)
	code, out := check(t, dir, exampleData(t, "", ""))
	if code != 0 {
		t.Fatalf("kvconf check on the examples exited %d:\n%s", code, out)
	}
	for _, want := range []string{"ok   conf.d/haproxy.toml", "ok   conf.d/nginx.toml", "ok   conf.d/keepalived.toml",
		"+    server web1 10.0.0.11:8080 check", "3 resources passed"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); !os.IsNotExist(err) {
		t.Errorf("kvconf check wrote out/: %v", err)
	}

	// The HAProxy resource of examples/docker, as the image lays it out.
	t.Run("docker", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		copyTree(t, filepath.Join(repoRoot(t), "examples", "docker", "conf.d"), filepath.Join(dir, "conf.d"))
		copyTree(t, filepath.Join(repoRoot(t), "templates"), filepath.Join(dir, "templates"))
		code, out := check(t, dir, exampleData(t, "", ""))
		if code != 0 || !strings.Contains(out, "ok   conf.d/haproxy.toml -> /usr/local/etc/haproxy/haproxy.cfg") {
			t.Errorf("kvconf check on examples/docker exited %d:\n%s", code, out)
		}
	})

	tests := []struct {
		name, old, new, says string
	}{
		{name: "haproxy", old: "balance: roundrobin", new: "balance: no-such-algorithm", says: "balance only supports"},
		{name: "nginx", old: "listen_port: 8081", new: "listen_port: not-a-port", says: "not-a-port"},
		{name: "keepalived", old: "algorithm: wrr", new: "algorithm: no-such-scheduler", says: "no-such-scheduler"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := exampleDir(t)
			code, out := check(t, dir, exampleData(t, tt.old, tt.new))
			if code != 1 {
				t.Fatalf("exit code = %d, want 1:\n%s", code, out)
			}
			for _, want := range []string{"FAIL conf.d/" + tt.name + ".toml", "check_cmd output:", tt.says, "1 of 3 resources failed"} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, "out")); !os.IsNotExist(err) {
				t.Errorf("kvconf check wrote out/: %v", err)
			}
		})
	}
}

// TestStaticBinary builds kvconf as the Dockerfile does (CGO_ENABLED=0)
// and checks that the result is a static ELF executable: no program
// interpreter and no shared library, so it runs on a scratch or
// distroless/static base. It also checks the Dockerfile's key promises
// (there is no Docker daemon here to build the image).
func TestStaticBinary(t *testing.T) {
	out := filepath.Join(t.TempDir(), "kvconf")
	build := exec.CommandContext(t.Context(), "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, "./cmd/kvconf")
	build.Dir = repoRoot(t)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build: %v\n%s", err, b)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			t.Error("the binary has a program interpreter (PT_INTERP): it is dynamically linked")
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %v (%v)", libs, err)
	}
	if v, err := exec.CommandContext(t.Context(), out, "-version").CombinedOutput(); err != nil || !strings.HasPrefix(string(v), "kvconf ") {
		t.Errorf("static kvconf -version: %v: %s", err, v)
	}

	df, err := os.ReadFile(filepath.Join(repoRoot(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(df)
	for _, want := range []string{"CGO_ENABLED=0", "go build -trimpath", "./cmd/kvconf", "USER 65532:65532", `ENTRYPOINT ["/usr/local/bin/kvconf"]`} {
		if !strings.Contains(text, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	if froms := strings.Count(text, "\nFROM "); froms < 2 {
		t.Errorf("Dockerfile has %d FROM lines, want a multi-stage build", froms)
	}
}
