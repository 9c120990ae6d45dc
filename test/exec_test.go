package test

import (
	"bytes"
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
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// execTimeout bounds every wait of the exec tests: generous, as it is a
// deadline and not a measure.
const execTimeout = 60 * time.Second

var (
	sigrecOnce sync.Once
	sigrecBin  string
	sigrecErr  error
)

// sigrec builds the test/internal/sigrec helper once, next to kvconfBin.
func sigrec(t *testing.T) string {
	t.Helper()
	sigrecOnce.Do(func() {
		bin := filepath.Join(filepath.Dir(kvconfBin), "sigrec")
		out, err := exec.Command("go", "build", "-o", bin, "./internal/sigrec").CombinedOutput()
		if err != nil {
			sigrecErr = fmt.Errorf("build sigrec: %w\n%s", err, out)
			return
		}
		sigrecBin = bin
	})
	if sigrecErr != nil {
		t.Fatal(sigrecErr)
	}
	return sigrecBin
}

// execRig is a confdir for the file backend, and a state directory for
// sigrec. Resource a renders /v of data.yaml to out/a.
type execRig struct {
	t                     *testing.T
	dir, data, out, state string
}

func newExecRig(t *testing.T) *execRig {
	t.Helper()
	dir := t.TempDir()
	r := &execRig{t: t, dir: dir, data: filepath.Join(dir, "data.yaml"), out: filepath.Join(dir, "out"), state: filepath.Join(dir, "state")}
	for _, d := range []string{"conf.d", "templates", "out", "state"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r.write("templates/v.tmpl", `{{getv "/v"}}`)
	r.write("templates/w.tmpl", `{{getv "/w"}}`)
	r.setData("one", "one")
	r.resource("a", "v", "")
	return r
}

// write writes name under the confdir.
func (r *execRig) write(name, content string) {
	r.t.Helper()
	if err := os.WriteFile(filepath.Join(r.dir, name), []byte(content), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

// setData rewrites data.yaml with the keys /v and /w.
func (r *execRig) setData(v, w string) {
	r.t.Helper()
	r.write("data.yaml", fmt.Sprintf("v: %s\nw: %s\n", v, w))
}

// resource writes conf.d/name.toml rendering key (v or w) to out/name,
// with extra lines in its [template] table.
func (r *execRig) resource(name, key, extra string) {
	r.t.Helper()
	r.write("conf.d/"+name+".toml", fmt.Sprintf("[template]\nsrc = %q\ndest = %q\nkeys = [\"/%s\"]\n%s\n",
		key+".tmpl", filepath.Join(r.out, name), key, extra))
}

// flags are kvconf's flags for the rig, watching data.yaml.
func (r *execRig) flags(extra ...string) []string {
	return append([]string{"-config-file", os.DevNull, "-confdir", r.dir, "-backend", "file", "-file", r.data, "-watch", "-log-level", "debug"}, extra...)
}

// argv is "kvconf exec FLAGS -- sigrec -dir STATE HELPERARGS...".
func (r *execRig) argv(flags, helper []string) []string {
	argv := append([]string{kvconfBin, "exec"}, flags...)
	argv = append(argv, "--", sigrec(r.t), "-dir", r.state)
	return append(argv, helper...)
}

// proc is a running kvconf (or whatever argv started).
type proc struct {
	t              *testing.T
	cmd            *exec.Cmd
	stdout, stderr *lockedBuf
	done           chan struct{}
}

// lockedBuf is a bytes.Buffer safe for a writing process and a reading test.
type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// execEnv is the test's environment without KVCONF_ or CONFD_ variables.
func execEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KVCONF_") && !strings.HasPrefix(kv, "CONFD_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// start runs argv in a process group of its own, killed at the end of the
// test if still there.
func start(t *testing.T, argv []string, stdin io.Reader, env ...string) *proc {
	t.Helper()
	p := &proc{t: t, stdout: &lockedBuf{}, stderr: &lockedBuf{}, done: make(chan struct{})}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Stdin, p.cmd.Stdout, p.cmd.Stderr = stdin, p.stdout, p.stderr
	p.cmd.Env = execEnv(env...)
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = p.cmd.Wait() // the exit code is in ProcessState
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
	})
	return p
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait() int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(execTimeout):
		p.t.Fatalf("still running after %s\nstdout:\n%s\nstderr:\n%s", execTimeout, p.stdout, p.stderr)
	}
	ws := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// wantExit waits for the process and checks its exit code.
func (p *proc) wantExit(want int) {
	p.t.Helper()
	if got := p.wait(); got != want {
		p.t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", got, want, p.stdout, p.stderr)
	}
}

// signal sends sig to the process.
func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
}

// until waits for cond, failing the test with the process's output after
// execTimeout.
func (p *proc) until(what string, cond func() bool) {
	p.t.Helper()
	end := time.Now().Add(execTimeout)
	for !cond() {
		select {
		case <-p.done:
			if cond() {
				return
			}
			p.t.Fatalf("exited while waiting for %s\nstdout:\n%s\nstderr:\n%s", what, p.stdout, p.stderr)
		default:
		}
		if time.Now().After(end) {
			p.t.Fatalf("gave up after %s waiting for %s\nstdout:\n%s\nstderr:\n%s", execTimeout, what, p.stdout, p.stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ready waits for sigrec to have started and returns its pid and ppid.
func (r *execRig) ready(p *proc) (pid, ppid int) {
	r.t.Helper()
	var fields []string
	p.until("the child to be ready", func() bool {
		b, err := os.ReadFile(filepath.Join(r.state, "ready"))
		fields = strings.Fields(string(b))
		return err == nil && len(fields) == 2
	})
	pid, _ = strconv.Atoi(fields[0])
	ppid, _ = strconv.Atoi(fields[1])
	return pid, ppid
}

// signals returns the signals sigrec recorded, in order.
func (r *execRig) signals() []string {
	b, _ := os.ReadFile(filepath.Join(r.state, "signals"))
	return strings.Fields(string(b))
}

// waitSignal waits until sigrec has recorded n signals and returns them.
func (r *execRig) waitSignals(p *proc, n int) []string {
	r.t.Helper()
	p.until(fmt.Sprintf("%d signals", n), func() bool { return len(r.signals()) >= n })
	return r.signals()
}

// command hands sigrec a command.
func (r *execRig) command(cmd string) {
	r.t.Helper()
	tmp := filepath.Join(r.dir, "cmd.tmp")
	if err := os.WriteFile(tmp, []byte(cmd), 0o644); err != nil {
		r.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(r.state, fmt.Sprintf("cmd.%d", time.Now().UnixNano()))); err != nil {
		r.t.Fatal(err)
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestExecPassThrough: the child starts after the render, as kvconf's
// child, with kvconf's stdin, stdout, stderr and environment, and kvconf
// exits with its exit code.
func TestExecPassThrough(t *testing.T) {
	t.Parallel()
	r := newExecRig(t)
	p := start(t, r.argv(r.flags(), []string{"-cat", filepath.Join(r.out, "a"), "-env", "EXEC_TEST_VAR", "-stdin"}),
		strings.NewReader("hello child\n"), "EXEC_TEST_VAR=passed")
	pid, ppid := r.ready(p)
	if ppid != p.cmd.Process.Pid {
		t.Errorf("the child's parent is %d, want kvconf, %d", ppid, p.cmd.Process.Pid)
	}
	r.command("exit 7")
	p.wantExit(7)
	out := p.stdout.String()
	for _, want := range []string{
		fmt.Sprintf("pid=%d ppid=%d\n", pid, p.cmd.Process.Pid),
		"cat=one\n", // dest was rendered before the child started
		"env EXEC_TEST_VAR=passed\n",
		"stdin=hello child\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(p.stderr.String(), "msg=exited") || !strings.Contains(p.stderr.String(), "code=7") {
		t.Errorf("kvconf does not log the exit:\n%s", p.stderr)
	}
}

// TestExecFailedRenderStartsNothing: when a resource fails, the command is
// not started, and the failures are reported as with -onetime.
func TestExecFailedRenderStartsNothing(t *testing.T) {
	t.Parallel()
	for _, once := range []bool{false, true} {
		t.Run(fmt.Sprintf("once=%v", once), func(t *testing.T) {
			t.Parallel()
			r := newExecRig(t)
			r.write("templates/bad.tmpl", `{{getv "/missing"}}`)
			r.write("conf.d/bad.toml", fmt.Sprintf("[template]\nsrc = \"bad.tmpl\"\ndest = %q\nkeys = [\"/missing\"]\n", filepath.Join(r.out, "bad")))
			flags := r.flags("-wait-backend", "600ms") // a few retries
			if once {
				flags = append(flags, "-once")
			}
			p := start(t, r.argv(flags, nil), nil)
			p.wantExit(1)
			stderr := p.stderr.String()
			for _, want := range []string{"1 of 2 resources failed:", "resource conf.d/bad.toml:", "/missing", "not started", "first render failed; retrying"} {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr)
				}
			}
			if strings.Contains(p.stdout.String(), "pid=") {
				t.Errorf("the child ran:\n%s", p.stdout)
			}
			if _, err := os.Stat(filepath.Join(r.state, "ready")); err == nil {
				t.Error("the child ran")
			}
		})
	}
}

// TestExecWaitsForBackend: the first render is retried until the backend
// answers, within -wait-backend; SIGTERM meanwhile stops kvconf without
// starting the command.
func TestExecWaitsForBackend(t *testing.T) {
	t.Parallel()
	for _, term := range []bool{false, true} {
		t.Run(fmt.Sprintf("term=%v", term), func(t *testing.T) {
			t.Parallel()
			r := newExecRig(t)
			if err := os.Remove(r.data); err != nil {
				t.Fatal(err)
			}
			p := start(t, r.argv(r.flags("-wait-backend", "10m"), []string{"-cat", filepath.Join(r.out, "a")}), nil)
			p.until("a failed first render", func() bool { return strings.Contains(p.stderr.String(), `msg="first render failed; retrying"`) })
			if term {
				p.signal(syscall.SIGTERM)
				p.wantExit(128 + int(syscall.SIGTERM))
				if strings.Contains(p.stdout.String(), "pid=") {
					t.Errorf("the child ran:\n%s", p.stdout)
				}
				return
			}
			r.setData("late", "late")
			r.ready(p)
			r.command("exit 0")
			p.wantExit(0)
			if !strings.Contains(p.stdout.String(), "cat=late\n") {
				t.Errorf("the child did not see the rendered dest:\n%s", p.stdout)
			}
		})
	}
}

// TestExecReloadSignal: a change of a dest without reload_cmd sends the
// child -reload-signal, whichever way it is spelt.
func TestExecReloadSignal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  []string
		flag []string
		want string
	}{
		{name: "default", want: "SIGHUP"},
		{name: "SIGUSR2", flag: []string{"-reload-signal", "SIGUSR2"}, want: "SIGUSR2"},
		{name: "USR2", flag: []string{"-reload-signal", "USR2"}, want: "SIGUSR2"},
		{name: "sigusr1", flag: []string{"-reload-signal", "sigusr1"}, want: "SIGUSR1"},
		{name: "env", env: []string{"KVCONF_RELOAD_SIGNAL=usr2"}, want: "SIGUSR2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newExecRig(t)
			r.resource("b", "v", "") // same key: one burst
			p := start(t, r.argv(r.flags(tt.flag...), nil), nil, tt.env...)
			r.ready(p)
			r.setData("two", "one")
			sigs := r.waitSignals(p, 1)
			if sigs[0] != tt.want {
				t.Errorf("child got %v, want %s", sigs, tt.want)
			}
			for _, name := range []string{"a", "b"} {
				if got := readFile(t, filepath.Join(r.out, name)); got != "two" {
					t.Errorf("out/%s = %q, want two", name, got)
				}
			}
			r.command("exit 0")
			p.wantExit(0)
			for _, s := range r.signals() {
				if s != tt.want {
					t.Errorf("child got %v, want only %s", r.signals(), tt.want)
				}
			}
		})
	}
}

// TestExecReloadCmd: a dest with a reload_cmd is reloaded by it, and the
// child gets no signal for it.
func TestExecReloadCmd(t *testing.T) {
	t.Parallel()
	r := newExecRig(t)
	reloaded := filepath.Join(r.dir, "reloaded")
	r.resource("b", "w", fmt.Sprintf("reload_cmd = \"echo reload >> %s\"", reloaded))
	p := start(t, r.argv(r.flags(), nil), nil)
	r.ready(p)
	// The first render ran reload_cmd once, before the child started.
	if got := readFile(t, reloaded); got != "reload\n" {
		t.Fatalf("reloaded = %q after the first render", got)
	}
	r.setData("one", "two")
	p.until("reload_cmd", func() bool { return fileHas(reloaded, "reload\nreload\n") })
	p.until("the render of b to be seen", func() bool {
		return strings.Contains(p.stderr.String(), `msg="reloaded by reload_cmd" resource=conf.d/b.toml`)
	})
	// Then a change of a, which has no reload_cmd: the one signal the
	// child gets is for a alone.
	r.setData("two", "two")
	r.waitSignals(p, 1)
	p.until("the reload log", func() bool { return strings.Contains(p.stderr.String(), `msg="reload signal sent"`) })
	r.command("exit 0")
	p.wantExit(0)
	if sigs := r.signals(); len(sigs) != 1 || sigs[0] != "SIGHUP" {
		t.Errorf("child got %v, want [SIGHUP] (for a only)", sigs)
	}
	for _, line := range strings.Split(p.stderr.String(), "\n") {
		if strings.Contains(line, `msg="reload signal sent"`) && !strings.HasSuffix(line, "resources=conf.d/a.toml") {
			t.Errorf("a signal was sent for another resource than a: %s", line)
		}
	}
	if got := readFile(t, filepath.Join(r.out, "b")); got != "two" {
		t.Errorf("out/b = %q, want two", got)
	}
}

// TestExecForwardsSignals: every listed signal reaches the child (SIGHUP
// too: in exec mode it is not kvconf's reload), and SIGTERM or SIGINT
// stops it.
func TestExecForwardsSignals(t *testing.T) {
	t.Parallel()
	for _, stop := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(stop.String(), func(t *testing.T) {
			t.Parallel()
			r := newExecRig(t)
			p := start(t, r.argv(r.flags(), nil), nil)
			r.ready(p)
			sent := []syscall.Signal{syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH}
			want := []string{"SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGWINCH"}
			for i, sig := range sent {
				p.signal(sig)
				// One at a time: signals in flight together may be
				// delivered in any order.
				if got := r.waitSignals(p, i+1); got[i] != want[i] {
					t.Fatalf("child got %v, want %v", got, want[:i+1])
				}
			}
			p.signal(stop)
			p.wantExit(0) // sigrec exits 0 on SIGTERM and SIGINT
			name := map[syscall.Signal]string{syscall.SIGTERM: "SIGTERM", syscall.SIGINT: "SIGINT"}[stop]
			if got := r.signals(); strings.Join(got, " ") != strings.Join(append(want, name), " ") {
				t.Errorf("child got %v, want %v", got, append(want, name))
			}
		})
	}
}

// TestExecExitCode: kvconf exits with the child's code, or 128 plus the
// signal that ended it.
func TestExecExitCode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, cmd string
		want      int
	}{
		{"exit 0", "exit 0", 0},
		{"exit 7", "exit 7", 7},
		{"SIGKILL", "raise 9", 137},
		{"SIGTERM", "raise 15", 143},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newExecRig(t)
			p := start(t, r.argv(r.flags(), nil), nil)
			r.ready(p)
			r.command(tt.cmd)
			p.wantExit(tt.want)
		})
	}
}

// TestExecKillTimeout: a child that ignores SIGTERM gets SIGKILL after
// -kill-timeout.
func TestExecKillTimeout(t *testing.T) {
	t.Parallel()
	r := newExecRig(t)
	p := start(t, r.argv(r.flags("-kill-timeout", "300ms"), []string{"-ignore-term"}), nil)
	r.ready(p)
	p.signal(syscall.SIGTERM)
	p.wantExit(137)
	if got := r.signals(); len(got) != 1 || got[0] != "SIGTERM" {
		t.Errorf("child got %v, want [SIGTERM]", got)
	}
	if !strings.Contains(p.stderr.String(), `msg="killing child"`) {
		t.Errorf("kvconf does not log the kill:\n%s", p.stderr)
	}
}

// TestExecOnce: -once renders, then the command replaces kvconf: same
// pid, same parent.
func TestExecOnce(t *testing.T) {
	t.Parallel()
	r := newExecRig(t)
	p := start(t, r.argv(r.flags("-once"), []string{"-cat", filepath.Join(r.out, "a")}), nil)
	pid, ppid := r.ready(p)
	if pid != p.cmd.Process.Pid || ppid != os.Getpid() {
		t.Errorf("the command runs as pid %d with parent %d, want kvconf's pid %d and parent %d", pid, ppid, p.cmd.Process.Pid, os.Getpid())
	}
	r.setData("two", "one")
	r.command("exit 3")
	p.wantExit(3)
	if !strings.Contains(p.stdout.String(), "cat=one\n") {
		t.Errorf("the command did not see the rendered dest:\n%s", p.stdout)
	}
	if got := r.signals(); len(got) != 0 {
		t.Errorf("the command got signals %v with -once", got)
	}
}

// TestExecCommandNotFound: a command that is not found exits 127 after
// the render.
func TestExecCommandNotFound(t *testing.T) {
	t.Parallel()
	r := newExecRig(t)
	for _, once := range []string{"", "-once"} {
		args := append([]string{kvconfBin, "exec"}, r.flags()...)
		if once != "" {
			args = append(args, once)
		}
		p := start(t, append(args, "--", "kvconf-no-such-command"), nil)
		p.wantExit(127)
		if !strings.Contains(p.stderr.String(), `start kvconf-no-such-command: exec: "kvconf-no-such-command": executable file not found`) {
			t.Errorf("stderr:\n%s", p.stderr)
		}
	}
}

// requireUnshare skips the test when the kernel does not let unshare
// create a PID namespace, and fails it under CI, which runs as root where
// it can.
func requireUnshare(t *testing.T) string {
	t.Helper()
	bin := requireTool(t, "unshare", "apt-get install util-linux")
	if out, err := exec.Command(bin, "--pid", "--fork", "--mount-proc", "true").CombinedOutput(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("cannot create a PID namespace (%v) and CI is set: run the tests as root: %s", err, out)
		}
		t.Skipf("cannot create a PID namespace here (%v): %s", err, out)
	}
	return bin
}

// nsInit returns the host pid of the process that unshare --fork started,
// PID 1 of the new namespace.
func nsInit(p *proc) int {
	p.t.Helper()
	var pid int
	p.until("unshare's child", func() bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", p.cmd.Process.Pid, p.cmd.Process.Pid))
		if err != nil {
			p.t.Fatalf("%v (is CONFIG_PROC_CHILDREN off?)", err)
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			return false
		}
		pid, err = strconv.Atoi(f[0])
		return err == nil
	})
	return pid
}

// TestExecPID1ReapsOrphans: kvconf exec as PID 1 of a PID namespace reaps
// the orphans that the kernel hands it, while forwarding signals and the
// exit code through the supervisor it runs.
func TestExecPID1ReapsOrphans(t *testing.T) {
	t.Parallel()
	unshare := requireUnshare(t)
	r := newExecRig(t)
	p := start(t, append([]string{unshare, "--pid", "--fork", "--mount-proc", "--kill-child"}, r.argv(r.flags(), nil)...), nil)
	_, ppid := r.ready(p)
	if ppid == 1 {
		t.Errorf("the command's parent is PID 1, want the supervisor that PID 1 starts")
	}
	init := nsInit(p)

	r.command("orphan")
	p.until("the orphan to be reaped", func() bool { return fileHas(filepath.Join(r.state, "orphan"), "gone") })
	if got := strings.TrimSpace(readFile(t, filepath.Join(r.state, "orphan-ppid"))); got != "1" {
		t.Errorf("the orphan's new parent is %s, want 1", got)
	}

	if err := syscall.Kill(init, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	if got := r.waitSignals(p, 1); got[0] != "SIGUSR1" {
		t.Errorf("child got %v, want [SIGUSR1]", got)
	}
	r.command("exit 7")
	p.wantExit(7)
}

// TestExecPID1Control checks the check: a PID 1 that does not reap
// leaves the same orphan a zombie.
func TestExecPID1Control(t *testing.T) {
	t.Parallel()
	unshare := requireUnshare(t)
	r := newExecRig(t)
	p := start(t, []string{unshare, "--pid", "--fork", "--mount-proc", "--kill-child", sigrec(t), "-dir", r.state}, nil)
	r.ready(p)
	r.command("orphan")
	p.until("the orphan to stay a zombie", func() bool { return fileHas(filepath.Join(r.state, "orphan"), "zombie") })
	r.command("exit 0")
	p.wantExit(0)
}

// TestExecHAProxyReload runs HAProxy in master-worker mode under kvconf
// exec, with -reload-signal SIGUSR2, and changes its configuration
// several times while HTTP requests go through it: none fails, and each
// change takes effect.
func TestExecHAProxyReload(t *testing.T) {
	t.Parallel()
	haproxy := requireTool(t, "haproxy", "apt-get install haproxy (scripts/test-deps does)")

	backend := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	}), ReadHeaderTimeout: execTimeout}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = backend.Serve(l) }()
	t.Cleanup(func() { _ = backend.Close() })

	dir := t.TempDir()
	front := freePort(t)
	for _, d := range []string{"conf.d", "templates", "run"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"templates/haproxy.cfg.tmpl": `global
    stats socket ` + filepath.Join(dir, "run", "admin.sock") + ` mode 600 level admin expose-fd listeners

defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s

frontend web
    bind {{getv "/front"}}
    http-response set-header X-Version {{getv "/version"}}
    default_backend app

backend app
    server app1 {{getv "/server"}} weight {{getv "/weight"}}
`,
		"conf.d/haproxy.toml": fmt.Sprintf(`[template]
src = "haproxy.cfg.tmpl"
dest = %q
keys = ["/"]
check_cmd = "%s -c -q -f {{.src}}"
`, filepath.Join(dir, "haproxy.cfg"), haproxy),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data := filepath.Join(dir, "data.yaml")
	setVersion := func(v int) {
		t.Helper()
		content := fmt.Sprintf("front: %q\nserver: %q\nversion: v%d\nweight: %d\n", front, l.Addr().String(), v, 10+v)
		if err := os.WriteFile(data, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	setVersion(1)

	p := start(t, []string{kvconfBin, "exec", "-config-file", os.DevNull, "-confdir", dir, "-backend", "file", "-file", data,
		"-watch", "-reload-signal", "SIGUSR2", "--", haproxy, "-W", "-db", "-f", filepath.Join(dir, "haproxy.cfg")}, nil)

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	url := "http://" + front + "/"
	get := func() (string, error) {
		resp, err := client.Get(url)
		if err != nil {
			return "", err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		if cerr := resp.Body.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return "", err
		}
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("status %s", resp.Status)
		}
		return resp.Header.Get("X-Version"), nil
	}
	p.until("HAProxy to serve v1", func() bool { v, err := get(); return err == nil && v == "v1" })

	// Load: requests one after the other, all through the reloads.
	var (
		requests, failures atomic.Int64
		firstFailure       atomic.Value
		stop               = make(chan struct{})
		loadDone           = make(chan struct{})
	)
	go func() {
		defer close(loadDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			requests.Add(1)
			if _, err := get(); err != nil {
				failures.Add(1)
				firstFailure.CompareAndSwap(nil, err.Error())
			}
		}
	}()
	for v := 2; v <= 4; v++ {
		setVersion(v)
		want := fmt.Sprintf("v%d", v)
		p.until("HAProxy to serve "+want, func() bool { got, err := get(); return err == nil && got == want })
	}
	close(stop)
	<-loadDone
	t.Logf("%d requests through 3 reloads", requests.Load())
	if n := failures.Load(); n != 0 {
		t.Errorf("%d of %d requests failed, the first with: %v", n, requests.Load(), firstFailure.Load())
	}
	if n := strings.Count(p.stderr.String(), `msg="reload signal sent"`); n < 3 {
		t.Errorf("%d reload signals sent, want at least 3:\n%s", n, p.stderr)
	}
	p.signal(syscall.SIGTERM)
	p.wait() // HAProxy's own exit code on SIGTERM
}
