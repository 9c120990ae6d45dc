package appliers

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

func env() Env { return Env{Logger: slog.New(slog.DiscardHandler)} }

// TestSignalPidfile signals a real process through its pidfile.
func TestSignalPidfile(t *testing.T) {
	t.Parallel()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pidfile := filepath.Join(t.TempDir(), "pid")
	if err := os.WriteFile(pidfile, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := (&SignalConfig{Signal: "TERM", Pidfile: pidfile}).New()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Apply(t.Context(), Change{}, env()); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
		t.Fatalf("sleep ended with %v, want SIGTERM", err)
	}
}

// TestSignalSupervised signals through Env.Signal (exec mode), and without
// it or a pidfile says the change is unsupported.
func TestSignalSupervised(t *testing.T) {
	t.Parallel()
	a, err := (&SignalConfig{Signal: "SIGUSR2"}).New()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Apply(t.Context(), Change{}, env()); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("Apply without a target: %v, want ErrUnsupported", err)
	}
	var got os.Signal
	e := env()
	e.Signal = func(s os.Signal) error { got = s; return nil }
	if err := a.Apply(t.Context(), Change{}, e); err != nil || got != syscall.SIGUSR2 {
		t.Fatalf("Apply = %v, signalled %v; want SIGUSR2", err, got)
	}
}

func TestCommandRuns(t *testing.T) {
	t.Parallel()
	a, err := (&CommandConfig{Cmd: "reload it"}).New()
	if err != nil {
		t.Fatal(err)
	}
	var ran string
	e := env()
	e.Run = func(_ context.Context, name, cmd string) error { ran = name + ": " + cmd; return nil }
	if err := a.Apply(t.Context(), Change{}, e); err != nil || ran != "apply.cmd: reload it" {
		t.Fatalf("Apply = %v, ran %q", err, ran)
	}
}

func TestRegistry(t *testing.T) {
	t.Parallel()
	for _, n := range []string{"command", "signal"} {
		if _, err := NewConfig(n); err != nil {
			t.Errorf("NewConfig(%q): %v", n, err)
		}
	}
	if _, err := NewConfig("nope"); err == nil {
		t.Error("NewConfig(nope) succeeded")
	}
	defer func() {
		if recover() == nil {
			t.Error("a second Register of command did not panic")
		}
	}()
	Register("command", func() Config { return new(CommandConfig) })
}

// TestSignalPidfileOwner checks that a pidfile another user can write
// makes kvconf (root) signal only that user's processes: a pid of root's
// in a pidfile owned by nobody, or a pidfile that is a link (here to a
// root-owned pidfile), is refused and the process lives on; nobody's own
// process is signalled.
func TestSignalPidfileOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("needs root (to own a pidfile and a process as another user), and CI is set")
		}
		t.Skip("needs root, to own a pidfile and a process as another user")
	}
	t.Parallel()
	const nobody = 65534
	start := func(uid uint32) *exec.Cmd {
		cmd := exec.Command("sleep", "60")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd
	}
	dir := t.TempDir()
	pidfile := func(name string, pid, uid int) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, uid, uid); err != nil {
			t.Fatal(err)
		}
		return p
	}
	signal := func(p string) error {
		a, err := (&SignalConfig{Signal: "TERM", Pidfile: p}).New()
		if err != nil {
			t.Fatal(err)
		}
		return a.Apply(t.Context(), Change{}, env())
	}
	alive := func(cmd *exec.Cmd) bool { return cmd.Process.Signal(syscall.Signal(0)) == nil }

	victim := start(0)
	if err := signal(pidfile("other", victim.Process.Pid, nobody)); err == nil || !alive(victim) {
		t.Fatalf("nobody's pidfile naming root's process: %v, alive %v; want refused", err, alive(victim))
	}
	rootPid := pidfile("root", victim.Process.Pid, 0)
	link := filepath.Join(dir, "link")
	if err := os.Symlink(rootPid, link); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(link, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	if err := signal(link); err == nil || !alive(victim) {
		t.Fatalf("a pidfile that is a link: %v, alive %v; want refused", err, alive(victim))
	}
	own := start(nobody)
	if err := signal(pidfile("own", own.Process.Pid, nobody)); err != nil {
		t.Fatalf("nobody's pidfile naming nobody's process: %v", err)
	}
	err := own.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
		t.Fatalf("nobody's sleep ended with %v, want SIGTERM", err)
	}
}
