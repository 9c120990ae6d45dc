package cli

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestExecUsage: bad exec command lines exit 2 with a message naming the
// problem, before anything is rendered or run.
func TestExecUsage(t *testing.T) {
	t.Parallel()
	base := []string{"exec", "-config-file", os.DevNull, "-backend", "env", "-confdir", t.TempDir()}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no command", nil, nil, "missing -- COMMAND"},
		{"nothing after --", []string{"--"}, nil, "missing COMMAND after --"},
		{"no --", []string{"true"}, nil, `unexpected argument "true": put the command after --`},
		{"bad signal flag", []string{"-reload-signal", "SIGNOPE", "--", "true"}, nil, `flag -reload-signal: unknown signal "SIGNOPE"`},
		{"bad signal env", []string{"--", "true"}, map[string]string{"KVCONF_RELOAD_SIGNAL": "bogus"}, `environment KVCONF_RELOAD_SIGNAL: unknown signal "bogus"`},
		{"bad duration env", []string{"--", "true"}, map[string]string{"KVCONF_KILL_TIMEOUT": "soon"}, "environment KVCONF_KILL_TIMEOUT: "},
		{"negative kill timeout", []string{"-kill-timeout", "-1s", "--", "true"}, nil, "flag -kill-timeout: -1s is negative"},
		{"onetime", []string{"-onetime", "--", "true"}, nil, "flag -onetime: not available with exec (use -once"},
		{"noop", []string{"-noop", "--", "true"}, nil, "flag -noop: not available with exec"},
		{"daemon flag check", []string{"-interval", "0", "--", "true"}, nil, "interval must be a positive number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stderr strings.Builder
			code := run(t.Context(), append(slices.Clone(base), tt.args...), envMap(tt.env), io.Discard, &stderr)
			if code != exitUsage {
				t.Errorf("exit code %d, want %d", code, exitUsage)
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("stderr lacks %q:\n%s", tt.want, stderr.String())
			}
		})
	}
}

// TestExecWatchUnwatchedBackend: -watch with a backend that cannot watch
// renders its resources and starts the command.
func TestExecWatchUnwatchedBackend(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, dir, "templates/t.tmpl", "x")
	writeFile(t, dir, "conf.d/a.toml", "[template]\nsrc = \"t.tmpl\"\ndest = \""+filepath.Join(dir, "out", "a")+"\"\n")
	marker := filepath.Join(dir, "ran")
	var stderr lockedBuffer
	stop := startDaemon(t, command{getenv: envMap(nil), stdout: io.Discard, stderr: &stderr},
		[]string{"exec", "-config-file", os.DevNull, "-backend", "env", "-confdir", dir, "-watch", "--", "sh", "-c", "touch " + marker + "; exec sleep 60"})
	waitUntil(t, "the command to run", func() bool { _, err := os.Stat(marker); return err == nil })
	waitUntil(t, "the resource to be rendered", holds(filepath.Join(dir, "out", "a"), "x"))
	stop()
	if strings.Contains(stderr.String(), "cannot watch for changes") {
		t.Errorf("-watch refused:\n%s", stderr.String())
	}
}

// TestExecCancel: when run's ctx is done, the child gets SIGTERM and run
// returns its exit code.
func TestExecCancel(t *testing.T) {
	t.Parallel()
	d := newDaemonDir(t)
	ready := filepath.Join(d.dir, "ready")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stderr lockedBuffer
	done := make(chan int, 1)
	args := append(append([]string{"exec"}, d.args()...), "--", "/bin/sh", "-c", `trap 'exit 5' TERM; touch "$0"; while :; do sleep 0.05; done`, ready)
	go func() { done <- run(ctx, args, envMap(nil), io.Discard, &stderr) }()
	waitUntil(t, "the child to start", func() bool { _, err := os.Stat(ready); return err == nil })
	if got := readString(t, filepath.Join(d.out, "a")); got != "one" {
		t.Errorf("out/a = %q, want one", got)
	}
	cancel()
	select {
	case code := <-done:
		if code != 5 {
			t.Errorf("exit code %d, want 5:\n%s", code, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("run did not return:\n%s", stderr.String())
	}
}

// TestReloaderCoalesces: updates of several resources before the signal
// goes out make one signal, which names them all.
func TestReloaderCoalesces(t *testing.T) {
	t.Parallel()
	var (
		mu   sync.Mutex
		sent []os.Signal
	)
	var logs lockedBuffer
	r := newReloader(func(s os.Signal) error {
		mu.Lock()
		defer mu.Unlock()
		sent = append(sent, s)
		return nil
	}, syscall.SIGUSR2, slog.New(slog.NewTextHandler(&logs, nil)))
	r.request("conf.d/b.toml")
	r.request("conf.d/a.toml")
	r.request("conf.d/b.toml")
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { r.run(ctx); close(done) }()
	waitUntil(t, "the signal", func() bool { mu.Lock(); defer mu.Unlock(); return len(sent) > 0 })
	// A later update makes another signal.
	r.request("conf.d/c.toml")
	waitUntil(t, "the second signal", func() bool { mu.Lock(); defer mu.Unlock(); return len(sent) > 1 })
	cancel()
	<-done
	if len(sent) != 2 || sent[0] != syscall.SIGUSR2 || sent[1] != syscall.SIGUSR2 {
		t.Errorf("sent %v, want [SIGUSR2 SIGUSR2]", sent)
	}
	out := logs.String()
	for _, want := range []string{"signal=SIGUSR2 resources=conf.d/a.toml,conf.d/b.toml\n", "signal=SIGUSR2 resources=conf.d/c.toml\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}
