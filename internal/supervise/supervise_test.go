package supervise

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// timeout bounds every wait: a deadline, not a measure.
const timeout = 30 * time.Second

func TestParseSignal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want syscall.Signal
		err  bool
	}{
		{in: "SIGHUP", want: syscall.SIGHUP},
		{in: "SIGUSR2", want: syscall.SIGUSR2},
		{in: "USR2", want: syscall.SIGUSR2},
		{in: "usr2", want: syscall.SIGUSR2},
		{in: "SigUsr1", want: syscall.SIGUSR1},
		{in: " term ", want: syscall.SIGTERM},
		{in: "WINCH", want: syscall.SIGWINCH},
		{in: "", err: true},
		{in: "SIG", err: true},
		{in: "12", err: true},
		{in: "SIGFOO", err: true},
	}
	for _, tt := range tests {
		got, err := ParseSignal(tt.in)
		if tt.err {
			if err == nil || !strings.Contains(err.Error(), "unknown signal") {
				t.Errorf("ParseSignal(%q) = %v, %v; want an unknown signal error", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseSignal(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, sig := range Forwarded() {
		back, err := ParseSignal(SignalName(sig))
		if err != nil || back != sig {
			t.Errorf("ParseSignal(SignalName(%v)) = %v, %v", sig, back, err)
		}
	}
}

// shell starts /bin/sh -c script with dir as $0 and returns the child.
func shell(t *testing.T, dir, script string) *Child {
	t.Helper()
	c, err := Start(exec.Command("/bin/sh", "-c", script, dir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Signal(syscall.SIGKILL)
		<-c.Done()
	})
	return c
}

// waitFile waits until the file at p exists.
func waitFile(t *testing.T, p string) {
	t.Helper()
	end := time.Now().Add(timeout)
	for {
		if _, err := os.Stat(p); err == nil {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("gave up waiting for %s", p)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// supervise runs Supervise in the background and returns its result.
func supervise(ctx context.Context, c *Child, opts Options) <-chan int {
	done := make(chan int, 1)
	go func() { done <- Supervise(ctx, c, opts) }()
	return done
}

func result(t *testing.T, done <-chan int) int {
	t.Helper()
	select {
	case code := <-done:
		return code
	case <-time.After(timeout):
		t.Fatal("Supervise did not return")
		return 0
	}
}

func TestSuperviseForwards(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := shell(t, dir, `trap 'echo USR1 >> "$0/got"' USR1; trap 'echo HUP >> "$0/got"' HUP; trap 'exit 3' TERM
touch "$0/ready"; while :; do sleep 0.01; done`)
	waitFile(t, filepath.Join(dir, "ready"))
	sigs := make(chan os.Signal, 4)
	done := supervise(t.Context(), c, Options{Signals: sigs, KillTimeout: timeout})
	sigs <- syscall.SIGUSR1
	waitFile(t, filepath.Join(dir, "got"))
	sigs <- syscall.SIGTERM
	if code := result(t, done); code != 3 {
		t.Errorf("exit code %d, want 3", code)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "got")); string(got) != "USR1\n" {
		t.Errorf("child got %q", got)
	}
}

func TestSuperviseKillTimeout(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := shell(t, dir, `trap '' TERM; touch "$0/ready"; while :; do sleep 0.01; done`)
	waitFile(t, filepath.Join(dir, "ready"))
	ctx, cancel := context.WithCancel(t.Context())
	done := supervise(ctx, c, Options{KillTimeout: 50 * time.Millisecond})
	cancel() // like SIGTERM
	if code := result(t, done); code != 128+int(syscall.SIGKILL) {
		t.Errorf("exit code %d, want 137", code)
	}
	var ee *exec.ExitError
	if err := c.Err(); !errors.As(err, &ee) {
		t.Errorf("Err() = %v, want an *exec.ExitError", err)
	}
	if err := c.Signal(syscall.SIGHUP); !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("Signal after exit = %v, want os.ErrProcessDone", err)
	}
}

func TestExitCode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		script string
		want   int
	}{
		{"exit 0", 0},
		{"exit 42", 42},
		{"kill -KILL $$", 137},
		{"kill -USR1 $$", 128 + int(syscall.SIGUSR1)},
	}
	for _, tt := range tests {
		c := shell(t, t.TempDir(), tt.script)
		if code := result(t, supervise(t.Context(), c, Options{})); code != tt.want {
			t.Errorf("%s: exit code %d, want %d", tt.script, code, tt.want)
		}
	}
}

func TestLookPath(t *testing.T) {
	t.Parallel()
	if p, err := LookPath("sh"); err != nil || !filepath.IsAbs(p) {
		t.Errorf("LookPath(sh) = %q, %v", p, err)
	}
	notExec := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]int{"kvconf-no-such-command": 127, notExec: 126} {
		_, err := LookPath(name)
		var se *StartError
		if !errors.As(err, &se) || se.Code != want {
			t.Errorf("LookPath(%q) = %v, want a *StartError with code %d", name, err, want)
		}
	}
}

// TestInit runs Init in the test process made a child subreaper, so that
// the orphans of its command come back to it as they would to PID 1. It
// is not parallel: Init reaps every child of the process.
func TestInit(t *testing.T) {
	const prSetChildSubreaper = 36
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		if os.Getenv("CI") != "" {
			t.Fatalf("prctl(PR_SET_CHILD_SUBREAPER): %v, and CI is set", errno)
		}
		t.Skipf("prctl(PR_SET_CHILD_SUBREAPER): %v", errno)
	}
	defer syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 0, 0) //nolint:errcheck // best effort

	// The subshell leaves an orphan sleep; the command exits once the
	// orphan is gone from /proc, which needs its new parent, Init, to reap
	// it.
	dir := t.TempDir()
	cmd := exec.Command("/bin/sh", "-c", `( sleep 0.01 & echo $! > "$0/orphan" )
pid=$(cat "$0/orphan")
while [ -e /proc/$pid ]; do sleep 0.01; done
exit 4`, dir)
	done := make(chan int, 1)
	go func() {
		code, err := Init(cmd, nil)
		if err != nil {
			t.Error(err)
		}
		done <- code
	}()
	select {
	case code := <-done:
		if code != 4 {
			t.Errorf("Init = %d, want the command's 4", code)
		}
	case <-time.After(timeout):
		t.Fatal("Init did not return: is the orphan a zombie?")
	}
}
