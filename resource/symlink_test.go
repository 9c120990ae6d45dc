package resource

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

// needRoot skips a test that needs root, saying why, when the test is not
// root; under CI, where tests run as root, it fails it instead.
func needRoot(t *testing.T, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("needs root (%s), and CI is set: run the tests as root", why)
	}
	t.Skipf("needs root (%s); run as root or under CI", why)
}

// nobody is the uid and gid of the other user in these tests.
const nobody = 65534

// mkdirMode makes dir with exactly mode and owner uid.
func mkdirMode(t *testing.T, dir string, mode fs.FileMode, uid int) {
	t.Helper()
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, uid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
}

// TestApplyUnsafeLink checks that a dest that is a symbolic link someone
// other than root could have made or changed is not followed: Apply fails
// naming the resource, dest and the reason, and the file the link points
// to (standing in for /etc/passwd), the link and the directories are as
// they were. The first case is the reproduction: another user's
// link in a sticky world-writable directory.
func TestApplyUnsafeLink(t *testing.T) {
	needRoot(t, "to make links and directories owned by another user")
	t.Parallel()
	tests := []struct {
		name    string
		dirMode fs.FileMode // of the directory holding dest
		dirUID  int
		linkUID int
		chain   bool   // dest is root's link to the unsafe link, made in a safe directory
		reason  string // in the error
	}{
		{"another user's link in a sticky world-writable dir", fs.ModeSticky | 0o777, 0, nobody, false, "owned by uid 65534"},
		{"root's link in a sticky world-writable dir", fs.ModeSticky | 0o777, 0, 0, false, "can be written by others"},
		{"another user's link in root's dir", 0o755, 0, nobody, false, "owned by uid 65534"},
		{"root's link in another user's dir", 0o755, nobody, 0, false, "owned by uid 65534"},
		{"another user's link in their own dir", 0o755, nobody, nobody, false, "owned by uid 65534"},
		{"root's link in a group-writable dir", 0o775, 0, 0, false, "can be written by others"},
		{"root's link to another user's link", fs.ModeSticky | 0o777, 0, nobody, true, "owned by uid 65534"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			etc := filepath.Join(e.dir, "etc")
			mkdirMode(t, etc, 0o755, 0)
			passwd := filepath.Join(etc, "passwd")
			writeFile(t, passwd, "root:x:0:0:root:/root:/bin/sh\n", 0o644)

			shared := filepath.Join(e.out, "shared")
			mkdirMode(t, shared, tt.dirMode, tt.dirUID)
			link := filepath.Join(shared, "app.conf")
			symlink(t, passwd, link)
			if err := os.Lchown(link, tt.linkUID, tt.linkUID); err != nil {
				t.Fatal(err)
			}
			dest := link
			if tt.chain {
				dest = e.dest("app.conf")
				symlink(t, link, dest)
			}
			r := e.resource("app", "pwned::0:0::/:/bin/sh\n", "dest = "+q(dest),
				`check_cmd = "true"`, `reload_cmd = "true"`, `mode = "0666"`)
			res, err := apply(t, r, nil)
			var le *LinkError
			var re *Error
			if !errors.As(err, &le) || !errors.As(err, &re) {
				t.Fatalf("Apply = %v, %v; want a *LinkError in an *Error", res, err)
			}
			if re.Resource != "conf.d/app.toml" || re.Dest != dest || re.Step != StepWrite || le.Link != link {
				t.Errorf("error %+v, link error %+v", re, le)
			}
			for _, want := range []string{"resource conf.d/app.toml: ", "dest " + dest + " ", "does not follow", tt.reason} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
			if c := readFile(t, passwd); c != "root:x:0:0:root:/root:/bin/sh\n" {
				t.Errorf("the link's target was written: %q", c)
			}
			if m := stat(t, passwd).Mode(); m != 0o644 {
				t.Errorf("the link's target has mode %v", m)
			}
			if !isLink(t, link, passwd) {
				t.Error("the link changed")
			}
			noStageFiles(t, etc)
			noStageFiles(t, shared)
			noStageFiles(t, e.out)
		})
	}
}

// TestApplyLinkSafeDirs checks the other side of TestApplyUnsafeLink:
// root's links in directories only root can write are followed, also
// where the kernel's rule would refuse nothing and the link's target is
// in a directory others can write.
func TestApplyLinkSafeDirs(t *testing.T) {
	needRoot(t, "to make a directory owned by another user")
	t.Parallel()
	e := newEnv(t)
	tmp := filepath.Join(e.out, "tmp")
	mkdirMode(t, tmp, fs.ModeSticky|0o777, 0)
	target := filepath.Join(tmp, "app.conf")
	symlink(t, target, e.dest("app.conf")) // root's, in root's 0755 dir
	r := e.resource("app", "new\n", "dest = "+q(e.dest("app.conf")))
	if res, err := apply(t, r, nil); err != nil || res != Updated {
		t.Fatalf("Apply = %v, %v; want Updated", res, err)
	}
	if c := readFile(t, target); c != "new\n" {
		t.Errorf("target holds %q", c)
	}
	// Should another user now swap the target for a link, it is not followed.
	if err := os.Remove(target); err != nil {
		t.Fatal(err)
	}
	elsewhere := filepath.Join(e.dir, "elsewhere")
	writeFile(t, elsewhere, "mine\n", 0o644)
	symlink(t, elsewhere, target)
	if err := os.Lchown(target, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	r2 := e.resource("app2", "newer\n", "dest = "+q(e.dest("app.conf")))
	var le *LinkError
	if _, err := apply(t, r2, nil); !errors.As(err, &le) || le.Link != target {
		t.Fatalf("Apply = %v; want a *LinkError for %s", err, target)
	}
	if c := readFile(t, elsewhere); c != "mine\n" {
		t.Errorf("the other user's link was followed: %q", c)
	}
}

// TestApplyLinkTargetDirNotMade checks that the missing directory of a
// link's target is not created: only dest's own directory is.
func TestApplyLinkTargetDirNotMade(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	missing := filepath.Join(e.dir, "missing", "deeper")
	symlink(t, filepath.Join(missing, "app.conf"), e.dest("app.conf"))
	r := e.resource("app", "new\n", "dest = "+q(e.dest("app.conf")))
	if _, err := apply(t, r, nil); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Apply = %v, want an error for the missing directory", err)
	}
	if exists(t, filepath.Join(e.dir, "missing")) {
		t.Error("the directory of the link's target was created")
	}
	// A dest that is no link still gets its directory.
	newDir := filepath.Join(e.out, "new", "dir", "app.conf")
	r2 := e.resource("app2", "new\n", "dest = "+q(newDir))
	if res, err := apply(t, r2, nil); err != nil || res != Updated {
		t.Errorf("Apply = %v, %v; want Updated", res, err)
	}
}

// TestReadStateNoFollow checks that dest is read without following a
// link that appeared after it was resolved, and without blocking on a
// FIFO put in its place.
func TestReadStateNoFollow(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secret := filepath.Join(dir, "shadow")
	writeFile(t, secret, "root:$6$hash:::\n", 0o600)
	link := filepath.Join(dir, "link")
	symlink(t, secret, link)
	if st, err := readState(link, nil); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("readState of a link = %+v, %v; want an error", st, err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := mkfifo(fifo); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("mkfifo %s: %v, and CI is set", fifo, err)
		}
		t.Skipf("no FIFOs here: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := readState(fifo, nil)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("readState of a FIFO = %v, want not a regular file", err)
		}
	case <-time.After(30 * time.Second):
		// Unblock the open so that the goroutine ends.
		if f, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
			_ = f.Close()
		}
		if err := <-done; err != nil {
			t.Log(err)
		}
		t.Fatal("readState blocked on a FIFO")
	}
}

// TestApplyUnsafeParentDir checks the directories above dest: another
// user who can write a directory on dest's path can swap the directory
// below it for a link (here home/app → etc, with dest home/app/passwd),
// or plant one before kvconf makes a missing directory; Apply refuses
// both, before and after the swap, and writes nothing. Root's link among
// root's directories (like /var/run → /run) is still followed, and a dest
// right in another user's directory is still written.
func TestApplyUnsafeParentDir(t *testing.T) {
	needRoot(t, "to make directories owned by another user")
	t.Parallel()
	e := newEnv(t)
	etc := filepath.Join(e.dir, "etc")
	mkdirMode(t, etc, 0o755, 0)
	passwd := filepath.Join(etc, "passwd")
	const orig = "root:x:0:0:root:/root:/bin/sh\n"
	writeFile(t, passwd, orig, 0o644)
	home := filepath.Join(e.out, "home")
	mkdirMode(t, home, 0o755, nobody)
	app := filepath.Join(home, "app")
	mkdirMode(t, app, 0o755, nobody)
	dest := filepath.Join(app, "passwd")

	var de *DirError
	r := e.resource("app", "pwned::0:0::/:/bin/sh\n", "dest = "+q(dest), `mode = "0644"`)
	if _, err := apply(t, r, nil); !errors.As(err, &de) || !strings.Contains(err.Error(), app) {
		t.Fatalf("Apply under another user's directory = %v; want a *DirError naming %s", err, app)
	}
	// The other user swaps home/app for a link to etc.
	if err := os.Rename(app, filepath.Join(home, "old")); err != nil {
		t.Fatal(err)
	}
	symlink(t, etc, app)
	if err := os.Lchown(app, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	if _, err := apply(t, r, nil); !errors.As(err, &de) {
		t.Fatalf("Apply through another user's directory link = %v; want a *DirError", err)
	}
	if c := readFile(t, passwd); c != orig {
		t.Fatalf("etc/passwd written through home/app: %q", c)
	}
	noStageFiles(t, etc)
	// A missing directory in another user's directory is not made.
	r2 := e.resource("app2", "x\n", "dest = "+q(filepath.Join(home, "new", "passwd")))
	if _, err := apply(t, r2, nil); !errors.As(err, &de) || exists(t, filepath.Join(home, "new")) {
		t.Fatalf("Apply = %v; want a *DirError and no directory made", err)
	}
	// Right in another user's directory, and through root's link in
	// root's directory, dest is written.
	r3 := e.resource("app3", "x\n", "dest = "+q(filepath.Join(home, "app.conf")))
	if res, err := apply(t, r3, nil); err != nil || res != Updated {
		t.Fatalf("Apply in another user's directory = %v, %v; want Updated", res, err)
	}
	run := filepath.Join(e.out, "run")
	symlink(t, etc, run)
	r4 := e.resource("app4", "x\n", "dest = "+q(filepath.Join(run, "app.conf")))
	if res, err := apply(t, r4, nil); err != nil || res != Updated || readFile(t, filepath.Join(etc, "app.conf")) != "x\n" {
		t.Fatalf("Apply through root's link = %v, %v; want Updated", res, err)
	}
}

// TestApplyHardLinkSetuid checks that dest's mode, kept when the resource
// sets none, never carries setuid or setgid bits: another user who can
// write dest's directory could make dest a hard link to a setuid root
// program (fs.protected_hardlinks off), and kvconf would then write the
// rendered content, which KV writers choose, as a new setuid root file.
func TestApplyHardLinkSetuid(t *testing.T) {
	needRoot(t, "to make a directory owned by another user")
	t.Parallel()
	e := newEnv(t)
	bin := filepath.Join(e.dir, "bin")
	mkdirMode(t, bin, 0o755, 0)
	tool := filepath.Join(bin, "tool")
	writeFile(t, tool, "\x7fELF...", 0o755)
	if err := os.Chmod(tool, 0o4755|fs.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(e.out, "home")
	mkdirMode(t, home, 0o755, nobody)
	dest := filepath.Join(home, "app.conf")
	if err := os.Link(tool, dest); err != nil {
		t.Fatal(err)
	}
	r := e.resource("app", "#!/bin/sh\nid\n", "dest = "+q(dest))
	if res, err := apply(t, r, nil); err != nil || res != Updated {
		t.Fatalf("Apply = %v, %v; want Updated", res, err)
	}
	if m := stat(t, dest).Mode(); m&(fs.ModeSetuid|fs.ModeSetgid) != 0 || m.Perm() != 0o755 {
		t.Errorf("dest has mode %v, want 0755 without setuid", m)
	}
	if c := readFile(t, tool); c != "\x7fELF..." {
		t.Errorf("the linked program was written: %q", c)
	}
}
