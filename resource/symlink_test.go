package resource

import (
	"os"
	"path/filepath"
	"testing"
)

// symlink makes link point to target, or skips the test where the system
// has no symbolic links.
func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Skipf("no symbolic links here: %v", err)
	}
}

// isLink reports whether p is a symbolic link to target.
func isLink(t *testing.T, p, target string) bool {
	t.Helper()
	got, err := os.Readlink(p)
	return err == nil && got == target
}

// TestApplySymlinkDest checks that a dest that is a symbolic link (as in
// nginx's sites-enabled) has the file it points to written, through a
// chain of links and when that file does not exist yet, while the links
// stay; and that a rollback restores that file.
func TestApplySymlinkDest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		links func(t *testing.T, e *env) (dest, target string)
	}{
		{"relative link", func(t *testing.T, e *env) (string, string) {
			avail := filepath.Join(e.out, "available")
			if err := os.Mkdir(avail, 0o755); err != nil {
				t.Fatal(err)
			}
			target := filepath.Join(avail, "app.conf")
			writeFile(t, target, "old\n", 0o600)
			symlink(t, "available/app.conf", e.dest("app.conf"))
			return e.dest("app.conf"), target
		}},
		{"chain of links", func(t *testing.T, e *env) (string, string) {
			target := e.dest("real.conf")
			writeFile(t, target, "old\n", 0o600)
			symlink(t, target, e.dest("mid.conf"))
			symlink(t, "mid.conf", e.dest("app.conf"))
			return e.dest("app.conf"), target
		}},
		{"dangling link", func(t *testing.T, e *env) (string, string) {
			symlink(t, "missing.conf", e.dest("app.conf"))
			return e.dest("app.conf"), e.dest("missing.conf")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			dest, target := tt.links(t, e)
			link, err := os.Readlink(dest)
			if err != nil {
				t.Fatal(err)
			}
			r := e.resource("app", "new\n", "dest = "+q(dest), `mode = "0640"`)
			if res, err := apply(t, r, nil); err != nil || res != Updated {
				t.Fatalf("Apply = %v, %v; want Updated", res, err)
			}
			if !isLink(t, dest, link) {
				t.Errorf("dest is no longer the link to %s", link)
			}
			if c := readFile(t, target); c != "new\n" {
				t.Errorf("target holds %q, want new", c)
			}
			if m := stat(t, target).Mode().Perm(); m != 0o640 {
				t.Errorf("target mode %v, want 0640", m)
			}
			if res, err := apply(t, r, nil); err != nil || res != Unchanged {
				t.Errorf("second Apply = %v, %v; want Unchanged", res, err)
			}
			noStageFiles(t, filepath.Dir(target))

			// A failing reload rolls the target back; the link stays.
			rb := e.resource("rb", "newer\n", "dest = "+q(dest), `mode = "0640"`, `reload_cmd = "exit 3"`)
			if _, err := apply(t, rb, nil); err == nil {
				t.Fatal("no error from a failing reload_cmd")
			}
			if c := readFile(t, target); c != "new\n" {
				t.Errorf("after the rollback, target holds %q, want new", c)
			}
			if !isLink(t, dest, link) {
				t.Errorf("the rollback replaced the link")
			}
		})
	}
}

// TestApplySymlinkLoop checks that a loop of links is an error that
// touches nothing.
func TestApplySymlinkLoop(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	symlink(t, "b.conf", e.dest("a.conf"))
	symlink(t, "a.conf", e.dest("b.conf"))
	r := e.resource("app", "x", "dest = "+q(e.dest("a.conf")))
	if _, err := apply(t, r, nil); err == nil {
		t.Fatal("Apply through a loop of links succeeded")
	}
	if !isLink(t, e.dest("a.conf"), "b.conf") || !isLink(t, e.dest("b.conf"), "a.conf") {
		t.Error("the links changed")
	}
	noStageFiles(t, e.out)
}
