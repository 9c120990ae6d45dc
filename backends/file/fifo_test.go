//go:build unix

package file_test

import (
	"maps"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kvconf/kvconf/backends/file"
)

// guard runs f and fails the test if it has not returned within 30
// seconds: a read that blocks (a named pipe with no writer) must fail the
// test, not hang it. The goroutine left behind then stays blocked until
// the test binary exits.
func guard[T any](t *testing.T, what string, f func() T) T {
	t.Helper()
	done := make(chan T, 1)
	go func() { done <- f() }()
	select {
	case v := <-done:
		return v
	case <-time.After(30 * time.Second):
		t.Fatalf("%s blocked for 30 s", what)
		var zero T
		return zero // not reached: Fatalf ends the test
	}
}

func mkfifo(t *testing.T, name string) {
	t.Helper()
	if err := syscall.Mkfifo(name, 0o644); err != nil {
		t.Fatalf("mkfifo %s: %v", name, err)
	}
}

// wantRefused fails unless err refuses the named pipe name, naming it and
// the -file flag.
func wantRefused(t *testing.T, err error, name string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "named pipe") || !strings.Contains(err.Error(), "-file") {
		t.Errorf("err = %v, want a refusal of the named pipe %s naming -file", err, name)
	}
}

// TestNonRegularFile checks that a named pipe (or a device) given as a
// file is refused at once, whether it is one when the client is made or
// becomes one later, by Snapshot and by Watch, and that one in a listed
// directory is skipped.
func TestNonRegularFile(t *testing.T) {
	t.Parallel()
	t.Run("listed pipe refused by New", func(t *testing.T) {
		t.Parallel()
		fifo := filepath.Join(t.TempDir(), "data.yaml")
		mkfifo(t, fifo)
		err := guard(t, "New", func() error {
			_, err := file.New(t.Context(), file.Config{File: []string{fifo}})
			return err
		})
		wantRefused(t, err, fifo)
	})
	t.Run("device refused by New", func(t *testing.T) {
		t.Parallel()
		_, err := file.New(t.Context(), file.Config{File: []string{os.DevNull}})
		if err == nil || !strings.Contains(err.Error(), os.DevNull) || !strings.Contains(err.Error(), "device") {
			t.Errorf("err = %v, want a refusal of %s", err, os.DevNull)
		}
	})
	t.Run("link to a pipe refused by New", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		fifo, link := filepath.Join(dir, "fifo"), filepath.Join(dir, "data.yaml")
		mkfifo(t, fifo)
		if err := os.Symlink(fifo, link); err != nil {
			t.Fatal(err)
		}
		_, err := file.New(t.Context(), file.Config{File: []string{link}})
		wantRefused(t, err, link)
	})
	t.Run("file replaced by a pipe, Snapshot", func(t *testing.T) {
		t.Parallel()
		name := filepath.Join(t.TempDir(), "data.yaml")
		writeFile(t, name, "a: 1\n")
		c := newClient(t, file.Config{File: []string{name}})
		if _, err := c.Snapshot(t.Context(), []string{"/"}); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(name); err != nil {
			t.Fatal(err)
		}
		mkfifo(t, name)
		err := guard(t, "Snapshot", func() error {
			_, err := c.Snapshot(t.Context(), []string{"/"})
			return err
		})
		wantRefused(t, err, name)
	})
	t.Run("file replaced by a pipe, Watch", func(t *testing.T) {
		t.Parallel()
		name := filepath.Join(t.TempDir(), "data.yaml")
		writeFile(t, name, "a: 1\n")
		c := newClient(t, file.Config{File: []string{name}})
		if err := os.Remove(name); err != nil {
			t.Fatal(err)
		}
		mkfifo(t, name)
		err := guard(t, "Watch", func() error {
			_, err := c.Watch(t.Context(), []string{"/"}, 0)
			return err
		})
		wantRefused(t, err, name)
	})
	t.Run("pipe in a directory skipped", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "a.yaml"), "a: 1\n")
		mkfifo(t, filepath.Join(dir, "b.yaml"))
		c := newClient(t, file.Config{File: []string{dir}, Filter: "*.yaml"})
		kvs := guard(t, "Snapshot", func() map[string]string {
			s, err := c.Snapshot(t.Context(), []string{"/"})
			if err != nil {
				t.Error(err)
			}
			return s.KVs
		})
		if want := map[string]string{"/a": "1"}; !maps.Equal(kvs, want) {
			t.Errorf("keys = %v, want %v", kvs, want)
		}
	})
}
