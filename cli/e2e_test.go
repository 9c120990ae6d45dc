package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/kvconf/kvconf/backends/all" // the in-process tests use the file and env backends
)

// kvconfBin is the kvconf binary that TestMain builds once for the
// end-to-end tests.
var kvconfBin string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

// testMain builds the kvconf binary into a temporary directory, runs the
// tests and removes the directory again.
func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "kvconf-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer func() {
		if err := os.RemoveAll(dir); err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
		}
	}()
	kvconfBin = filepath.Join(dir, "kvconf")
	build := exec.Command("go", "build", "-o", kvconfBin, "../cmd/kvconf")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build kvconf:", err)
		return 1
	}
	return m.Run()
}

// confDir writes a scratch confdir: every name in files (such as
// "conf.d/app.toml", "templates/app.tmpl" or "data.yaml") with "@DIR@"
// replaced by the directory's path. It returns the directory.
func confDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for _, sub := range []string{"conf.d", "templates"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range files {
		writeFile(t, dir, name, strings.ReplaceAll(content, "@DIR@", dir))
	}
	return dir
}

// result is what one run of the binary did.
type result struct {
	code           int
	stdout, stderr string
}

// cleanEnv is the test process's environment without any KVCONF_ or
// CONFD_ variable, so that a developer's settings cannot leak into a run.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KVCONF_") && !strings.HasPrefix(kv, "CONFD_") {
			env = append(env, kv)
		}
	}
	return env
}

// kvconfIn runs the binary in dir with exactly the environment env and
// returns its exit code and output.
func kvconfIn(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), kvconfBin, args...)
	cmd.Dir = dir
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		res.code = ee.ExitCode()
	default:
		t.Fatalf("run kvconf %s: %v\nstderr:\n%s", strings.Join(args, " "), err, res.stderr)
	}
	return res
}

// kvconfFile runs the binary once (-onetime) on dir with the file backend
// reading dir/data.yaml, plus the extra args.
func kvconfFile(t *testing.T, dir string, extra ...string) result {
	t.Helper()
	args := []string{"-backend", "file", "-file", filepath.Join(dir, "data.yaml"),
		"-config-file", os.DevNull, "-confdir", dir, "-onetime"}
	return kvconfIn(t, dir, cleanEnv(), append(args, extra...)...)
}

// wantCode fails the test unless res exited with code.
func wantCode(t *testing.T, res result, code int) {
	t.Helper()
	if res.code != code {
		t.Fatalf("exit code = %d, want %d\nstdout:\n%s\nstderr:\n%s", res.code, code, res.stdout, res.stderr)
	}
}

// wantContains fails the test for every want that is not in got.
func wantContains(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, got)
		}
	}
}

// readString returns the content of file p.
func readString(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// wantContent fails the test unless p holds exactly want.
func wantContent(t *testing.T, p, want string) {
	t.Helper()
	if got := readString(t, p); got != want {
		t.Errorf("%s = %q, want %q", p, got, want)
	}
}

// wantMissing fails the test if p exists.
func wantMissing(t *testing.T, p string) {
	t.Helper()
	if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s exists (err %v), want it absent", p, err)
	}
}

// wantNoStage fails the test if dir holds a stage file of dest base. A
// missing dir holds none.
func wantNoStage(t *testing.T, dir, base string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "."+base+".") {
			t.Errorf("stage file %s left in %s", e.Name(), dir)
		}
	}
}

// ageFile sets p's mtime well into the past and returns it.
func ageFile(t *testing.T, p string) time.Time {
	t.Helper()
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
	return modTime(t, p)
}

func modTime(t *testing.T, p string) time.Time {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.ModTime()
}

// appData is the file backend's data for most tests.
const appData = "app:\n  name: demo\n  port: 8080\n"

// appTmpl renders appData to appOut.
const (
	appTmpl = "name={{getv \"/app/name\"}}\nport={{getv \"/app/port\"}}\n"
	appOut  = "name=demo\nport=8080\n"
)

// appResource is a resource file writing @DIR@/out/app.conf from
// app.tmpl, followed by the extra lines.
func appResource(extra ...string) string {
	return "[template]\nsrc = \"app.tmpl\"\ndest = \"@DIR@/out/app.conf\"\n" + strings.Join(extra, "\n") + "\n"
}

// TestE2EUnchangedKeepsMtime: when the rendered content, mode and owner
// equal dest's, dest is not rewritten, so its mtime stays as it was.
func TestE2EUnchangedKeepsMtime(t *testing.T) {
	t.Parallel()
	dir := confDir(t, map[string]string{
		"data.yaml":          appData,
		"templates/app.tmpl": appTmpl,
		"conf.d/app.toml":    appResource(`mode = "0640"`),
	})
	dest := filepath.Join(dir, "out", "app.conf")
	wantCode(t, kvconfFile(t, dir), 0)
	wantContent(t, dest, appOut)

	old := ageFile(t, dest)
	for i := range 2 {
		wantCode(t, kvconfFile(t, dir), 0)
		if got := modTime(t, dest); !got.Equal(old) {
			t.Fatalf("run %d: dest mtime = %v, want it unchanged at %v", i+2, got, old)
		}
	}
	wantContent(t, dest, appOut)
	wantNoStage(t, filepath.Dir(dest), "app.conf")
}

// TestE2ECheckCmdFails: a failing check_cmd leaves dest as it was (or
// absent), removes the stage file, exits 1 and reports the resource file,
// the command and its output.
func TestE2ECheckCmdFails(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		existing bool // dest exists before the run
	}{
		{name: "existing dest", existing: true},
		{name: "new dest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := confDir(t, map[string]string{
				"data.yaml":          appData,
				"templates/app.tmpl": appTmpl,
				"conf.d/app.toml":    appResource(`check_cmd = "echo checker-rejects-this >&2; grep -q never {{.src}}"`),
			})
			dest := filepath.Join(dir, "out", "app.conf")
			const before = "old content\x00\xff\n"
			if tt.existing {
				writeFile(t, dir, "out/app.conf", before)
			}
			res := kvconfFile(t, dir)
			wantCode(t, res, 1)
			wantContains(t, "stderr", res.stderr, "conf.d/app.toml", "check_cmd", "grep -q never", "checker-rejects-this")
			if tt.existing {
				wantContent(t, dest, before)
			} else {
				wantMissing(t, dest)
			}
			wantNoStage(t, filepath.Dir(dest), "app.conf")
		})
	}
}

// TestE2EKeepStageFile: with -keep-stage-file, the stage a check_cmd
// rejected stays beside dest, holding the new content.
func TestE2EKeepStageFile(t *testing.T) {
	t.Parallel()
	dir := confDir(t, map[string]string{
		"data.yaml":          appData,
		"templates/app.tmpl": appTmpl,
		"conf.d/app.toml":    appResource(`check_cmd = "false {{.src}}"`),
		"out/app.conf":       "old\n",
	})
	wantCode(t, kvconfFile(t, dir, "-keep-stage-file"), 1)
	wantContent(t, filepath.Join(dir, "out", "app.conf"), "old\n")
	stages, err := filepath.Glob(filepath.Join(dir, "out", ".app.conf.*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(stages) != 1 {
		t.Fatalf("stage files = %q, want one", stages)
	}
	wantContent(t, stages[0], appOut)
}

// TestE2ECheckCmdSeesStage: check_cmd gets the staged file, with the new
// content, as {{.src}}, and dest's path as {{.dest}}; dest is replaced only
// after it succeeded.
func TestE2ECheckCmdSeesStage(t *testing.T) {
	t.Parallel()
	dir := confDir(t, map[string]string{
		"data.yaml":          appData,
		"templates/app.tmpl": appTmpl,
		"conf.d/app.toml": appResource(
			`check_cmd = "cp {{.src}} @DIR@/seen.txt && echo {{.src}} > @DIR@/src.txt && echo {{.dest}} > @DIR@/dest.txt && cp {{.dest}} @DIR@/dest-during-check.txt"`),
		"out/app.conf": "old\n",
	})
	dest := filepath.Join(dir, "out", "app.conf")
	wantCode(t, kvconfFile(t, dir), 0)
	wantContent(t, filepath.Join(dir, "seen.txt"), appOut)
	wantContent(t, filepath.Join(dir, "dest.txt"), dest+"\n")
	wantContent(t, filepath.Join(dir, "dest-during-check.txt"), "old\n")
	src := strings.TrimSpace(readString(t, filepath.Join(dir, "src.txt")))
	if filepath.Dir(src) != filepath.Dir(dest) || !strings.HasPrefix(filepath.Base(src), ".app.conf.") {
		t.Errorf("{{.src}} = %q, want a stage file .app.conf.* beside %s", src, dest)
	}
	wantMissing(t, src)
	wantContent(t, dest, appOut)
}

// TestE2EReloadCmdFails: a failing reload_cmd restores dest's previous
// content, or removes a dest that did not exist before, unless rollback =
// false; the run exits 1 and reports the reload and the rollback.
func TestE2EReloadCmdFails(t *testing.T) {
	t.Parallel()
	const reload = `reload_cmd = "echo reload-said-no; exit 3"`
	tests := []struct {
		name      string
		extra     []string
		existing  bool
		wantDest  string // "" for absent
		wantInErr []string
	}{
		{name: "rollback restores", extra: []string{reload}, existing: true, wantDest: "old\n",
			wantInErr: []string{"previous content of", "restored"}},
		{name: "rollback removes new dest", extra: []string{reload},
			wantInErr: []string{"removed", "did not exist before"}},
		{name: "rollback false keeps new", extra: []string{reload, "rollback = false"}, existing: true, wantDest: appOut},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := confDir(t, map[string]string{
				"data.yaml":          appData,
				"templates/app.tmpl": appTmpl,
				"conf.d/app.toml":    appResource(tt.extra...),
			})
			dest := filepath.Join(dir, "out", "app.conf")
			if tt.existing {
				writeFile(t, dir, "out/app.conf", "old\n")
			}
			res := kvconfFile(t, dir)
			wantCode(t, res, 1)
			wantContains(t, "stderr", res.stderr,
				append([]string{"conf.d/app.toml", "reload_cmd", "exit 3", "exit status 3", "reload-said-no"}, tt.wantInErr...)...)
			if tt.wantDest == "" {
				wantMissing(t, dest)
			} else {
				wantContent(t, dest, tt.wantDest)
			}
			wantNoStage(t, filepath.Dir(dest), "app.conf")
		})
	}
}

// TestE2EModeAndOwner: mode, owner and group (names or numbers, confd's
// uid/gid too) are applied to dest.
func TestE2EModeAndOwner(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("changing a file's owner needs root; run the tests as root to cover owner")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("no user nobody to hand files to: %v", err)
	}
	nobodyUID, err := strconv.Atoi(nobody.Uid)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		extra    []string
		wantMode fs.FileMode
		wantUID  int
		wantGID  int
	}{
		{name: "mode", extra: []string{`mode = "0600"`}, wantMode: 0o600, wantUID: 0, wantGID: 0},
		{name: "default mode", wantMode: 0o644, wantUID: 0, wantGID: 0},
		{name: "owner name numeric group", extra: []string{`mode = "0640"`, `owner = "nobody"`, `group = "65533"`},
			wantMode: 0o640, wantUID: nobodyUID, wantGID: 65533},
		{name: "owner number", extra: []string{`owner = "65534"`, `group = "65534"`}, wantMode: 0o644, wantUID: 65534, wantGID: 65534},
		{name: "confd uid gid", extra: []string{`uid = 65532`, `gid = 65531`, `mode = "0604"`}, wantMode: 0o604, wantUID: 65532, wantGID: 65531},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := confDir(t, map[string]string{
				"data.yaml":          appData,
				"templates/app.tmpl": appTmpl,
				"conf.d/app.toml":    appResource(tt.extra...),
			})
			dest := filepath.Join(dir, "out", "app.conf")
			wantCode(t, kvconfFile(t, dir), 0)
			wantContent(t, dest, appOut)
			fi, err := os.Stat(dest)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != tt.wantMode {
				t.Errorf("mode = %04o, want %04o", got, tt.wantMode)
			}
			st := fi.Sys().(*syscall.Stat_t)
			if int(st.Uid) != tt.wantUID || int(st.Gid) != tt.wantGID {
				t.Errorf("owner = %d:%d, want %d:%d", st.Uid, st.Gid, tt.wantUID, tt.wantGID)
			}

			// A second run finds nothing to do.
			old := ageFile(t, dest)
			wantCode(t, kvconfFile(t, dir), 0)
			if got := modTime(t, dest); !got.Equal(old) {
				t.Errorf("second run rewrote dest: mtime %v, want %v", got, old)
			}
		})
	}
}

// TestE2EModeChangeOnly: a dest with the right content but the wrong mode
// is fixed.
func TestE2EModeChangeOnly(t *testing.T) {
	t.Parallel()
	dir := confDir(t, map[string]string{
		"data.yaml":          appData,
		"templates/app.tmpl": appTmpl,
		"conf.d/app.toml":    appResource(`mode = "0600"`),
		"out/app.conf":       appOut, // written 0644
	})
	dest := filepath.Join(dir, "out", "app.conf")
	wantCode(t, kvconfFile(t, dir), 0)
	fi, err := os.Stat(dest)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("mode = %04o, want 0600", got)
	}
}

// TestE2ENoop: -noop changes nothing, runs no hook, exits 0 and prints a
// unified diff of what would change.
func TestE2ENoop(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		existing  bool
		wantDiff  []string // with @DEST@ for dest's path
		wantEmpty bool
	}{
		{name: "changed dest", existing: true,
			wantDiff: []string{"--- @DEST@\n", "+++ @DEST@\n", "\n-old\n", "\n+name=demo\n", "\n+port=8080\n"}},
		{name: "new dest",
			wantDiff: []string{"new file", "--- /dev/null\n", "+++ @DEST@\n", "\n+name=demo\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := confDir(t, map[string]string{
				"data.yaml":          appData,
				"templates/app.tmpl": appTmpl,
				"conf.d/app.toml": appResource(
					`check_cmd = "touch @DIR@/checked"`,
					`reload_cmd = "touch @DIR@/reloaded"`),
			})
			dest := filepath.Join(dir, "out", "app.conf")
			var old time.Time
			if tt.existing {
				writeFile(t, dir, "out/app.conf", "old\n")
				old = ageFile(t, dest)
			}
			res := kvconfFile(t, dir, "-noop")
			wantCode(t, res, 0)
			for _, w := range tt.wantDiff {
				wantContains(t, "stdout", res.stdout, strings.ReplaceAll(w, "@DEST@", dest))
			}
			if tt.existing {
				wantContent(t, dest, "old\n")
				if got := modTime(t, dest); !got.Equal(old) {
					t.Errorf("dest mtime = %v, want it unchanged at %v", got, old)
				}
			} else {
				wantMissing(t, dest)
			}
			wantMissing(t, filepath.Join(dir, "checked"))
			wantMissing(t, filepath.Join(dir, "reloaded"))
			wantNoStage(t, filepath.Dir(dest), "app.conf")
		})
	}
}

// TestE2ENoopUnchanged: -noop on an up-to-date dest prints no diff.
func TestE2ENoopUnchanged(t *testing.T) {
	t.Parallel()
	dir := confDir(t, map[string]string{
		"data.yaml":          appData,
		"templates/app.tmpl": appTmpl,
		"conf.d/app.toml":    appResource(),
	})
	wantCode(t, kvconfFile(t, dir), 0)
	res := kvconfFile(t, dir, "-noop")
	wantCode(t, res, 0)
	if res.stdout != "" {
		t.Errorf("stdout = %q, want no diff", res.stdout)
	}
}

// TestE2ESyncOnly: -sync-only writes dest but runs neither check_cmd (so
// a failing one does not block the write) nor reload_cmd.
func TestE2ESyncOnly(t *testing.T) {
	t.Parallel()
	dir := confDir(t, map[string]string{
		"data.yaml":          appData,
		"templates/app.tmpl": appTmpl,
		"conf.d/app.toml": appResource(
			`check_cmd = "touch @DIR@/checked; false"`,
			`reload_cmd = "touch @DIR@/reloaded; false"`),
		"out/app.conf": "old\n",
	})
	wantCode(t, kvconfFile(t, dir, "-sync-only"), 0)
	wantContent(t, filepath.Join(dir, "out", "app.conf"), appOut)
	wantMissing(t, filepath.Join(dir, "checked"))
	wantMissing(t, filepath.Join(dir, "reloaded"))
}

// TestE2EHooksRunInOrder: without flags, check_cmd and reload_cmd both run,
// check before the commit and reload after it.
func TestE2EHooksRunInOrder(t *testing.T) {
	t.Parallel()
	dir := confDir(t, map[string]string{
		"data.yaml":          appData,
		"templates/app.tmpl": appTmpl,
		"conf.d/app.toml": appResource(
			`check_cmd = "echo check >> @DIR@/log; cat {{.dest}} >> @DIR@/log"`,
			`reload_cmd = "echo reload {{.src}} >> @DIR@/log; cat {{.dest}} >> @DIR@/log"`),
		"out/app.conf": "old\n",
	})
	dest := filepath.Join(dir, "out", "app.conf")
	wantCode(t, kvconfFile(t, dir), 0)
	wantContent(t, filepath.Join(dir, "log"), "check\nold\nreload "+dest+"\n"+appOut)
}

// TestE2EHookTimeout: a hook that outlives the resource's timeout is
// killed and reported; dest is left alone.
func TestE2EHookTimeout(t *testing.T) {
	t.Parallel()
	dir := confDir(t, map[string]string{
		"data.yaml":          appData,
		"templates/app.tmpl": appTmpl,
		"conf.d/app.toml":    appResource(`check_cmd = "sleep 60"`, `timeout = "200ms"`),
		"out/app.conf":       "old\n",
	})
	start := time.Now()
	res := kvconfFile(t, dir)
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("run took %v; the 200ms timeout did not stop the hook", d)
	}
	wantCode(t, res, 1)
	wantContains(t, "stderr", res.stderr, "conf.d/app.toml", "check_cmd", "timed out")
	wantContent(t, filepath.Join(dir, "out", "app.conf"), "old\n")
	wantNoStage(t, filepath.Join(dir, "out"), "app.conf")
}

// TestE2EMissingKeyFailsOneResource: a template reading a missing key
// fails its resource only; the others are written, the run exits 1 and
// the error names the key, the template file and its line.
func TestE2EMissingKeyFailsOneResource(t *testing.T) {
	t.Parallel()
	dir := confDir(t, map[string]string{
		"data.yaml":          appData,
		"templates/app.tmpl": appTmpl,
		"templates/bad.tmpl": "first line\n{{getv \"/nope\"}}\n",
		"conf.d/a.toml":      "[template]\nsrc = \"app.tmpl\"\ndest = \"@DIR@/out/a.conf\"\n",
		"conf.d/b.toml":      "[template]\nsrc = \"bad.tmpl\"\ndest = \"@DIR@/out/b.conf\"\n",
		"conf.d/c.toml":      "[template]\nsrc = \"app.tmpl\"\ndest = \"@DIR@/out/c.conf\"\n",
		"out/b.conf":         "old b\n",
	})
	res := kvconfFile(t, dir)
	wantCode(t, res, 1)
	wantContent(t, filepath.Join(dir, "out", "a.conf"), appOut)
	wantContent(t, filepath.Join(dir, "out", "c.conf"), appOut)
	wantContent(t, filepath.Join(dir, "out", "b.conf"), "old b\n")
	wantContains(t, "stderr", res.stderr, "1 of 3", "conf.d/b.toml", `"/nope"`, "bad.tmpl:2:")
	for _, ok := range []string{"conf.d/a.toml:", "conf.d/c.toml:"} {
		if strings.Contains(res.stderr, ok) {
			t.Errorf("stderr reports %s, which succeeded:\n%s", ok, res.stderr)
		}
	}
}

// TestE2EPrefix: the global -prefix is joined before the resource's
// prefix, and template keys are relative to both.
func TestE2EPrefix(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		res  string // extra resource lines
		tmpl string
		want string
	}{
		{name: "global and resource", args: []string{"-prefix", "/env"}, res: `prefix = "/app"`,
			tmpl: `x={{getv "/x"}}`, want: "x=from-env-app"},
		{name: "resource only", res: `prefix = "/app"`, tmpl: `x={{getv "/x"}}`, want: "x=from-app"},
		{name: "global only", args: []string{"-prefix", "/env/app"}, tmpl: `x={{getv "/x"}}`, want: "x=from-env-app"},
		{name: "keys under prefixes", args: []string{"-prefix", "env"}, res: "prefix = \"app/\"\nkeys = [\"/x\"]",
			tmpl: `{{range gets "/*"}}{{.Key}}={{.Value}} {{end}}`, want: "/x=from-env-app "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := confDir(t, map[string]string{
				"data.yaml":        "env:\n  app:\n    x: from-env-app\n    y: other\napp:\n  x: from-app\n",
				"templates/p.tmpl": tt.tmpl,
				"conf.d/p.toml":    "[template]\nsrc = \"p.tmpl\"\ndest = \"@DIR@/out/p.conf\"\n" + tt.res + "\n",
			})
			wantCode(t, kvconfFile(t, dir, tt.args...), 0)
			wantContent(t, filepath.Join(dir, "out", "p.conf"), tt.want)
		})
	}
}

// TestE2EEnvBackend: KVCONF_BACKEND=env selects the env backend, which
// reads /database/host from DATABASE_HOST.
func TestE2EEnvBackend(t *testing.T) {
	t.Parallel()
	dir := confDir(t, map[string]string{
		"templates/db.tmpl": "host={{getv \"/database/host\"}} port={{getv \"/database/port\" \"5432\"}}\n",
		"conf.d/db.toml":    "[template]\nsrc = \"db.tmpl\"\ndest = \"@DIR@/out/db.conf\"\nkeys = [\"/database\"]\n",
	})
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"KVCONF_BACKEND=env",
		"KVCONF_CONFDIR=" + dir,
		"KVCONF_ONETIME=true",
		"DATABASE_HOST=db.example.com",
	}
	res := kvconfIn(t, dir, env, "-config-file", os.DevNull)
	wantCode(t, res, 0)
	wantContent(t, filepath.Join(dir, "out", "db.conf"), "host=db.example.com port=5432\n")
}

// TestE2EBadResourceFile: a resource file kvconf cannot load is a usage
// error (exit 2) naming the file and the field at fault.
func TestE2EBadResourceFile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		extra string
		want  []string
	}{
		{name: "unknown key", extra: "bogus_key = 1", want: []string{"conf.d/bad.toml", "template.bogus_key", "unknown key"}},
		{name: "bad mode", extra: `mode = "rw-r--r--"`, want: []string{"conf.d/bad.toml", "template.mode"}},
		{name: "bad hook", extra: `check_cmd = "test {{.nope}}"`, want: []string{"conf.d/bad.toml", "template.check_cmd"}},
		{name: "missing template", extra: "", want: []string{"conf.d/bad.toml", "template.src"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := "app.tmpl"
			if tt.name == "missing template" {
				src = "no-such.tmpl"
			}
			dir := confDir(t, map[string]string{
				"data.yaml":          appData,
				"templates/app.tmpl": appTmpl,
				"conf.d/bad.toml":    "[template]\nsrc = \"" + src + "\"\ndest = \"@DIR@/out/bad.conf\"\n" + tt.extra + "\n",
			})
			res := kvconfFile(t, dir)
			wantCode(t, res, 2)
			wantContains(t, "stderr", res.stderr, tt.want...)
			wantMissing(t, filepath.Join(dir, "out", "bad.conf"))
		})
	}
}

// TestE2EInclude: include renders fragments of the templates directory,
// nested and from subdirectories, with the data passed to them.
func TestE2EInclude(t *testing.T) {
	t.Parallel()
	dir := confDir(t, map[string]string{
		"data.yaml":                  "app:\n  name: demo\n  port: 8080\n  servers:\n    a: 10.0.0.1\n    b: 10.0.0.2\n",
		"templates/main.tmpl":        "# main\n{{include \"frag/header.tmpl\"}}{{range gets \"/app/servers/*\"}}{{include \"frag/server.tmpl\" .}}{{end}}# end\n",
		"templates/frag/header.tmpl": "name={{getv \"/app/name\"}}\n{{include \"port.tmpl\"}}",
		"templates/port.tmpl":        "port={{getv \"/app/port\"}}\n",
		"templates/frag/server.tmpl": "server {{base .Key}} {{.Value}}\n",
		"conf.d/main.toml":           "[template]\nsrc = \"main.tmpl\"\ndest = \"@DIR@/out/main.conf\"\n",
	})
	wantCode(t, kvconfFile(t, dir), 0)
	wantContent(t, filepath.Join(dir, "out", "main.conf"),
		"# main\nname=demo\nport=8080\nserver a 10.0.0.1\nserver b 10.0.0.2\n# end\n")
}

// TestE2EBackendFails: when the backend cannot be read, no resource is
// rendered and the run exits 1 naming the cause.
func TestE2EBackendFails(t *testing.T) {
	t.Parallel()
	dir := confDir(t, map[string]string{
		"templates/app.tmpl": appTmpl,
		"conf.d/a.toml":      "[template]\nsrc = \"app.tmpl\"\ndest = \"@DIR@/out/a.conf\"\n",
		"conf.d/b.toml":      "[template]\nsrc = \"app.tmpl\"\ndest = \"@DIR@/out/b.conf\"\n",
	})
	res := kvconfFile(t, dir) // dir/data.yaml does not exist
	wantCode(t, res, 1)
	wantContains(t, "stderr", res.stderr, "data.yaml")
	if strings.Contains(res.stderr, "resources failed") {
		t.Errorf("a backend failure is reported as resource failures:\n%s", res.stderr)
	}
	wantMissing(t, filepath.Join(dir, "out"))
}
