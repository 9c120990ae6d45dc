//go:build unix

package cli

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestFileIsNamedPipe: a -file naming a named pipe is refused with an error
// naming -file and the path, in -onetime, -watch and exec, instead of
// blocking on the open or the read until a writer comes (forever). Each
// run is guarded: without the refusal the test fails after 30 s rather
// than hanging. exec is given an hour to wait for its backend: the
// refusal is permanent, so it must give up at once, not retry that long.
func TestFileIsNamedPipe(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, dir, "templates/t.tmpl", "x")
	writeFile(t, dir, "conf.d/a.toml", "[template]\nsrc = \"t.tmpl\"\ndest = \""+filepath.Join(dir, "out", "a")+"\"\n")
	fifo := filepath.Join(dir, "data.yaml")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	common := []string{"-config-file", os.DevNull, "-confdir", dir, "-backend", "file", "-file", fifo}
	tests := []struct {
		name string
		args []string
	}{
		{name: "onetime", args: append([]string{"-onetime"}, common...)},
		{name: "watch", args: append([]string{"-watch"}, common...)},
		{name: "exec", args: append(append([]string{"exec", "-wait-backend", "1h"}, common...), "--", "true")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stderr lockedBuffer
			done := make(chan int, 1)
			go func() { done <- run(t.Context(), tt.args, envMap(nil), io.Discard, &stderr) }()
			select {
			case code := <-done:
				if code == 0 {
					t.Errorf("exit code 0, want a failure")
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("kvconf %s blocked on the named pipe for 30 s:\n%s", tt.name, stderr.String())
			}
			if out := stderr.String(); !strings.Contains(out, fifo) || !strings.Contains(out, "named pipe") || !strings.Contains(out, "-file") {
				t.Errorf("stderr does not refuse the named pipe naming -file and %s:\n%s", fifo, out)
			}
			if _, err := os.Stat(filepath.Join(dir, "out", "a")); err == nil {
				t.Error("out/a was written")
			}
		})
	}
}
