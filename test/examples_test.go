package test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// exampleData is examples/data.yaml with one value replaced, so a test can
// feed a real checker a configuration it must reject.
func exampleData(t *testing.T, old, replacement string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "examples", "data.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if old == "" {
		return data
	}
	if !bytes.Contains(data, []byte(old)) {
		t.Fatalf("examples/data.yaml no longer contains %q", old)
	}
	return bytes.Replace(data, []byte(old), []byte(replacement), 1)
}

// copyTree copies the files of src into dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// exampleDir is a scratch confdir holding the bundled conf.d/ and templates/.
func exampleDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	copyTree(t, filepath.Join(repoRoot(t), "conf.d"), filepath.Join(dir, "conf.d"))
	copyTree(t, filepath.Join(repoRoot(t), "templates"), filepath.Join(dir, "templates"))
	return dir
}

// runKvconf runs the kvconf binary in dir on data and returns its exit
// code and combined output.
func runKvconf(t *testing.T, dir string, data []byte) (int, string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "data.yaml"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), kvconfBin, "-onetime", "-config-file", os.DevNull,
		"-confdir", dir, "-backend", "file", "-file", filepath.Join(dir, "data.yaml"))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PATH="+os.Getenv("PATH")+":/usr/sbin:/sbin")
	out, err := cmd.CombinedOutput()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), string(out)
		}
		t.Fatalf("run kvconf: %v", err)
	}
	return 0, string(out)
}

// TestExamplesPassRealCheckers renders the bundled examples and has the
// real HAProxy, nginx and keepalived check them: through check_cmd, and
// again by hand on the files kvconf wrote.
func TestExamplesPassRealCheckers(t *testing.T) {
	const hint = "apt-get install haproxy nginx keepalived (make test does it when run as root)"
	haproxy := requireTool(t, "haproxy", hint)
	nginx := requireTool(t, "nginx", hint)
	keepalived := requireTool(t, "keepalived", hint)

	dir := exampleDir(t)
	code, out := runKvconf(t, dir, exampleData(t, "", ""))
	if code != 0 {
		t.Fatalf("kvconf exited %d:\n%s", code, out)
	}
	checks := [][]string{
		{haproxy, "-c", "-q", "-f", filepath.Join(dir, "out/haproxy.cfg")},
		{nginx, "-t", "-q", "-e", "stderr", "-g", "pid /dev/null;", "-c", filepath.Join(dir, "out/nginx.conf")},
		{keepalived, "-t", "-f", filepath.Join(dir, "out/keepalived.conf")},
	}
	for _, c := range checks {
		if b, err := exec.CommandContext(t.Context(), c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Errorf("%s rejects kvconf's output: %v\n%s", filepath.Base(c[0]), err, b)
		}
	}
	cfg, err := os.ReadFile(filepath.Join(dir, "out/haproxy.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"server web1 10.0.0.11:8080 check", "server web3 10.0.0.13:8080 check", "bind *:8080"} {
		if !strings.Contains(string(cfg), want) {
			t.Errorf("haproxy.cfg lacks %q:\n%s", want, cfg)
		}
	}
}

// TestRealCheckerRejectionLeavesDestUntouched breaks the data of one
// resource at a time so that its real checker fails: kvconf must exit
// non-zero naming that resource, leave its dest byte-identical and still
// render the others.
func TestRealCheckerRejectionLeavesDestUntouched(t *testing.T) {
	const hint = "apt-get install haproxy nginx keepalived (make test does it when run as root)"
	tests := []struct {
		name     string
		tool     string
		old, new string
		dest     string
	}{
		{name: "haproxy", tool: "haproxy", old: "balance: roundrobin", new: "balance: no-such-algorithm", dest: "out/haproxy.cfg"},
		{name: "nginx", tool: "nginx", old: "listen_port: 8081", new: "listen_port: not-a-port", dest: "out/nginx.conf"},
		{name: "keepalived", tool: "keepalived", old: "algorithm: wrr", new: "algorithm: no-such-scheduler", dest: "out/keepalived.conf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			requireTool(t, tt.tool, hint)
			dir := exampleDir(t)
			if code, out := runKvconf(t, dir, exampleData(t, "", "")); code != 0 {
				t.Fatalf("first render exited %d:\n%s", code, out)
			}
			before := readAll(t, dir)

			code, out := runKvconf(t, dir, exampleData(t, tt.old, tt.new))
			if code != 1 {
				t.Fatalf("exit code = %d, want 1; output:\n%s", code, out)
			}
			if !strings.Contains(out, tt.name) || !strings.Contains(out, "check_cmd") {
				t.Errorf("output does not name resource %s and its check_cmd:\n%s", tt.name, out)
			}
			after := readAll(t, dir)
			if !bytes.Equal(before[tt.dest], after[tt.dest]) {
				t.Errorf("%s changed although its check failed", tt.dest)
			}
			entries, _ := os.ReadDir(filepath.Join(dir, "out"))
			for _, e := range entries {
				if strings.HasPrefix(e.Name(), ".") {
					t.Errorf("stage file %s left behind", e.Name())
				}
			}
		})
	}
}

// readAll returns the content of every file kvconf wrote, by path.
func readAll(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, f := range []string{"out/haproxy.cfg", "out/nginx.conf", "out/keepalived.conf"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		out[f] = b
	}
	return out
}
