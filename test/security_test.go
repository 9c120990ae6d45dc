package test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// These tests run the kvconf binary -onetime, as a user would, against
// the file backend: a dest that is a symbolic link someone else planted
// (issue 15.1), paths that are shell syntax, sensitive resources (15.7)
// and the report of several failed resources (13.3).

// secNobody is the uid and gid of the other user, the attacker.
const secNobody = 65534

// secRoot skips a test that needs root when not root, saying why; under
// CI, where the tests run as root, it fails it instead.
func secRoot(t *testing.T, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("needs root (%s), and CI is set: run the tests as root", why)
	}
	t.Skipf("needs root (%s); run as root or under CI", why)
}

// secRig is a confdir with a data.yaml for the file backend.
type secRig struct {
	t   *testing.T
	dir string
}

func newSecRig(t *testing.T, data string) *secRig {
	t.Helper()
	dir := t.TempDir()
	// Let the other user reach the directories made below.
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r := &secRig{t: t, dir: dir}
	for _, d := range []string{"conf.d", "templates"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r.write("data.yaml", data)
	return r
}

func (r *secRig) write(name, content string) {
	r.t.Helper()
	if err := os.WriteFile(filepath.Join(r.dir, name), []byte(content), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

// resource writes conf.d/NAME.toml and templates/NAME.tmpl; fields are
// more lines of its [template] table.
func (r *secRig) resource(name, tmpl, dest string, fields ...string) {
	r.t.Helper()
	r.write("templates/"+name+".tmpl", tmpl)
	toml := fmt.Sprintf("[template]\nsrc = %q\ndest = %q\n%s\n", name+".tmpl", dest, strings.Join(fields, "\n"))
	r.write("conf.d/"+name+".toml", toml)
}

// run runs kvconf -onetime on the rig and returns its exit code, stdout
// and stderr.
func (r *secRig) run(extra ...string) (int, string, string) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(r.t.Context(), 2*time.Minute)
	defer cancel()
	args := append([]string{"-config-file", os.DevNull, "-confdir", r.dir, "-backend", "file",
		"-file", filepath.Join(r.dir, "data.yaml"), "-onetime"}, extra...)
	cmd := exec.CommandContext(ctx, kvconfBin, args...)
	cmd.Env = execEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, stdout.String(), stderr.String()
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		return ee.ExitCode(), stdout.String(), stderr.String()
	}
	r.t.Fatalf("kvconf: %v\n%s", err, stderr.String())
	return -1, "", ""
}

// secMkdir makes dir with exactly mode, owned by uid.
func secMkdir(t *testing.T, dir string, mode fs.FileMode, uid int) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, uid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
}

// asNobody runs name with args as the other user, with no groups.
func asNobody(t *testing.T, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: secNobody, Gid: secNobody, Groups: []uint32{}}}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %q as uid %d: %v\n%s", name, args, secNobody, err, out)
	}
}

// secRead returns the content of p.
func secRead(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func secExists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// fakePasswd stands in for /etc/passwd: a root-owned file in a root-owned
// directory, which the other user cannot write.
const fakePasswd = "root:x:0:0:root:/root:/bin/sh\n"

// TestSecurityLinkInStickyDir is the first reproduction: dest is
// in a sticky world-writable directory, where another user made dest a
// link to a root-owned file (standing in for /etc/passwd). kvconf, as
// root, must not write that file, and must say why.
func TestSecurityLinkInStickyDir(t *testing.T) {
	secRoot(t, "to run kvconf as root against another user's link")
	t.Parallel()
	r := newSecRig(t, "user: pwned\n")
	etc := filepath.Join(r.dir, "etc")
	secMkdir(t, etc, 0o755, 0)
	passwd := filepath.Join(etc, "passwd")
	if err := os.WriteFile(passwd, []byte(fakePasswd), 0o644); err != nil {
		t.Fatal(err)
	}
	shared := filepath.Join(r.dir, "shared")
	secMkdir(t, shared, fs.ModeSticky|0o777, 0)
	dest := filepath.Join(shared, "app.conf")
	asNobody(t, "ln", "-s", passwd, dest)
	r.resource("app", "{{getv \"/user\"}}::0:0::/root:/bin/sh\n", dest, `mode = "0666"`)

	code, _, stderr := r.run()
	if code != 1 {
		t.Errorf("exit code %d, want 1\n%s", code, stderr)
	}
	for _, want := range []string{"1 of 1 resources failed", "resource conf.d/app.toml: write failed",
		"dest " + dest + " is a symbolic link that kvconf does not follow", "owned by uid 65534"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if c := secRead(t, passwd); c != fakePasswd {
		t.Errorf("the fake /etc/passwd was overwritten: %q", c)
	}
	if fi, err := os.Stat(passwd); err != nil || fi.Mode() != 0o644 {
		t.Errorf("the fake /etc/passwd: %v, %v", fi.Mode(), err)
	}
	if got, err := os.Readlink(dest); err != nil || got != passwd {
		t.Errorf("the link changed: %q, %v", got, err)
	}
}

// TestSecurityLinkTargetCommand is the second reproduction: a
// link target whose name is shell syntax, "x;id>MARKER;#/f". Another
// user's link to it is refused; root's own link to it (in a directory
// only root writes) is followed, and check_cmd and reload_cmd get the
// paths quoted: the command in the name does not run.
func TestSecurityLinkTargetCommand(t *testing.T) {
	secRoot(t, "to run kvconf as root against another user's link")
	t.Parallel()
	for _, attacker := range []bool{true, false} {
		t.Run(fmt.Sprintf("attacker=%v", attacker), func(t *testing.T) {
			t.Parallel()
			r := newSecRig(t, "v: new\n")
			marker := filepath.Join(r.dir, "PWNED")
			target := filepath.Join(r.dir, "x;id>"+marker+";#", "f")
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(target, []byte("old\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			var dest string
			if attacker {
				shared := filepath.Join(r.dir, "shared")
				secMkdir(t, shared, fs.ModeSticky|0o777, 0)
				dest = filepath.Join(shared, "app.conf")
				asNobody(t, "ln", "-s", target, dest)
			} else {
				own := filepath.Join(r.dir, "own")
				secMkdir(t, own, 0o755, 0)
				dest = filepath.Join(own, "app.conf")
				if err := os.Symlink(target, dest); err != nil {
					t.Fatal(err)
				}
			}
			seen := filepath.Join(r.dir, "seen")
			r.resource("app", "{{getv \"/v\"}}\n", dest,
				`check_cmd = "test -s {{.src}} && echo {{.src}} >> `+seen+`"`,
				`reload_cmd = "grep -q new {{.dest}} && echo {{.dest}} >> `+seen+`"`)

			code, _, stderr := r.run()
			if secExists(marker) {
				t.Fatalf("a hook ran the command in the link target's name\n%s", stderr)
			}
			if attacker {
				if code != 1 || !strings.Contains(stderr, "does not follow") {
					t.Errorf("exit code %d, want 1 and a refusal:\n%s", code, stderr)
				}
				if c := secRead(t, target); c != "old\n" {
					t.Errorf("target written through another user's link: %q", c)
				}
				return
			}
			if code != 0 {
				t.Fatalf("exit code %d\n%s", code, stderr)
			}
			if c := secRead(t, target); c != "new\n" {
				t.Errorf("target holds %q", c)
			}
			lines := strings.Split(strings.TrimSpace(secRead(t, seen)), "\n")
			if len(lines) != 2 || filepath.Dir(lines[0]) != filepath.Dir(target) ||
				!strings.HasPrefix(filepath.Base(lines[0]), ".f.") || lines[1] != dest {
				t.Errorf("hooks saw %q, want a stage file beside %s, then %s", lines, target, dest)
			}
		})
	}
}

// TestSecurityDestQuotes renders to a dest whose directory has spaces and
// quotes in its name; check_cmd and reload_cmd see the right paths.
func TestSecurityDestQuotes(t *testing.T) {
	t.Parallel()
	r := newSecRig(t, "v: new\n")
	dir := filepath.Join(r.dir, `my "app's" $HOME dir`)
	dest := filepath.Join(dir, "app conf")
	seen := filepath.Join(r.dir, "seen")
	r.resource("app", "{{getv \"/v\"}}\n", dest,
		`check_cmd = "grep -q new {{.src}} && printf '%s\n' {{.src}} >> `+seen+`"`,
		`reload_cmd = "grep -q new \"{{.dest}}\" && printf '%s\n' '{{.dest}}' >> `+seen+`"`)
	code, _, stderr := r.run()
	if code != 0 {
		t.Fatalf("exit code %d\n%s", code, stderr)
	}
	if c := secRead(t, dest); c != "new\n" {
		t.Errorf("dest holds %q", c)
	}
	lines := strings.Split(strings.TrimSpace(secRead(t, seen)), "\n")
	if len(lines) != 2 || filepath.Dir(lines[0]) != dir || !strings.HasPrefix(filepath.Base(lines[0]), ".app conf.") || lines[1] != dest {
		t.Errorf("hooks saw %q, want a stage file in %q, then %q", lines, dir, dest)
	}
}

// TestOnetimeReportsEveryFailure: five resources, three of whose
// check_cmds fail after printing more than 4 KiB, one of them sensitive.
// The report gives the true count and, for each, the file, the step and
// the last 4 KiB of its output, withheld for the sensitive one.
func TestOnetimeReportsEveryFailure(t *testing.T) {
	t.Parallel()
	r := newSecRig(t, "pw: S3cr3t-pa55word\n")
	out := filepath.Join(r.dir, "out")
	// 6,000 bytes of output: a first line that falls out of the 4 KiB,
	// filler, the file, then the cause. (printf puts the markers together,
	// so that they are not in the command, which the report quotes.)
	chatty := func(name string) string {
		return fmt.Sprintf(`check_cmd = "printf '%%s-%%s\n' FIRST %[1]s; yes 0123456789 | head -n 540; cat {{.src}}; printf '%%s-%%s\n' %[1]s CAUSE >&2; exit 1"`, name)
	}
	tmpl := "password {{getv \"/pw\"}}\n"
	r.resource("a", tmpl, filepath.Join(out, "a"))
	r.resource("b", tmpl, filepath.Join(out, "b"), chatty("b"))
	r.resource("c", tmpl, filepath.Join(out, "c"), chatty("c"))
	r.resource("d", tmpl, filepath.Join(out, "d"))
	r.resource("e", tmpl, filepath.Join(out, "e"), chatty("e"), "sensitive = true")

	code, _, stderr := r.run()
	if code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	report := stderr[max(0, strings.Index(stderr, "kvconf: 3 of 5")):]
	for _, want := range []string{
		"kvconf: 3 of 5 resources failed:\n",
		"  resource conf.d/b.toml: check failed, dest " + filepath.Join(out, "b") + ": check_cmd ",
		"  resource conf.d/c.toml: check failed, dest " + filepath.Join(out, "c") + ": check_cmd ",
		"  resource conf.d/e.toml: check failed, dest " + filepath.Join(out, "e") + ": check_cmd ",
		"    check_cmd output (last 4096 of ",
		"      password S3cr3t-pa55word\n      b-CAUSE\n", "      password S3cr3t-pa55word\n      c-CAUSE\n",
		"    check_cmd output withheld: resource is sensitive\n",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, stderr)
		}
	}
	for _, bad := range []string{"FIRST-", "e-CAUSE", "conf.d/a.toml", "conf.d/d.toml"} {
		if strings.Contains(report, bad) {
			t.Errorf("report holds %q:\n%s", bad, stderr)
		}
	}
	if n := strings.Count(stderr, "S3cr3t-pa55word"); n != 2 {
		t.Errorf("the rendered secret is in stderr %d times, want 2 (b's and c's output, not e's):\n%s", n, stderr)
	}
	for _, name := range []string{"a", "d"} {
		if c := secRead(t, filepath.Join(out, name)); c != "password S3cr3t-pa55word\n" {
			t.Errorf("%s holds %q", name, c)
		}
	}
	for _, name := range []string{"b", "c", "e"} {
		if secExists(filepath.Join(out, name)) {
			t.Errorf("%s was written though its check failed", name)
		}
	}
}

// TestNoopSensitive: -noop prints the diff of an ordinary resource and
// withholds that of a sensitive one.
func TestNoopSensitive(t *testing.T) {
	t.Parallel()
	r := newSecRig(t, "pw: S3cr3t-pa55word\n")
	out := filepath.Join(r.dir, "out")
	r.resource("open", "password {{getv \"/pw\"}}\n", filepath.Join(out, "open"))
	r.resource("secret", "password {{getv \"/pw\"}}\n", filepath.Join(out, "secret"), "sensitive = true")
	code, stdout, stderr := r.run("-noop")
	if code != 0 {
		t.Fatalf("exit code %d\n%s", code, stderr)
	}
	if n := strings.Count(stdout+stderr, "S3cr3t-pa55word"); n != 1 {
		t.Errorf("the secret is in the output %d times, want once (open's diff):\n%s\n%s", n, stdout, stderr)
	}
	if want := "# " + filepath.Join(out, "secret") + ": content differs; diff withheld: resource is sensitive\n"; !strings.Contains(stdout, want) {
		t.Errorf("stdout lacks %q:\n%s", want, stdout)
	}
}

// TestSecuritySwappedParentDir: dest is home/app/passwd, and another user
// owns home: they swap home/app for a link to a root-owned directory
// holding a file named passwd (standing in for /etc). kvconf, as root,
// must not write through the link, and must say why.
func TestSecuritySwappedParentDir(t *testing.T) {
	secRoot(t, "to run kvconf as root against another user's directory")
	t.Parallel()
	r := newSecRig(t, "user: pwned\n")
	etc := filepath.Join(r.dir, "etc")
	secMkdir(t, etc, 0o755, 0)
	passwd := filepath.Join(etc, "passwd")
	if err := os.WriteFile(passwd, []byte(fakePasswd), 0o644); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(r.dir, "home")
	secMkdir(t, home, 0o755, secNobody)
	app := filepath.Join(home, "app")
	asNobody(t, "mkdir", app)
	dest := filepath.Join(app, "passwd")
	r.resource("app", "{{getv \"/user\"}}::0:0::/root:/bin/sh\n", dest, `mode = "0644"`,
		`reload_cmd = "true"`)
	asNobody(t, "mv", app, filepath.Join(home, "old"))
	asNobody(t, "ln", "-s", etc, app)

	code, _, stderr := r.run()
	if code != 1 {
		t.Errorf("exit code %d, want 1\n%s", code, stderr)
	}
	for _, want := range []string{"1 of 1 resources failed", "dest " + dest + ": " + app + " could be replaced by a link",
		"its directory " + home + " is owned by uid 65534"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if c := secRead(t, passwd); c != fakePasswd {
		t.Errorf("the fake /etc/passwd was overwritten through %s: %q", app, c)
	}
	ents, err := os.ReadDir(etc)
	if err != nil || len(ents) != 1 {
		t.Errorf("etc holds %v, %v; want passwd alone", ents, err)
	}
}
