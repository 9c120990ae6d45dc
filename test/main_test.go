package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// kvconfBin is the kvconf binary built once for every test.
var kvconfBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kvconf-it-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	kvconfBin = filepath.Join(dir, "kvconf")
	// Built from the checkout this module sits in.
	build := exec.Command("go", "build", "-o", kvconfBin, "./cmd/kvconf")
	build.Dir = ".."
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build kvconf:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir) // a temporary directory; nothing to do if it stays
	os.Exit(code)
}

// requireTool returns the path of a program the test needs. Missing, it
// fails the test under CI and skips it elsewhere, saying how to get it.
func requireTool(t *testing.T, name, hint string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if p := filepath.Join(dir, name); isExecutable(p) {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s not found and CI is set: %s", name, hint)
	}
	t.Skipf("%s not found: %s", name, hint)
	return ""
}

// binFromEnv returns the server binary named by the environment variable
// env, such as CONSUL_BIN. Unset or not an executable file, it fails the
// test under CI and skips it elsewhere, with hint saying how to get one.
func binFromEnv(t testing.TB, env, hint string) string {
	t.Helper()
	bin := os.Getenv(env)
	switch {
	case bin != "" && isExecutable(bin):
		return bin
	case bin != "":
		if os.Getenv("CI") != "" {
			t.Fatalf("%s=%s is not an executable file and CI is set: %s", env, bin, hint)
		}
		t.Skipf("%s=%s is not an executable file: %s", env, bin, hint)
	case os.Getenv("CI") != "":
		t.Fatalf("%s not set and CI is set: %s", env, hint)
	default:
		t.Skipf("%s not set: %s", env, hint)
	}
	return ""
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// repoRoot is the kvconf checkout the test module sits in.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}
