package resource

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	texttemplate "text/template"
	"time"

	"github.com/kvconf/kvconf/funcs"
)

// TestHookGrace stops an Apply while its check_cmd runs: the hook gets
// SIGTERM first (a trap records it) and is killed only after the grace
// period when it ignores SIGTERM. Either way dest is untouched and no
// stage file stays.
func TestHookGrace(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		check    string
		wantTerm bool // the hook's TERM trap ran
	}{
		{name: "hook stops on SIGTERM", check: `trap 'echo term > ` + "{{.dest}}" + `.term; exit 1' TERM; touch {{.dest}}.started; sleep 30 & wait`, wantTerm: true},
		{name: "hook ignores SIGTERM", check: `trap '' TERM; touch {{.dest}}.started; sleep 30`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.opts.HookGrace = 300 * time.Millisecond
			dest := e.dest("app.conf")
			writeFile(t, dest, "old\n", 0o644)
			r := e.resource("app", "new\n", "dest = "+q(dest), "check_cmd = "+q(tt.check))

			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() {
				_, err := r.Apply(ctx, funcs.NewStore(nil))
				done <- err
			}()
			deadline := time.Now().Add(20 * time.Second)
			for !exists(t, dest+".started") {
				if time.Now().After(deadline) {
					t.Fatal("check_cmd never started")
				}
				time.Sleep(10 * time.Millisecond)
			}
			cancel()
			var err error
			select {
			case err = <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("Apply did not return after its context was cancelled")
			}
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Apply = %v, want context.Canceled", err)
			}
			if _, serr := os.Stat(dest + ".term"); (serr == nil) != tt.wantTerm {
				t.Errorf("TERM trap ran = %v, want %v", serr == nil, tt.wantTerm)
			}
			if c := readFile(t, dest); c != "old\n" {
				t.Errorf("dest = %q, want it untouched", c)
			}
			noStageFiles(t, filepath.Dir(dest))
		})
	}
}

// nastyPaths are paths a dest or a link target may have, each of which
// breaks an unquoted or naively quoted command, or runs one.
var nastyPaths = []string{
	"/etc/app/plain.conf",
	"/srv/my app/app.conf",
	"/srv/it's/app.conf",
	`/srv/say "hi"/app.conf`,
	"/srv/x;id>PWNED;#/f",
	"/srv/$(id)/`id`/${HOME}/f",
	`/srv/back\slash\\/f`,
	"/srv/glob*?[a]/~f",
	"/srv/new\nline/f",
	"/srv/'\"'\"/f",
	"-rf /",
}

// TestQuotePathsShell expands commands that put {{.src}} in every shell
// context a confd command may use (bare, in '...', in "...", in $(...),
// in `...`, glued to other text) with paths holding every special
// character, runs each with /bin/sh, and checks that the command saw the
// path, whole and literal, and ran nothing else.
func TestQuotePathsShell(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cmd  string // prints one argument to $OUT
		want func(p string) string
	}{
		{"bare", `printf '%s' {{.src}} > "$OUT"`, same},
		{"single quotes", `printf '%s' '{{.src}}' > "$OUT"`, same},
		{"double quotes", `printf '%s' "{{.src}}" > "$OUT"`, same},
		{"inside a word in double quotes", `printf '%s' "file={{.src}}." > "$OUT"`, func(p string) string { return "file=" + p + "." }},
		{"glued to text", `printf '%s' x{{.src}}.bak > "$OUT"`, func(p string) string { return "x" + p + ".bak" }},
		{"escaped by the user", `printf '%s' \{{.src}} > "$OUT"`, same},
		{"command substitution", `printf '%s' "$(printf '%s|' {{.src}})" > "$OUT"`, func(p string) string { return p + "|" }},
		{"nested parentheses", `printf '%s' "$( (printf '%s|' "{{.src}}") )" > "$OUT"`, func(p string) string { return p + "|" }},
		{"backticks", "printf '%s' \"`printf '%s|' {{.src}}`\" > \"$OUT\"", func(p string) string { return p + "|" }},
		{"backticks, single quotes", "x=`printf '%s|' '{{.src}}'`; printf '%s' \"$x\" > \"$OUT\"", func(p string) string { return p + "|" }},
		{"after a comment", "# {{.src}}\nprintf '%s' {{.src}} > \"$OUT\"", same},
		{"src and dest", `printf '%s' {{.src}}"<>"{{.dest}} > "$OUT"`, func(p string) string { return p + "<>" + p }},
	}
	for _, tt := range tests {
		tmpl, err := parseHook("check_cmd", tt.cmd)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		for _, p := range nastyPaths {
			t.Run(tt.name+"/"+p, func(t *testing.T) {
				t.Parallel()
				cmd, err := hookCommand(tmpl, p, p)
				if err != nil {
					t.Fatal(err)
				}
				dir := t.TempDir()
				out := filepath.Join(dir, "out")
				sh := exec.Command("/bin/sh", "-c", cmd)
				sh.Dir = dir // where "id>PWNED" would write
				sh.Env = append(os.Environ(), "OUT="+out)
				if b, err := sh.CombinedOutput(); err != nil {
					t.Fatalf("sh -c %q: %v\n%s", cmd, err, b)
				}
				if got, want := readFile(t, out), tt.want(p); got != want {
					t.Errorf("sh -c %q\nsaw  %q\nwant %q", cmd, got, want)
				}
				if exists(t, filepath.Join(dir, "PWNED")) {
					t.Errorf("sh -c %q ran id", cmd)
				}
			})
		}
	}
}

func same(p string) string { return p }

// TestHookPaths applies resources whose dest, and so stage file, is in
// directories with a space, quotes, or a shell command in their names
// (@M@ stands for the path of a marker file that the command would make):
// check_cmd and reload_cmd each see the right path, a command in a name
// does not run, and dest is written.
func TestHookPaths(t *testing.T) {
	t.Parallel()
	for _, name := range []string{
		"my app", `it's "quoted"`, "x;id>@M@;#", "$(touch @M@)", "`touch @M@`", `a\b`, "-n",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			marker := filepath.Join(e.dir, "PWNED")
			dir := filepath.Join(e.out, strings.ReplaceAll(name, "@M@", marker))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			dest := filepath.Join(dir, "app.conf")
			log := shq(filepath.Join(e.dir, "hooks.log"))
			r := e.resource("app", "new\n", "dest = "+q(dest),
				// The check reads the stage file through {{.src}}: a
				// wrong path fails it.
				"check_cmd = "+q(`grep -q new {{.src}} && printf 'check %s\n%s\n' {{.src}} "{{.dest}}" >> `+log),
				"reload_cmd = "+q(`printf 'reload %s\n%s\n' '{{.src}}' {{.dest}} >> `+log))
			if res, err := apply(t, r, nil); err != nil || res != Updated {
				t.Fatalf("Apply = %v, %v; want Updated", res, err)
			}
			if c := readFile(t, dest); c != "new\n" {
				t.Errorf("dest holds %q", c)
			}
			lines := strings.Split(strings.TrimSuffix(readFile(t, filepath.Join(e.dir, "hooks.log")), "\n"), "\n")
			if len(lines) != 4 {
				t.Fatalf("hook log:\n%s", strings.Join(lines, "\n"))
			}
			stage := strings.TrimPrefix(lines[0], "check ")
			if filepath.Dir(stage) != dir || !strings.HasPrefix(filepath.Base(stage), ".app.conf.") {
				t.Errorf("check_cmd saw src %q, want a stage file in %q", stage, dir)
			}
			for i, want := range []string{"", dest, "reload " + dest, dest} {
				if i > 0 && lines[i] != want {
					t.Errorf("hook log line %d = %q, want %q", i+1, lines[i], want)
				}
			}
			if exists(t, marker) {
				t.Error("a command in dest's directory name ran")
			}
			noStageFiles(t, dir)
		})
	}
}

// shq quotes s for /bin/sh.
func shq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// TestHookOutputTail checks that a failing hook's error keeps the end of
// a long output, where the cause is, and counts all of it.
func TestHookOutputTail(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// 10,000 lines of 7 bytes, then the cause.
	check := `yes abcdef | head -n 10000; echo "the cause" >&2; exit 1`
	r := e.resource("app", "x", "dest = "+q(e.dest("app.conf")), "check_cmd = "+q(check))
	_, err := apply(t, r, nil)
	var he *HookError
	if !errors.As(err, &he) {
		t.Fatalf("Apply = %v, want a *HookError", err)
	}
	if len(he.Output) != maxHookOutput || he.OutputSize != 70010 {
		t.Errorf("output: %d bytes kept of %d, want %d of 70010", len(he.Output), he.OutputSize, maxHookOutput)
	}
	if !strings.HasSuffix(string(he.Output), "abcdef\nthe cause\n") {
		t.Errorf("output does not end with the cause: ...%q", he.Output[len(he.Output)-40:])
	}
	if he.Withheld {
		t.Error("output withheld from a resource that is not sensitive")
	}
}

// TestTailBuffer writes pieces of every size and checks that the buffer
// holds the last max bytes.
func TestTailBuffer(t *testing.T) {
	t.Parallel()
	var all []byte
	b := &tailBuffer{max: 64}
	for i := range 300 {
		p := bytes.Repeat([]byte{byte('a' + i%26)}, i%130)
		all = append(all, p...)
		if n, err := b.Write(p); n != len(p) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
		want := all[max(0, len(all)-64):]
		if !bytes.Equal(b.bytes(), want) || b.total != int64(len(all)) {
			t.Fatalf("after %d writes: %q (total %d), want %q (total %d)", i+1, b.bytes(), b.total, want, len(all))
		}
	}
}

// FuzzQuotePaths runs commands with {{.src}} in several shell contexts,
// with any path, through /bin/sh: the command must see the path whole and
// literal. Seeds: nastyPaths.
func FuzzQuotePaths(f *testing.F) {
	for _, p := range nastyPaths {
		f.Add(p)
	}
	cmds := []string{
		`printf '%s' {{.src}} > "$OUT"`,
		`printf '%s' '{{.src}}' > "$OUT"`,
		`printf '%s' "{{.src}}" > "$OUT"`,
		"x=`printf '%s|' \"{{.src}}\"`; printf '%s' \"${x%|}\" > \"$OUT\"",
		`x="$(printf '%s|' '{{.src}}')"; printf '%s' "${x%|}" > "$OUT"`,
	}
	var tmpls []*texttemplate.Template
	for _, c := range cmds {
		t, err := parseHook("check_cmd", c)
		if err != nil {
			f.Fatal(err)
		}
		tmpls = append(tmpls, t)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if strings.IndexByte(p, 0) >= 0 {
			t.Skip("no path holds a NUL byte")
		}
		dir := t.TempDir()
		out := filepath.Join(dir, "out")
		for _, tmpl := range tmpls {
			cmd, err := hookCommand(tmpl, p, p)
			if err != nil {
				t.Fatal(err)
			}
			sh := exec.Command("/bin/sh", "-c", cmd)
			sh.Dir = dir
			sh.Env = []string{"OUT=" + out, "PATH=" + os.Getenv("PATH")}
			if b, err := sh.CombinedOutput(); err != nil {
				t.Fatalf("sh -c %q: %v\n%s", cmd, err, b)
			}
			if got := readFile(t, out); got != p {
				t.Fatalf("sh -c %q\nsaw  %q\nwant %q", cmd, got, p)
			}
			ents, err := os.ReadDir(dir)
			if err != nil || len(ents) != 1 {
				t.Fatalf("sh -c %q made files: %v %v", cmd, ents, err)
			}
		}
	})
}

// attackPaths are paths that run "touch PWNED" when a quoter misjudges
// where {{.src}} stands: in a here-document, in $((...)), in bash's $'...'.
var attackPaths = append([]string{
	"/srv/$(touch PWNED)/f",
	"/srv/`touch PWNED`/f",
	`/srv/a\';touch PWNED;'/f`,
	"/srv/a)); touch PWNED; ((/f",
	"/srv/x\nEOF\ntouch PWNED\n/f",
}, nastyPaths...)

// TestQuotePathsMoreContexts puts {{.src}} where the quoter once did not
// look: here-documents (quoted delimiter or not, <<-, inside $(...)),
// arithmetic expansion, and bash's $'...' (bash is /bin/sh on some
// distributions). No path may run a command; where a path cannot be put
// literally (a newline in a here-document, anything but a plain path in
// $((...))), hookCommand must refuse it; else the command sees the path.
func TestQuotePathsMoreContexts(t *testing.T) {
	t.Parallel()
	bash, _ := exec.LookPath("bash")
	tests := []struct {
		name  string
		shell string
		cmd   string
		want  func(p string) string // nil: the command may fail, nothing may run
		fails func(p string) bool   // which paths hookCommand must refuse
	}{
		{"here-document", "/bin/sh", "cat <<EOF > \"$OUT\"\n{{.src}}\nEOF", nl, hasNL},
		{"here-document, quoted delimiter", "/bin/sh", "cat <<'EOF' > \"$OUT\"\nx {{.src}}\nEOF", func(p string) string { return "x " + p + "\n" }, hasNL},
		{"here-document, <<-", "/bin/sh", "cat <<-\"E O\" > \"$OUT\"\n\t{{.src}}\n\tE O", nl, hasNL},
		{"here-document in $(...)", "/bin/sh", "x=$(cat <<EOF\n{{.src}}\nEOF\n); printf '%s' \"$x\" > \"$OUT\"", same, hasNL},
		{"here-document in `...`", "/bin/sh", "x=`cat <<EOF\n{{.src}}\nEOF\n`; printf '%s' \"$x\" > \"$OUT\"", nil, func(string) bool { return true }},
		{"after a here-document", "/bin/sh", "cat <<EOF >/dev/null\n$HOME\nEOF\nprintf '%s' {{.src}} > \"$OUT\"", same, nil},
		{"after arithmetic", "/bin/sh", "printf '%s' $(( 1 + (2) )){{.src}} > \"$OUT\"", func(p string) string { return "3" + p }, nil},
		{"in arithmetic", "/bin/sh", "echo $(( {{.src}} )) > \"$OUT\"", nil, func(p string) bool { return !shellSafe(p) }},
		{"case in $(...)", "/bin/sh", "printf '%s' \"$(case x in (y) ;; x) printf '%s' {{.src}};; esac)\" > \"$OUT\"", same, nil},
		{"after case in $(...)", "/bin/sh", "x=\"$(case x in x) echo 1;; esac)\"; printf '%s' \"$x {{.src}}\" > \"$OUT\"", func(p string) string { return "1 " + p }, nil},
		{"bash $'...'", bash, "printf '%s' $'<{{.src}}>' > \"$OUT\"", func(p string) string { return "<" + p + ">" }, nil},
	}
	for _, tt := range tests {
		if tt.shell == "" {
			t.Logf("%s: no bash here", tt.name)
			continue
		}
		tmpl, err := parseHook("check_cmd", tt.cmd)
		if err != nil && tt.fails != nil && tt.fails("/plain") {
			continue // refused at load, whatever the path
		}
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		for _, p := range attackPaths {
			t.Run(tt.name+"/"+p, func(t *testing.T) {
				t.Parallel()
				cmd, err := hookCommand(tmpl, p, p)
				if tt.fails != nil && tt.fails(p) {
					if err == nil {
						t.Fatalf("path %q accepted: %q", p, cmd)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				dir := t.TempDir()
				out := filepath.Join(dir, "out")
				sh := exec.Command(tt.shell, "-c", cmd)
				sh.Dir = dir
				sh.Env = append(os.Environ(), "OUT="+out)
				b, err := sh.CombinedOutput()
				if exists(t, filepath.Join(dir, "PWNED")) {
					t.Fatalf("%s -c %q ran touch", tt.shell, cmd)
				}
				if tt.want == nil {
					return
				}
				if err != nil {
					t.Fatalf("%s -c %q: %v\n%s", tt.shell, cmd, err, b)
				}
				if got, want := readFile(t, out), tt.want(p); got != want {
					t.Errorf("%s -c %q\nsaw  %q\nwant %q", tt.shell, cmd, got, want)
				}
			})
		}
	}
}

func nl(p string) string  { return p + "\n" }
func hasNL(p string) bool { return strings.Contains(p, "\n") }
