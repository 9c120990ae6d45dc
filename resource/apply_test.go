package resource

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kvconf/kvconf/funcs"
)

// apply applies r to a store holding kvs.
func apply(t *testing.T, r *Resource, kvs map[string]string) (Result, error) {
	t.Helper()
	return r.Apply(t.Context(), funcs.NewStore(kvs))
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t *testing.T, p, content string, mode fs.FileMode) {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // WriteFile's mode is masked by umask
		t.Fatal(err)
	}
}

func stat(t *testing.T, p string) fs.FileInfo {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi
}

func exists(t *testing.T, p string) bool {
	t.Helper()
	_, err := os.Stat(p)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

// stageFiles returns the dot files in dir: stage files left behind.
func stageFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out
}

func noStageFiles(t *testing.T, dir string) {
	t.Helper()
	if s := stageFiles(t, dir); len(s) > 0 {
		t.Errorf("stage files left behind: %q", s)
	}
}

func TestApplyWrites(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		old      *string     // dest's content before, nil for none
		oldMode  fs.FileMode // dest's mode before
		mode     string      // the resource's mode field
		want     Result
		wantMode fs.FileMode
	}{
		{name: "new file gets 0644", want: Updated, wantMode: 0o644},
		{name: "new file with mode", mode: "0600", want: Updated, wantMode: 0o600},
		{name: "new file with setuid mode", mode: "4750", want: Updated, wantMode: 0o750 | fs.ModeSetuid},
		{name: "content change keeps dest mode", old: ptr("old\n"), oldMode: 0o600, want: Updated, wantMode: 0o600},
		{name: "content change applies mode", old: ptr("old\n"), oldMode: 0o600, mode: "640", want: Updated, wantMode: 0o640},
		{name: "mode change alone", old: ptr("v=1\n"), oldMode: 0o644, mode: "0600", want: Updated, wantMode: 0o600},
		{name: "same content and mode", old: ptr("v=1\n"), oldMode: 0o640, mode: "0640", want: Unchanged, wantMode: 0o640},
		{name: "same content, mode unset", old: ptr("v=1\n"), oldMode: 0o604, want: Unchanged, wantMode: 0o604},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			dest := e.dest("app.conf")
			if tt.old != nil {
				writeFile(t, dest, *tt.old, tt.oldMode)
			}
			fields := []string{"dest = " + q(dest), `keys = ["/v"]`}
			if tt.mode != "" {
				fields = append(fields, "mode = "+q(tt.mode))
			}
			r := e.resource("app", "v={{getv \"/v\"}}\n", fields...)
			got, err := apply(t, r, map[string]string{"/v": "1"})
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("Apply = %v, want %v", got, tt.want)
			}
			if c := readFile(t, dest); c != "v=1\n" {
				t.Errorf("dest holds %q", c)
			}
			if m := stat(t, dest).Mode() & modeBits; m != tt.wantMode {
				t.Errorf("dest mode %v, want %v", m, tt.wantMode)
			}
			noStageFiles(t, e.out)
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestApplyUnchangedLeavesMtime(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dest := e.dest("app.conf")
	marker := filepath.Join(e.dir, "reloaded")
	r := e.resource("app", "v={{getv \"/v\"}}\n", "dest = "+q(dest), `keys = ["/v"]`,
		"check_cmd = "+q("touch "+marker), "reload_cmd = "+q("touch "+marker))
	writeFile(t, dest, "v=1\n", 0o644)
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	if err := os.Chtimes(dest, old, old); err != nil {
		t.Fatal(err)
	}
	got, err := apply(t, r, map[string]string{"/v": "1"})
	if err != nil || got != Unchanged {
		t.Fatalf("Apply = %v, %v; want Unchanged", got, err)
	}
	if m := stat(t, dest).ModTime(); !m.Equal(old) {
		t.Errorf("dest mtime changed to %v", m)
	}
	if exists(t, marker) {
		t.Error("a hook ran for an unchanged dest")
	}
	noStageFiles(t, e.out)
}

func TestApplyView(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.opts.Prefix = "/prod"
	dest := e.dest("app.conf")
	r := e.resource("app", `{{getv "/db/host"}} {{getv "/web/x" "hidden"}} {{ls "/db"}} {{getv "/prod/app/db/host" "full keys hidden"}}`,
		"dest = "+q(dest), `prefix = "app"`, `keys = ["/db"]`)
	kvs := map[string]string{
		"/prod/app/db/host": "h",
		"/prod/app/db/port": "p",
		"/prod/app/web/x":   "w", // under the prefix, but not under a key
		"/app/db/host":      "no global prefix",
	}
	if _, err := apply(t, r, kvs); err != nil {
		t.Fatal(err)
	}
	if got, want := readFile(t, dest), "h hidden [host port] full keys hidden"; got != want {
		t.Errorf("rendered %q, want %q", got, want)
	}
}

func TestApplyRenderError(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dest := e.dest("app.conf")
	writeFile(t, dest, "old\n", 0o600)
	r := e.resource("app", "a\n{{getv \"/missing\"}}\n", "dest = "+q(dest), "mode = \"0644\"")
	got, err := apply(t, r, map[string]string{"/other": "x"})
	if !errors.Is(err, funcs.ErrNotExist) {
		t.Fatalf("got %v, want funcs.ErrNotExist", err)
	}
	for _, s := range []string{"resource conf.d/app.toml: ", "template: app.tmpl:2:"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not contain %q", err, s)
		}
	}
	if got != Unchanged {
		t.Errorf("Apply = %v, want Unchanged", got)
	}
	if c := readFile(t, dest); c != "old\n" {
		t.Errorf("dest changed to %q", c)
	}
	if m := stat(t, dest).Mode().Perm(); m != 0o600 {
		t.Errorf("dest mode changed to %v", m)
	}
	noStageFiles(t, e.out)
}

func TestApplyDestNotRegular(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dest := e.dest("dir")
	if err := os.Mkdir(dest, 0o755); err != nil {
		t.Fatal(err)
	}
	r := e.resource("app", "x", "dest = "+q(dest))
	if _, err := apply(t, r, nil); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("got %v, want a not-a-regular-file error", err)
	}
	if !stat(t, dest).IsDir() {
		t.Error("dest was replaced")
	}
	noStageFiles(t, e.out)
}

func TestApplyCheckFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dest := e.dest("app.conf")
	writeFile(t, dest, "old\n", 0o600)
	r := e.resource("app", "new\n", "dest = "+q(dest), `check_cmd = "echo bad config >&2; echo more; exit 3"`)
	got, err := apply(t, r, nil)
	var he *HookError
	if !errors.As(err, &he) {
		t.Fatalf("got %v, want a *HookError", err)
	}
	if he.Hook != "check_cmd" || he.ExitCode != 3 || string(he.Output) != "bad config\nmore\n" {
		t.Errorf("got %+v (output %q)", he, he.Output)
	}
	if got != Unchanged {
		t.Errorf("Apply = %v, want Unchanged", got)
	}
	if c := readFile(t, dest); c != "old\n" {
		t.Errorf("dest changed to %q", c)
	}
	if m := stat(t, dest).Mode().Perm(); m != 0o600 {
		t.Errorf("dest mode changed to %v", m)
	}
	noStageFiles(t, e.out)
}

func TestApplyCheckSeesStage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dest := e.dest("app.conf")
	writeFile(t, dest, "old\n", 0o644)
	seen := filepath.Join(e.dir, "seen")
	seenPath := filepath.Join(e.dir, "seen-path")
	check := "cp {{.src}} " + seen + " && echo {{.src}} > " + seenPath + " && test {{.dest}} = " + dest
	r := e.resource("app", "v={{getv \"/v\"}}\n", "dest = "+q(dest), "mode = \"0640\"", "check_cmd = "+q(check))
	if _, err := apply(t, r, map[string]string{"/v": "2"}); err != nil {
		t.Fatal(err)
	}
	if c := readFile(t, seen); c != "v=2\n" {
		t.Errorf("check_cmd saw %q, want the new content", c)
	}
	stage := strings.TrimSpace(readFile(t, seenPath))
	if filepath.Dir(stage) != e.out || !strings.HasPrefix(filepath.Base(stage), ".app.conf.") {
		t.Errorf("stage file %s is not .app.conf.* next to dest", stage)
	}
	if exists(t, stage) {
		t.Errorf("stage file %s still exists", stage)
	}
	if c := readFile(t, dest); c != "v=2\n" {
		t.Errorf("dest holds %q", c)
	}
}

func TestApplyStageModeBeforeContent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dest := e.dest("secret.conf")
	// check_cmd reports the stage file's mode: it was set before the
	// content was written, so it is never more open than wanted.
	modeFile := filepath.Join(e.dir, "mode")
	r := e.resource("app", "secret\n", "dest = "+q(dest), `mode = "0400"`,
		"check_cmd = "+q("stat -c %a {{.src}} > "+modeFile))
	if _, err := apply(t, r, nil); err != nil {
		t.Fatal(err)
	}
	if m := strings.TrimSpace(readFile(t, modeFile)); m != "400" {
		t.Errorf("stage mode %s, want 400", m)
	}
}

func TestApplyReloadFails(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		existed  bool
		rollback string // the rollback field, "" for unset
		want     Result
		wantDest *string // nil: dest must not exist
		wantMsg  string
	}{
		{name: "restores old content", existed: true, want: Unchanged, wantDest: ptr("old\n"), wantMsg: "previous content of"},
		{name: "rollback explicitly on", existed: true, rollback: "true", want: Unchanged, wantDest: ptr("old\n"), wantMsg: "restored"},
		{name: "removes new dest", want: Unchanged, wantMsg: "which did not exist before"},
		{name: "rollback off keeps new", existed: true, rollback: "false", want: Updated, wantDest: ptr("new\n"), wantMsg: "reload_cmd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			dest := e.dest("app.conf")
			if tt.existed {
				writeFile(t, dest, "old\n", 0o600)
			}
			seen := filepath.Join(e.dir, "seen")
			fields := []string{"dest = " + q(dest), `mode = "0644"`,
				"reload_cmd = " + q("cp {{.dest}} "+seen+"; echo reload failed; exit 7")}
			if tt.rollback != "" {
				fields = append(fields, "rollback = "+tt.rollback)
			}
			r := e.resource("app", "new\n", fields...)
			got, err := apply(t, r, nil)
			var he *HookError
			if !errors.As(err, &he) || he.Hook != "reload_cmd" || he.ExitCode != 7 {
				t.Fatalf("got %v, want a reload_cmd *HookError with exit code 7", err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not contain %q", err, tt.wantMsg)
			}
			if got != tt.want {
				t.Errorf("Apply = %v, want %v", got, tt.want)
			}
			if c := readFile(t, seen); c != "new\n" {
				t.Errorf("reload_cmd saw dest holding %q, want the new content", c)
			}
			if tt.wantDest == nil {
				if exists(t, dest) {
					t.Error("dest exists after rollback")
				}
			} else {
				if c := readFile(t, dest); c != *tt.wantDest {
					t.Errorf("dest holds %q, want %q", c, *tt.wantDest)
				}
				wantMode := fs.FileMode(0o644)
				if tt.want == Unchanged {
					wantMode = 0o600
				}
				if m := stat(t, dest).Mode().Perm(); m != wantMode {
					t.Errorf("dest mode %v, want %v", m, wantMode)
				}
			}
			noStageFiles(t, e.out)
		})
	}
}

func TestApplyOwner(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("changing a file's owner needs root")
	}
	nobody, nobodyErr := user.Lookup("nobody")
	var group *user.Group
	var groupErr error
	for _, g := range []string{"nogroup", "nobody"} {
		if group, groupErr = user.LookupGroup(g); groupErr == nil {
			break
		}
	}
	tests := []struct {
		name             string
		fields           []string
		old              bool // dest exists, owned by 4242:4343, same content
		skip             error
		want             Result
		wantUID, wantGID func() string
	}{
		{name: "numeric uid and gid", fields: []string{"uid = 65534", "gid = 65533"}, want: Updated,
			wantUID: lit("65534"), wantGID: lit("65533")},
		{name: "numeric owner and group", fields: []string{`owner = "65534"`, `group = "65533"`}, want: Updated,
			wantUID: lit("65534"), wantGID: lit("65533")},
		{name: "owner name", fields: []string{`owner = "nobody"`}, skip: nobodyErr, want: Updated,
			wantUID: func() string { return nobody.Uid }, wantGID: lit("0")},
		{name: "group name", fields: []string{`group = "nogroup"`}, skip: groupErr, want: Updated,
			wantUID: lit("0"), wantGID: func() string { return group.Gid }},
		{name: "unset keeps dest's owner", old: true, fields: []string{`mode = "0600"`}, want: Updated,
			wantUID: lit("4242"), wantGID: lit("4343")},
		{name: "owner change alone", old: true, fields: []string{"uid = 4242", "gid = 0"}, want: Updated,
			wantUID: lit("4242"), wantGID: lit("0")},
		{name: "same owner", old: true, fields: []string{"uid = 4242", "gid = 4343"}, want: Unchanged,
			wantUID: lit("4242"), wantGID: lit("4343")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.skip != nil {
				t.Skip(tt.skip)
			}
			e := newEnv(t)
			dest := e.dest("app.conf")
			if tt.old {
				writeFile(t, dest, "x\n", 0o644)
				if err := os.Chown(dest, 4242, 4343); err != nil {
					t.Fatal(err)
				}
			}
			if tt.name == "group name" {
				tt.fields = []string{"group = " + q(group.Name)}
			}
			r := e.resource("app", "x\n", append(tt.fields, "dest = "+q(dest))...)
			got, err := apply(t, r, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("Apply = %v, want %v", got, tt.want)
			}
			uid, gid := fileOwner(stat(t, dest))
			if strUID, strGID := strconv.Itoa(uid), strconv.Itoa(gid); strUID != tt.wantUID() || strGID != tt.wantGID() {
				t.Errorf("dest owned by %s:%s, want %s:%s", strUID, strGID, tt.wantUID(), tt.wantGID())
			}
			noStageFiles(t, e.out)
		})
	}
}

func lit(s string) func() string { return func() string { return s } }

func TestApplyRollbackRestoresOwner(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("changing a file's owner needs root")
	}
	e := newEnv(t)
	dest := e.dest("app.conf")
	writeFile(t, dest, "old\n", 0o640)
	if err := os.Chown(dest, 4242, 4343); err != nil {
		t.Fatal(err)
	}
	r := e.resource("app", "new\n", "dest = "+q(dest), "uid = 0", "gid = 0", `mode = "0644"`, `reload_cmd = "exit 1"`)
	if _, err := apply(t, r, nil); err == nil {
		t.Fatal("no error from a failing reload_cmd")
	}
	fi := stat(t, dest)
	if uid, gid := fileOwner(fi); uid != 4242 || gid != 4343 || fi.Mode().Perm() != 0o640 {
		t.Errorf("restored dest is %d:%d %v, want 4242:4343 -rw-r-----", uid, gid, fi.Mode())
	}
	if c := readFile(t, dest); c != "old\n" {
		t.Errorf("restored dest holds %q", c)
	}
}

func TestApplyNoop(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		old      *string
		want     Result
		wantDiff []string // substrings; nil: no output at all
	}{
		{name: "changed", old: ptr("a\nold\nc\n"), want: WouldUpdate,
			wantDiff: []string{"# DEST: mode 0644 -> 0600\n", "--- DEST\n+++ DEST\n", "-old\n+new\n", " a\n"}},
		{name: "new file", want: WouldUpdate,
			wantDiff: []string{"# DEST: new file, mode 0600\n", "--- /dev/null\n+++ DEST\n", "+a\n+new\n+c\n"}},
		{name: "unchanged", old: ptr("a\nnew\nc\n"), want: Unchanged},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			var diff bytes.Buffer
			e.opts.Noop, e.opts.Diff = true, &diff
			dest := e.dest("app.conf")
			oldTime := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
			if tt.old != nil {
				mode := fs.FileMode(0o644)
				if tt.want == Unchanged {
					mode = 0o600
				}
				writeFile(t, dest, *tt.old, mode)
				if err := os.Chtimes(dest, oldTime, oldTime); err != nil {
					t.Fatal(err)
				}
			}
			marker := filepath.Join(e.dir, "ran")
			r := e.resource("app", "a\n{{getv \"/v\"}}\nc\n", "dest = "+q(dest), `mode = "0600"`,
				"check_cmd = "+q("touch "+marker), "reload_cmd = "+q("touch "+marker))
			got, err := apply(t, r, map[string]string{"/v": "new"})
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("Apply = %v, want %v", got, tt.want)
			}
			if tt.old == nil {
				if exists(t, dest) {
					t.Error("noop created dest")
				}
			} else {
				fi := stat(t, dest)
				if c := readFile(t, dest); c != *tt.old || !fi.ModTime().Equal(oldTime) {
					t.Errorf("noop changed dest: %q, %v", c, fi.ModTime())
				}
			}
			if exists(t, marker) {
				t.Error("noop ran a hook")
			}
			noStageFiles(t, e.out)
			if tt.wantDiff == nil && diff.Len() > 0 {
				t.Errorf("unexpected diff:\n%s", diff.String())
			}
			for _, s := range tt.wantDiff {
				s = strings.ReplaceAll(s, "DEST", dest)
				if !strings.Contains(diff.String(), s) {
					t.Errorf("diff does not contain %q:\n%s", s, diff.String())
				}
			}
		})
	}
}

func TestApplySyncOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.opts.SyncOnly = true
	dest := e.dest("app.conf")
	marker := filepath.Join(e.dir, "ran")
	r := e.resource("app", "new\n", "dest = "+q(dest),
		"check_cmd = "+q("touch "+marker+"; exit 1"), "reload_cmd = "+q("touch "+marker+"; exit 1"))
	got, err := apply(t, r, nil)
	if err != nil || got != Updated {
		t.Fatalf("Apply = %v, %v; want Updated", got, err)
	}
	if c := readFile(t, dest); c != "new\n" {
		t.Errorf("dest holds %q", c)
	}
	if exists(t, marker) {
		t.Error("a hook ran with SyncOnly")
	}
}

func TestApplyKeepStageFile(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.opts.KeepStageFile = true
	dest := e.dest("app.conf")
	writeFile(t, dest, "old\n", 0o644)
	r := e.resource("app", "new\n", "dest = "+q(dest), `mode = "0600"`, `check_cmd = "exit 1"`)
	if _, err := apply(t, r, nil); err == nil {
		t.Fatal("no error from a failing check_cmd")
	}
	stages := stageFiles(t, e.out)
	if len(stages) != 1 {
		t.Fatalf("stage files %q, want one", stages)
	}
	if c := readFile(t, stages[0]); c != "new\n" {
		t.Errorf("stage file holds %q", c)
	}
	if m := stat(t, stages[0]).Mode().Perm(); m != 0o600 {
		t.Errorf("stage file mode %v", m)
	}
	if c := readFile(t, dest); c != "old\n" {
		t.Errorf("dest changed to %q", c)
	}
}

func TestApplyHookTimeout(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		fields  []string
		opts    func(*Options)
		cancel  bool // cancel the caller's context instead
		hook    string
		wantErr error
	}{
		{name: "resource timeout", fields: []string{`timeout = "200ms"`, `check_cmd = "sleep 30"`},
			hook: "check_cmd", wantErr: context.DeadlineExceeded},
		{name: "options timeout", fields: []string{`reload_cmd = "sleep 30; echo done"`},
			opts: func(o *Options) { o.HookTimeout = 200 * time.Millisecond }, hook: "reload_cmd", wantErr: context.DeadlineExceeded},
		{name: "background child", fields: []string{`timeout = "200ms"`, `check_cmd = "sleep 30 & sleep 30; echo"`},
			hook: "check_cmd", wantErr: context.DeadlineExceeded},
		{name: "caller cancels", fields: []string{`check_cmd = "sleep 30"`}, cancel: true,
			hook: "check_cmd", wantErr: context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			if tt.opts != nil {
				tt.opts(&e.opts)
			}
			dest := e.dest("app.conf")
			writeFile(t, dest, "old\n", 0o644)
			r := e.resource("app", "new\n", append(tt.fields, "dest = "+q(dest))...)
			ctx := t.Context()
			if tt.cancel {
				var cancel context.CancelFunc
				ctx, cancel = context.WithCancel(ctx)
				timer := time.AfterFunc(200*time.Millisecond, cancel)
				defer timer.Stop()
			}
			start := time.Now()
			_, err := r.Apply(ctx, funcs.NewStore(nil))
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Apply took %v", d)
			}
			var he *HookError
			if !errors.As(err, &he) || he.Hook != tt.hook || he.ExitCode != -1 {
				t.Fatalf("got %v, want a %s *HookError with exit code -1", err, tt.hook)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v does not wrap %v", err, tt.wantErr)
			}
			if c := readFile(t, dest); c != "old\n" {
				t.Errorf("dest holds %q, want the old content", c)
			}
		})
	}
}

func TestResultString(t *testing.T) {
	t.Parallel()
	for r, want := range map[Result]string{Unchanged: "unchanged", Updated: "updated", WouldUpdate: "would update", 7: "Result(7)"} {
		if got := r.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(r), got, want)
		}
	}
}
