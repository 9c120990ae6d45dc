package plugin_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"go.uber.org/goleak"

	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/backends/backendtest"
	"github.com/kvconf/kvconf/backends/plugin"
)

// fakeBin is testdata/fakeplugin, the test subject of the protocol, built
// once by TestMain.
var fakeBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kvconf-plugin-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fakeBin = filepath.Join(dir, "fakeplugin")
	if out, err := exec.Command("go", "build", "-o", fakeBin, "./testdata/fakeplugin").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build fakeplugin: %v\n%s", err, out)
		os.Exit(1)
	}
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		_ = os.RemoveAll(dir) // a temporary directory; nothing to do if it stays
		os.Exit(code)
	}))
}

// fakeStore is the JSON file the fake plugin reads its keys from.
type fakeStore struct {
	path string
	pid  string // the file the plugin writes its pid to
}

func newFakeStore(t *testing.T) *fakeStore {
	t.Helper()
	dir := t.TempDir()
	return &fakeStore{path: filepath.Join(dir, "store.json"), pid: filepath.Join(dir, "pid")}
}

// update applies f to the store's keys and bumps its revision.
func (s *fakeStore) update(t *testing.T, f func(map[string]string)) {
	t.Helper()
	var st struct {
		Rev uint64            `json:"rev"`
		KVs map[string]string `json:"kvs"`
	}
	if b, err := os.ReadFile(s.path); err == nil {
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatal(err)
		}
	}
	if st.KVs == nil {
		st.KVs = map[string]string{}
	}
	f(st.KVs)
	st.Rev++
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	tmp := s.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, s.path); err != nil {
		t.Fatal(err)
	}
}

func (s *fakeStore) put(t *testing.T, k, v string) {
	t.Helper()
	s.update(t, func(m map[string]string) { m[k] = v })
}

func (s *fakeStore) del(t *testing.T, k string) {
	t.Helper()
	s.update(t, func(m map[string]string) { delete(m, k) })
}

// config returns the config of the fake plugin on s, with flags.
func (s *fakeStore) config(flags ...string) plugin.Config {
	return plugin.Config{
		Command:        append([]string{fakeBin}, flags...),
		Options:        map[string]string{"store": s.path, "pidfile": s.pid},
		RestartBackoff: "10ms",
		StopTimeout:    "2s",
	}
}

func open(t *testing.T, cfg plugin.Config) *plugin.Client {
	t.Helper()
	c, err := plugin.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

func TestConformance(t *testing.T) {
	var s *fakeStore
	backendtest.Run(t, backendtest.Harness{
		Open: func(t *testing.T) backends.Backend {
			s = newFakeStore(t)
			c, err := plugin.New(t.Context(), s.config())
			if err != nil {
				t.Fatal(err)
			}
			return c
		},
		Put:    func(t *testing.T, k, v string) { s.put(t, k, v) },
		Delete: func(t *testing.T, k string) { s.del(t, k) },
	})
}

// TestSnapshotWatch reads keys, then watches them change: as changes when
// the plugin knows the state of the revision watched from.
func TestSnapshotWatch(t *testing.T) {
	t.Parallel()
	s := newFakeStore(t)
	s.put(t, "/app/a", "1")
	s.put(t, "/other/b", "2")
	c := open(t, s.config())

	snap, err := c.Snapshot(t.Context(), []string{"/app"})
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.KVs) != 1 || snap.KVs["/app/a"] != "1" || snap.Rev == 0 {
		t.Fatalf("Snapshot(/app) = %+v, want /app/a=1 at a revision", snap)
	}
	u, err := c.Watch(t.Context(), []string{"/app"}, 0)
	if err != nil || u.Rev != snap.Rev || len(u.Changes) != 0 || u.Full != nil {
		t.Fatalf("Watch(after=0) = %+v, %v; want revision %d only", u, err, snap.Rev)
	}

	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(20 * time.Millisecond)
		s.put(t, "/app/c", "3")
		s.del(t, "/app/a")
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	after := snap.Rev
	got := map[string]string{"/app/a": "1"}
	for got["/app/c"] != "3" || got["/app/a"] != "" {
		u, err := c.Watch(ctx, []string{"/app"}, after)
		if err != nil {
			t.Fatalf("Watch(after=%d): %v", after, err)
		}
		if u.Full != nil {
			t.Fatalf("Watch(after=%d) = a full snapshot, want changes", after)
		}
		for _, ch := range u.Changes {
			if ch.Deleted {
				delete(got, ch.Key)
			} else {
				got[ch.Key] = ch.Value
			}
		}
		after = u.Rev
	}
	<-done
}

// TestWatchUnsupported: a plugin that answers watch "unsupported" makes
// Watch fail with errors.ErrUnsupported.
func TestWatchUnsupported(t *testing.T) {
	t.Parallel()
	s := newFakeStore(t)
	c := open(t, s.config("-nowatch"))
	_, err := c.Watch(t.Context(), []string{"/"}, 0)
	if !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Watch: err = %v, want errors.ErrUnsupported", err)
	}
	if _, err := c.Snapshot(t.Context(), []string{"/"}); err != nil {
		t.Errorf("Snapshot after an unsupported watch: %v", err)
	}
}

// TestHandshake: a plugin that greets with another protocol or version is
// refused, with a message naming the command and both versions; a plugin
// that does not greet in time is refused too.
func TestHandshake(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		command []string
		want    []string
	}{
		{
			name:    "version",
			command: []string{fakeBin, "-version", "2"},
			want:    []string{fakeBin, `"kvconf-backend" version 2`, `"kvconf-backend" version 1`},
		},
		{
			name:    "protocol",
			command: []string{fakeBin, "-protocol", "other"},
			want:    []string{fakeBin, `"other" version 1`, `"kvconf-backend" version 1`},
		},
		{
			name:    "silent",
			command: []string{"sleep", "30"},
			want:    []string{"sleep", "no greeting within 200ms"},
		},
		{
			name:    "exits",
			command: []string{"true"},
			want:    []string{"true", "handshake", "no greeting"},
		},
		{
			name:    "missing",
			command: []string{filepath.Join(t.TempDir(), "absent")},
			want:    []string{"absent", "start"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			c, err := plugin.New(t.Context(), plugin.Config{Command: tt.command, HandshakeTimeout: "200ms"})
			if err == nil {
				_ = c.Close()
				t.Fatal("New succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("New took %v to fail", d)
			}
		})
	}
}

// TestConfigureError: an error answered to configure fails New.
func TestConfigureError(t *testing.T) {
	t.Parallel()
	s := newFakeStore(t)
	cfg := s.config()
	cfg.Options["pidfile"] = filepath.Join(t.TempDir(), "no", "such", "dir")
	_, err := plugin.New(t.Context(), cfg)
	var pe *plugin.Error
	if !errors.As(err, &pe) || pe.Method != "configure" {
		t.Errorf("New: err = %v, want a *plugin.Error of configure", err)
	}
}

// pid returns the pid the fake plugin wrote at its configure.
func (s *fakeStore) readPid(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile(s.pid)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(string(b))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// TestRestart kills the plugin during a watch: the watch fails with
// ErrPluginExited, the next call starts the plugin again, and a watch from
// a revision of the dead process gets a full snapshot at a higher
// revision.
func TestRestart(t *testing.T) {
	t.Parallel()
	s := newFakeStore(t)
	s.put(t, "/app/a", "1")
	c := open(t, s.config())
	snap, err := c.Snapshot(t.Context(), []string{"/app"})
	if err != nil {
		t.Fatal(err)
	}
	pid := s.readPid(t)

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := c.Watch(ctx, []string{"/app"}, snap.Rev)
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond) // let Watch block
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, plugin.ErrPluginExited) {
		t.Fatalf("Watch while the plugin is killed: err = %v, want ErrPluginExited", err)
	}

	u, err := c.Watch(ctx, []string{"/app"}, snap.Rev)
	if err != nil {
		t.Fatalf("Watch after the restart: %v", err)
	}
	if u.Full == nil || u.Full.KVs["/app/a"] != "1" || u.Rev <= snap.Rev {
		t.Errorf("Watch after the restart = %+v, want a full snapshot above revision %d", u, snap.Rev)
	}
	if s.readPid(t) == pid {
		t.Errorf("the plugin was not restarted")
	}
	s.put(t, "/app/a", "2")
	u2, err := c.Watch(ctx, []string{"/app"}, u.Rev)
	if err != nil {
		t.Fatalf("Watch on the new process: %v", err)
	}
	if u2.Rev <= u.Rev || len(u2.Changes) != 1 || u2.Changes[0].Value != "2" {
		t.Errorf("Watch on the new process = %+v, want /app/a=2 above revision %d", u2, u.Rev)
	}
}

// TestCancelWatch: a watch whose context ends returns at once, and the
// plugin, told to cancel it, goes on answering.
func TestCancelWatch(t *testing.T) {
	t.Parallel()
	s := newFakeStore(t)
	c := open(t, s.config())
	u, err := c.Watch(t.Context(), []string{"/"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Millisecond)
		_, err := c.Watch(ctx, []string{"/"}, u.Rev)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Watch: err = %v, want context.DeadlineExceeded", err)
		}
	}
	if _, err := c.Snapshot(t.Context(), []string{"/"}); err != nil {
		t.Errorf("Snapshot after cancelled watches: %v", err)
	}
}

// TestClose: Close ends a pending watch with ErrClosed and stops the
// plugin, killing it when it ignores the end of its stdin.
func TestClose(t *testing.T) {
	t.Parallel()
	for _, linger := range []bool{false, true} {
		t.Run(fmt.Sprintf("linger=%t", linger), func(t *testing.T) {
			t.Parallel()
			s := newFakeStore(t)
			cfg := s.config()
			if linger {
				cfg.Command = append(cfg.Command, "-linger")
				cfg.StopTimeout = "100ms"
			}
			c, err := plugin.New(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			pid := s.readPid(t)
			u, err := c.Watch(t.Context(), []string{"/"}, 0)
			if err != nil {
				t.Fatal(err)
			}
			errc := make(chan error, 1)
			go func() {
				_, err := c.Watch(t.Context(), []string{"/"}, u.Rev)
				errc <- err
			}()
			time.Sleep(50 * time.Millisecond)
			if err := c.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if err := <-errc; !errors.Is(err, backends.ErrClosed) {
				t.Errorf("Watch during Close: err = %v, want backends.ErrClosed", err)
			}
			// The process was reaped by Close: signal 0 finds no process.
			if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
				t.Errorf("plugin process %d after Close: kill -0 = %v, want ESRCH", pid, err)
			}
		})
	}
}

// TestSample decodes the sample configuration into a Config.
func TestSample(t *testing.T) {
	t.Parallel()
	var doc struct {
		Backends map[string]toml.Primitive `toml:"backends"`
	}
	md, err := toml.Decode(plugin.Sample, &doc)
	if err != nil {
		t.Fatal(err)
	}
	var cfg plugin.Config
	var typ struct {
		Type string `toml:"type"`
	}
	if err := md.PrimitiveDecode(doc.Backends["plugin"], &typ); err != nil || typ.Type != "plugin" {
		t.Errorf("sample type = %q, %v; want plugin", typ.Type, err)
	}
	if err := md.PrimitiveDecode(doc.Backends["plugin"], &cfg); err != nil {
		t.Fatal(err)
	}
	if u := md.Undecoded(); len(u) > 0 {
		t.Errorf("sample keys not in Config: %v", u)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	if len(cfg.Command) != 1 || cfg.Options["nodes"] != "127.0.0.1:6379/0" {
		t.Errorf("decoded %+v", cfg)
	}
}

// TestDecode checks the options through backends.Decode.
func TestDecode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		opts    map[string]any
		wantErr string
	}{
		{name: "ok", opts: map[string]any{"command": []string{"/bin/p", "-x"}, "options": map[string]any{"a": "b"}, "restart_backoff": "2s"}},
		{name: "no command", opts: map[string]any{}, wantErr: "command is empty"},
		{name: "bad duration", opts: map[string]any{"command": []string{"p"}, "stop_timeout": "soon"}, wantErr: "stop_timeout"},
		{name: "negative", opts: map[string]any{"command": []string{"p"}, "handshake_timeout": "-1s"}, wantErr: "not positive"},
		{name: "unknown", opts: map[string]any{"command": []string{"p"}, "nodes": []string{"x"}}, wantErr: `option "nodes"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := backends.Decode("plugin", tt.opts)
			if tt.wantErr == "" && err != nil {
				t.Errorf("Decode: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("Decode: err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}
