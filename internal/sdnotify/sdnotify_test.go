package sdnotify

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// listen opens a real unix datagram socket, as systemd does, and returns
// its path and a func that reads the next notification.
func listen(t *testing.T, name string) (string, func() string) {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return name, func() string {
		t.Helper()
		if err := conn.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4096)
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("read notification: %v", err)
		}
		return string(buf[:n])
	}
}

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestMessages(t *testing.T) {
	t.Parallel()
	sock, next := listen(t, filepath.Join(t.TempDir(), "notify"))
	n, err := New(env(map[string]string{"NOTIFY_SOCKET": sock}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	if !n.Enabled() {
		t.Fatal("Enabled() = false with NOTIFY_SOCKET set")
	}
	if _, ok := n.WatchdogPeriod(); ok {
		t.Error("WatchdogPeriod set without WATCHDOG_USEC")
	}
	steps := []struct {
		name string
		send func() error
		want string
	}{
		{"ready", n.Ready, "READY=1"},
		{"stopping", n.Stopping, "STOPPING=1"},
		{"watchdog", n.Watchdog, "WATCHDOG=1"},
		{"status", func() error { return n.Status("rendered\n3 resources") }, "STATUS=rendered 3 resources"},
	}
	for _, s := range steps {
		if err := s.send(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := next(); got != s.want {
			t.Errorf("%s sent %q, want %q", s.name, got, s.want)
		}
	}
	if err := n.Reloading(); err != nil {
		t.Fatal(err)
	}
	got := next()
	lines := strings.Split(got, "\n")
	if len(lines) != 2 || lines[0] != "RELOADING=1" || !strings.HasPrefix(lines[1], "MONOTONIC_USEC=") {
		t.Fatalf("Reloading sent %q, want RELOADING=1 and MONOTONIC_USEC=", got)
	}
	if usec, err := strconv.ParseUint(strings.TrimPrefix(lines[1], "MONOTONIC_USEC="), 10, 64); err != nil || usec == 0 {
		t.Errorf("MONOTONIC_USEC in %q: %v", got, err)
	}
}

func TestAbstractSocket(t *testing.T) {
	t.Parallel()
	name := "kvconf-sdnotify-test-" + strconv.Itoa(os.Getpid())
	_, next := listen(t, "\x00"+name)
	n, err := New(env(map[string]string{"NOTIFY_SOCKET": "@" + name}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	if err := n.Ready(); err != nil {
		t.Fatal(err)
	}
	if got := next(); got != "READY=1" {
		t.Errorf("got %q, want READY=1", got)
	}
}

func TestDisabled(t *testing.T) {
	t.Parallel()
	n, err := New(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if n.Enabled() {
		t.Error("Enabled() without NOTIFY_SOCKET")
	}
	if err := n.Ready(); err != nil {
		t.Errorf("Ready without a socket = %v, want nil", err)
	}
	var zero *Notifier
	if err := zero.Close(); err != nil {
		t.Error(err)
	}
}

func TestWatchdog(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "notify")
	tests := []struct {
		name string
		env  map[string]string
		want time.Duration
		ok   bool
	}{
		{"set", map[string]string{"WATCHDOG_USEC": "3000000"}, 3 * time.Second, true},
		{"our pid", map[string]string{"WATCHDOG_USEC": "500000", "WATCHDOG_PID": strconv.Itoa(os.Getpid())}, 500 * time.Millisecond, true},
		{"another pid", map[string]string{"WATCHDOG_USEC": "500000", "WATCHDOG_PID": "1"}, 0, false},
		{"unset", map[string]string{}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := map[string]string{"NOTIFY_SOCKET": sock}
			for k, v := range tt.env {
				e[k] = v
			}
			n, err := New(env(e))
			if err != nil {
				t.Fatal(err)
			}
			got, ok := n.WatchdogPeriod()
			if got != tt.want || ok != tt.ok {
				t.Errorf("WatchdogPeriod() = %v, %v; want %v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestBadEnvironment(t *testing.T) {
	t.Parallel()
	for _, e := range []map[string]string{
		{"NOTIFY_SOCKET": "relative/path"},
		{"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "soon"},
		{"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "0"},
	} {
		if _, err := New(env(e)); err == nil {
			t.Errorf("New(%v) = nil error", e)
		}
	}
}
