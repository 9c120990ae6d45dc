package cli

import (
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/kvconf/kvconf/resource"
)

var update = flag.Bool("update", false, "rewrite the golden files in ../examples/golden")

// exampleModes are the modes of the bundled examples' dests, by base name,
// when not 0644.
var exampleModes = map[string]fs.FileMode{
	"keepalived.conf": 0o640,
}

// TestExamples renders every bundled example (the repository's conf.d/ and
// templates/) from examples/data.yaml with the file backend, as
// `make example` does, and compares each file written with
// examples/golden/<dest base name>. Run `go test -run TestExamples -update`
// to rewrite the golden files.
//
// The example dests are relative ("out/haproxy.cfg"), and kvconf resolves
// them from its working directory, so the test runs the binary in a
// scratch directory holding a copy of conf.d/ and templates/ rather than
// run in-process, which would write into the source tree or need a chdir.
func TestExamples(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	goldenDir := filepath.Join(root, "examples", "golden")

	// Every resource must have a golden file, so load them all.
	rs, err := resource.LoadDir(resource.Options{ConfDir: root})
	if err != nil {
		t.Fatalf("load the bundled examples: %v", err)
	}
	if len(rs) == 0 {
		t.Fatal("no resources in conf.d/")
	}
	want := map[string]*resource.Resource{} // by dest base name
	for _, r := range rs {
		base := filepath.Base(r.Config.Dest)
		if filepath.IsAbs(r.Config.Dest) || !filepath.IsLocal(r.Config.Dest) {
			t.Errorf("%s: dest %q is not relative to the working directory; the example would write outside ./out", r.Name, r.Config.Dest)
		}
		if prev, dup := want[base]; dup {
			t.Fatalf("%s and %s both write a file named %s; golden files are named by dest base name", prev.Name, r.Name, base)
		}
		want[base] = r
	}

	dir := t.TempDir()
	copyDir(t, filepath.Join(root, "conf.d"), filepath.Join(dir, "conf.d"))
	copyDir(t, filepath.Join(root, "templates"), filepath.Join(dir, "templates"))
	res := kvconfIn(t, dir, cleanEnv(), "-backend", "file", "-file", filepath.Join(root, "examples", "data.yaml"),
		"-config-file", os.DevNull, "-confdir", dir, "-onetime", "-sync-only")
	wantCode(t, res, 0)

	if *update {
		if err := os.MkdirAll(goldenDir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, base := range sortedKeys(want) {
		r := want[base]
		t.Run(base, func(t *testing.T) {
			got := filepath.Join(dir, r.Config.Dest)
			fi, err := os.Stat(got)
			if err != nil {
				t.Fatalf("%s wrote no %s: %v", r.Name, r.Config.Dest, err)
			}
			wantMode, ok := exampleModes[base]
			if !ok {
				wantMode = 0o644
			}
			if fi.Mode().Perm() != wantMode {
				t.Errorf("%s mode = %04o, want %04o", r.Config.Dest, fi.Mode().Perm(), wantMode)
			}
			golden(t, filepath.Join(goldenDir, base), readString(t, got), r.Name)
		})
	}

	// Golden files of examples that no longer exist are stale.
	entries, err := os.ReadDir(goldenDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	for _, e := range entries {
		if _, ok := want[e.Name()]; ok {
			continue
		}
		p := filepath.Join(goldenDir, e.Name())
		if *update {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		t.Errorf("golden file %s has no resource in conf.d/ writing it (go test -update removes it)", p)
	}

	// Nothing else is written: no stray stage file.
	err = filepath.WalkDir(filepath.Join(dir, "out"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if _, ok := want[d.Name()]; !ok {
			t.Errorf("unexpected file %s written", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// golden compares got with the golden file p, or rewrites p with -update.
func golden(t *testing.T, p, got, name string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%s has no golden file %s (run go test ./cli -run TestExamples -update to create it)", name, p)
	}
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("%s output differs from %s (go test -update rewrites it)\ngot:\n%s\nwant:\n%s", name, p, got, want)
	}
}

// copyDir copies the regular files under src into dst.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
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

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
