package resource

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// secret is a value rendered into dests; no log, error or diff of a
// sensitive resource may hold it.
const secret = "S3cr3t-pa55word"

// TestSensitiveHookOutput runs check_cmds and reload_cmds that fail after
// printing the rendered file (as `haproxy -c` quotes a bad line), on
// resources with and without sensitive = true: the output is kept for the
// one, withheld for the other, and never in the error's message or the
// log.
func TestSensitiveHookOutput(t *testing.T) {
	t.Parallel()
	for _, hook := range []string{"check_cmd", "reload_cmd"} {
		for _, sensitive := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/sensitive=%v", hook, sensitive), func(t *testing.T) {
				t.Parallel()
				e := newEnv(t)
				var log bytes.Buffer
				e.opts.Logger = slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))
				dest := e.dest("app.conf")
				r := e.resource("app", `password {{getv "/pw"}}`+"\n", "dest = "+q(dest),
					hook+" = "+q(`cat {{.dest}} {{.src}} 2>/dev/null; echo "bad line 1" >&2; exit 3`),
					fmt.Sprintf("sensitive = %v", sensitive))
				_, err := apply(t, r, map[string]string{"/pw": secret})
				var he *HookError
				if !errors.As(err, &he) || he.Hook != hook || he.ExitCode != 3 {
					t.Fatalf("Apply = %v, want a %s *HookError", err, hook)
				}
				if he.Withheld != sensitive {
					t.Errorf("Withheld = %v, want %v", he.Withheld, sensitive)
				}
				if sensitive && (len(he.Output) > 0 || he.OutputSize > 0) {
					t.Errorf("output kept: %q (%d bytes)", he.Output, he.OutputSize)
				}
				if !sensitive && !strings.Contains(string(he.Output), secret) {
					t.Errorf("output %q lacks the rendered line", he.Output)
				}
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error message holds the secret: %v", err)
				}
				if strings.Contains(log.String(), secret) {
					t.Errorf("log holds the secret:\n%s", log.String())
				}
			})
		}
	}
}

// TestSensitiveNoop checks that -noop shows that a sensitive resource
// would change, and how its mode changes, but not its content.
func TestSensitiveNoop(t *testing.T) {
	t.Parallel()
	for _, sensitive := range []bool{false, true} {
		for _, old := range []string{"", "password old\n"} {
			t.Run(fmt.Sprintf("sensitive=%v/exists=%v", sensitive, old != ""), func(t *testing.T) {
				t.Parallel()
				e := newEnv(t)
				var diff, log bytes.Buffer
				e.opts.Noop, e.opts.Diff = true, &diff
				e.opts.Logger = slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))
				dest := e.dest("app.conf")
				if old != "" {
					writeFile(t, dest, old, 0o644)
				}
				r := e.resource("app", `password {{getv "/pw"}}`+"\n", "dest = "+q(dest), `mode = "0600"`,
					fmt.Sprintf("sensitive = %v", sensitive))
				if res, err := apply(t, r, map[string]string{"/pw": secret}); err != nil || res != WouldUpdate {
					t.Fatalf("Apply = %v, %v; want WouldUpdate", res, err)
				}
				d := diff.String()
				if got := strings.Contains(d, secret) || strings.Contains(d, "password old"); got == sensitive {
					t.Errorf("diff shows content = %v, want %v:\n%s", got, !sensitive, d)
				}
				if got := strings.Contains(d, "diff withheld: resource is sensitive"); got != sensitive {
					t.Errorf("diff says withheld = %v, want %v:\n%s", got, sensitive, d)
				}
				wantMode := "# " + dest + ": mode 0644 -> 0600\n"
				if old == "" {
					wantMode = "# " + dest + ": new file, mode 0600\n"
				}
				if !strings.Contains(d, wantMode) {
					t.Errorf("diff lacks %q:\n%s", wantMode, d)
				}
				if strings.Contains(log.String(), secret) {
					t.Errorf("log holds the secret:\n%s", log.String())
				}
			})
		}
	}
}

// TestSensitiveModeOnly checks that a sensitive resource whose content is
// unchanged and whose mode changes gets the mode line only, and no claim
// that its content differs.
func TestSensitiveModeOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var diff bytes.Buffer
	e.opts.Noop, e.opts.Diff = true, &diff
	dest := e.dest("app.conf")
	writeFile(t, dest, "same\n", 0o644)
	r := e.resource("app", "same\n", "dest = "+q(dest), `mode = "0600"`, "sensitive = true")
	if res, err := apply(t, r, nil); err != nil || res != WouldUpdate {
		t.Fatalf("Apply = %v, %v; want WouldUpdate", res, err)
	}
	if want := "# " + dest + ": mode 0644 -> 0600\n"; diff.String() != want {
		t.Errorf("diff = %q, want %q", diff.String(), want)
	}
}
