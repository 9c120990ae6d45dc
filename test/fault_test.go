package test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The fault suite runs kvconf -watch, as a process, against a backend
// server that it kills with SIGKILL, stops with SIGSTOP, compacts and
// starves of disk, and checks that kvconf comes back by itself: the final
// dest holds the last value written, kvconf logged "backend down" and
// "backend up" once each for an outage it noticed, and it caught up within
// catchUpLimit of the server answering again. Each catch-up time is
// logged (go test -v -run TestFault shows them).
const (
	// catchUpLimit is the one latency bound of the suite, the one the
	// hardening issue demands: from the server answering again to dest
	// holding the value written then. kvconf gets there in about 0.1-2.5 s
	// (its reconnection backoff is capped at 2 s, ±20%); the margin is
	// for a loaded machine.
	catchUpLimit = 5 * time.Second
	// faultOutage is the long outage: longer than every backoff cap of
	// kvconf (2 s between reconnections of the etcd client and between
	// reads of a failing backend) and than the time kvconf takes to
	// notice an outage (about 7 s: 2 s of a silent watch, then the 5 s
	// dial timeout; 9 s for a stopped server, that accepts connections
	// but answers nothing). What matters is that the outage outlasts the
	// caps: gRPC's own 120 s cap, which kvconf had, made the catch-up
	// after any outage longer than a few seconds take up to two minutes,
	// and the cap bounds it the same way after 15 s or after an hour.
	faultOutage = 15 * time.Second
	// faultDeadline bounds every wait for a condition: a deadline, not a
	// measure.
	faultDeadline = 60 * time.Second
	// faultKey is the key the suite's resource renders.
	faultKey = "/fault/v"
)

// faultRig is a confdir with one resource rendering faultKey to dest, and
// a kvconf process running on it.
type faultRig struct {
	t            *testing.T
	dir, outDir  string
	dest         string
	kvconf       *exec.Cmd
	kvconfDone   chan error
	logMu        sync.Mutex
	logs         bytes.Buffer
	srv          faultServer
	kvconfStarts int
}

// newFaultRig writes the confdir; dest goes in outDir, or in the
// confdir's out/ when outDir is empty.
func newFaultRig(t *testing.T, srv faultServer, outDir string) *faultRig {
	t.Helper()
	dir := t.TempDir()
	if outDir == "" {
		outDir = filepath.Join(dir, "out")
	}
	r := &faultRig{t: t, dir: dir, outDir: outDir, dest: filepath.Join(outDir, "v"), srv: srv}
	for _, d := range []string{"conf.d", "templates"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeRigFile(t, filepath.Join(dir, "templates", "v.tmpl"), `{{getv "`+faultKey+`"}}`)
	writeRigFile(t, filepath.Join(dir, "conf.d", "v.toml"),
		fmt.Sprintf("[template]\nsrc = \"v.tmpl\"\ndest = %q\nkeys = [%q]\n", r.dest, faultKey))
	t.Cleanup(func() {
		r.stopKvconf()
		if t.Failed() {
			t.Logf("kvconf log:\n%s", r.log())
		}
	})
	return r
}

func writeRigFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// startKvconf starts kvconf -watch on the rig's server.
func (r *faultRig) startKvconf() {
	r.t.Helper()
	args := append([]string{"-config-file", os.DevNull, "-confdir", r.dir, "-watch", "-log-level", "debug"}, r.srv.kvconfArgs()...)
	cmd := exec.Command(kvconfBin, args...)
	cmd.Stdout, cmd.Stderr = &rigLog{r}, &rigLog{r}
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	r.kvconf, r.kvconfDone = cmd, done
	r.kvconfStarts++
}

// stopKvconf stops kvconf with SIGTERM, if it runs.
func (r *faultRig) stopKvconf() {
	if r.kvconf == nil {
		return
	}
	_ = r.kvconf.Process.Signal(syscall.SIGTERM) // it may have exited
	select {
	case err := <-r.kvconfDone:
		if err != nil {
			r.t.Errorf("kvconf exited with %v", err)
		}
	case <-time.After(faultDeadline):
		_ = r.kvconf.Process.Kill()
		r.t.Errorf("kvconf still running %v after SIGTERM", faultDeadline)
	}
	r.kvconf = nil
}

// rigLog collects kvconf's output.
type rigLog struct{ r *faultRig }

func (w *rigLog) Write(b []byte) (int, error) {
	w.r.logMu.Lock()
	defer w.r.logMu.Unlock()
	return w.r.logs.Write(b)
}

func (r *faultRig) log() string {
	r.logMu.Lock()
	defer r.logMu.Unlock()
	return r.logs.String()
}

// count returns how many lines of kvconf's log have the message msg.
func (r *faultRig) count(msg string) int {
	return strings.Count(r.log(), "msg="+fmt.Sprintf("%q", msg))
}

// waitDest waits until dest holds want, and returns when it did.
func (r *faultRig) waitDest(want string) time.Time {
	r.t.Helper()
	deadline := time.Now().Add(faultDeadline)
	for {
		if b, err := os.ReadFile(r.dest); err == nil && string(b) == want {
			return time.Now()
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(r.dest)
			r.t.Fatalf("dest holds %d bytes %.40q after %v, want %.40q", len(b), b, faultDeadline, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitLog waits until kvconf logged msg at least n times.
func (r *faultRig) waitLog(msg string, n int) {
	r.t.Helper()
	deadline := time.Now().Add(faultDeadline)
	for r.count(msg) < n {
		if time.Now().After(deadline) {
			r.t.Fatalf("kvconf did not log %q %d times within %v", msg, n, faultDeadline)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// catchUp writes value, the moment the server answers again, waits for
// dest to hold it, and fails the test when that took more than
// catchUpLimit.
func (r *faultRig) catchUp(what, value string) {
	r.t.Helper()
	r.srv.put(r.t, faultKey, value)
	answered := time.Now()
	d := r.waitDest(value).Sub(answered)
	r.checkCatchUp(what, d)
}

// checkCatchUp logs a catch-up time and fails the test when it exceeds
// catchUpLimit.
func (r *faultRig) checkCatchUp(what string, d time.Duration) {
	r.t.Helper()
	r.t.Logf("%s: catch-up %v", what, d.Round(time.Millisecond))
	if d > catchUpLimit {
		r.t.Errorf("%s: catch-up took %v, more than %v", what, d, catchUpLimit)
	}
}

// wantDownUp checks that kvconf logged "backend down" and "backend up"
// once each (waiting for the up line, which may come just after dest).
func (r *faultRig) wantDownUp() {
	r.t.Helper()
	r.waitLog("backend up", 1)
	down, up := r.count("backend down"), r.count("backend up")
	if down != 1 || up != 1 {
		r.t.Errorf("kvconf logged backend down %d times and backend up %d times, want 1 and 1", down, up)
	}
	if !strings.Contains(r.log(), `level=WARN msg="backend down" backend=`) {
		r.t.Errorf("the backend down line is not a warning naming the backend")
	}
}

// startFaultRig sets faultKey to v1, starts kvconf on a new rig, and
// waits until dest holds v1.
func startFaultRig(t *testing.T, srv faultServer) *faultRig {
	t.Helper()
	srv.put(t, faultKey, "v1")
	r := newFaultRig(t, srv, "")
	r.startKvconf()
	r.waitDest("v1")
	return r
}

// faultCases are the fault suite's cases, each run against every server
// of faultServers with a fresh server and kvconf.
var faultCases = []struct {
	name string
	run  func(t *testing.T, srv faultServer)
}{
	{"kill9-restart", faultKillRestart},
	{"kill9-long-outage-compacted", faultLongOutage},
	{"sigstop", faultStopped},
	{"compacted-while-kvconf-stopped", faultCompactedWhileStopped},
	{"full-disk", faultFullDisk},
}

// TestFault runs the fault suite.
func TestFault(t *testing.T) {
	for _, s := range faultServers {
		t.Run(s.name, func(t *testing.T) {
			for _, c := range faultCases {
				t.Run(c.name, func(t *testing.T) { c.run(t, s.start(t)) })
			}
		})
	}
}

// faultKillRestart: SIGKILL and an immediate restart. The outage may be
// too short for kvconf to call the backend down; if it does, it says up
// again too.
func faultKillRestart(t *testing.T, srv faultServer) {
	r := startFaultRig(t, srv)
	srv.kill(t)
	time.Sleep(time.Second)
	srv.start(t)
	r.catchUp("kill -9, restart after 1s", "v2")
	switch down := r.count("backend down"); down {
	case 0:
		if up := r.count("backend up"); up != 0 {
			t.Errorf("kvconf logged backend up %d times and never down", up)
		}
	case 1:
		r.wantDownUp()
	default:
		t.Errorf("kvconf logged backend down %d times for one outage", down)
	}
}

// faultLongOutage: SIGKILL and an outage longer than every backoff cap;
// once the server is back, a few changes and a compaction happen before
// kvconf reconnects, so that a watch resumed from its old revision finds
// it compacted.
func faultLongOutage(t *testing.T, srv faultServer) {
	r := startFaultRig(t, srv)
	srv.kill(t)
	time.Sleep(faultOutage)
	if n := r.count("backend down"); n != 1 {
		t.Errorf("kvconf logged backend down %d times during a %v outage, want 1", n, faultOutage)
	}
	if r.count("backend up") != 0 {
		t.Errorf("kvconf logged backend up while the server was down")
	}
	srv.start(t)
	srv.put(t, faultKey, "v2")
	answered := time.Now()
	srv.put(t, "/fault/other", "x")
	srv.put(t, faultKey, "v3")
	srv.compact(t)
	r.checkCatchUp(fmt.Sprintf("kill -9, %v outage, compacted", faultOutage), r.waitDest("v3").Sub(answered))
	r.wantDownUp()
}

// faultStopped: the server is stopped with SIGSTOP (it accepts
// connections and answers nothing) for longer than every backoff cap,
// then continued.
func faultStopped(t *testing.T, srv faultServer) {
	r := startFaultRig(t, srv)
	srv.signal(t, syscall.SIGSTOP)
	time.Sleep(faultOutage)
	srv.signal(t, syscall.SIGCONT)
	r.catchUp(fmt.Sprintf("SIGSTOP for %v, SIGCONT", faultOutage), "v2")
	r.wantDownUp()
}

// faultCompactedWhileStopped: kvconf is stopped while keys change and the
// server compacts its history; started again, it renders the last value.
// Its catch-up is measured from its start.
func faultCompactedWhileStopped(t *testing.T, srv faultServer) {
	r := startFaultRig(t, srv)
	r.stopKvconf()
	srv.put(t, faultKey, "v2")
	srv.put(t, faultKey, "v3")
	if !srv.compact(t) {
		t.Skip("the server keeps no history to compact")
	}
	started := time.Now()
	r.startKvconf()
	r.checkCatchUp("kvconf restarted after a compaction", r.waitDest("v3").Sub(started))
}

// faultFullDisk: dest's file system (a small tmpfs) fills up. The render
// fails loudly, dest keeps its last complete content and no stage file is
// left; once space returns, the retry renders the last value.
func faultFullDisk(t *testing.T, srv faultServer) {
	out := t.TempDir()
	if err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k", "kvconf-fault", out).Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("mount a tmpfs for the full-disk case (CI runs as root): %v", err)
		}
		t.Skipf("cannot mount a tmpfs (needs root): %v", err)
	}
	t.Cleanup(func() {
		if err := exec.Command("umount", out).Run(); err != nil {
			t.Errorf("umount %s: %v", out, err)
		}
	})
	srv.put(t, faultKey, "v1")
	r := newFaultRig(t, srv, out)
	r.startKvconf()
	r.waitDest("v1")

	filler := filepath.Join(out, "filler")
	fill(t, filler)
	big := strings.Repeat("x", 64<<10)
	srv.put(t, faultKey, big)
	r.waitLog("apply failed", 1)
	if !strings.Contains(r.log(), "no space left on device") {
		t.Errorf("the failed render does not say the disk is full")
	}
	if b, err := os.ReadFile(r.dest); err != nil || string(b) != "v1" {
		t.Errorf("dest holds %.20q (%v) while the disk is full, want v1", b, err)
	}
	if left, _ := filepath.Glob(filepath.Join(out, ".v.*")); len(left) > 0 {
		t.Errorf("stage files left on the full disk: %q", left)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	r.checkCatchUp("space back on a full disk", r.waitDest(big).Sub(freed))
}

// fill writes p until its file system is full.
func fill(t *testing.T, p string) {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	if err := f.Close(); err != nil && !errors.Is(err, syscall.ENOSPC) {
		t.Fatal(err)
	}
}

// TestFaultOnetimeNoServer: kvconf -onetime with no server listening
// fails within seconds (the dial timeout, 5 s), naming the endpoint and
// the cause, instead of waiting its whole request timeout for "context
// deadline exceeded". The bound asserted, 20 s, leaves room for a loaded
// machine; before, it took 30 s.
func TestFaultOnetimeNoServer(t *testing.T) {
	t.Parallel()
	addr := freePort(t) // nothing listens there
	dir := t.TempDir()
	for _, d := range []string{"conf.d", "templates"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeRigFile(t, filepath.Join(dir, "templates", "v.tmpl"), `{{getv "/v"}}`)
	writeRigFile(t, filepath.Join(dir, "conf.d", "v.toml"),
		fmt.Sprintf("[template]\nsrc = \"v.tmpl\"\ndest = %q\nkeys = [\"/v\"]\n", filepath.Join(dir, "v")))
	cmd := exec.Command(kvconfBin, "-config-file", os.DevNull, "-onetime", "-confdir", dir, "-backend", "etcd", "-node", addr)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	t.Logf("kvconf -onetime without a server failed after %v", took.Round(time.Millisecond))
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("kvconf -onetime = %v, want a failure:\n%s", err, out.String())
	}
	if took > 20*time.Second {
		t.Errorf("kvconf -onetime took %v to fail, want a few seconds", took)
	}
	for _, want := range []string{addr, "connection refused"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
