package template

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/kvconf/kvconf/funcs"
	"github.com/kvconf/kvconf/template/internal/fastexec"
)

// executor returns which executor called it, read from its caller's
// stack: "fastexec" or "text/template". It is a function of the fast
// path tests' set.
func executor() string {
	pcs := make([]uintptr, 32)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(2, pcs)])
	for {
		f, more := frames.Next()
		switch {
		case strings.Contains(f.Function, "/template/internal/fastexec."):
			return "fastexec"
		case strings.HasPrefix(f.Function, "text/template."):
			return "text/template"
		}
		if !more {
			return "unknown"
		}
	}
}

// TestFastPathSwitch checks the operator's off switch: with
// KVCONF_FASTPATH=off (or Options.Plain) every template, and every
// fragment it includes, runs on text/template; unset or "on" leaves the
// fast path on; any other value fails Parse, naming the variable.
func TestFastPathSwitch(t *testing.T) { //nolint:paralleltest // sets the environment
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f.tmpl"), []byte(`{{executor}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	s := funcs.NewStore(nil)
	src := []byte(`{{executor}} {{include "f.tmpl"}}`)
	tests := []struct {
		name  string
		env   string // "-" for unset
		plain bool   // Options.Plain
		want  string
	}{
		{"unset", "-", false, "fastexec fastexec"},
		{"empty", "", false, "fastexec fastexec"},
		{"on", "on", false, "fastexec fastexec"},
		{"off", "off", false, "text/template text/template"},
		{"OFF", "OFF", false, "text/template text/template"},
		{"option", "-", true, "text/template text/template"},
		{"option beats on", "on", true, "text/template text/template"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(FastPathEnv, tt.env)
			if tt.env == "-" {
				os.Unsetenv(FastPathEnv) //nolint:errcheck // t.Setenv restores it
			}
			tm, err := Parse("s.tmpl", src, Options{Sets: fastTestSets(), IncludeDir: dir, Plain: tt.plain})
			if err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			if err := tm.Render(t.Context(), &out, s); err != nil {
				t.Fatal(err)
			}
			if out.String() != tt.want {
				t.Errorf("rendered by %q, want %q", out.String(), tt.want)
			}
		})
	}
	t.Run("bad value", func(t *testing.T) {
		t.Setenv(FastPathEnv, "of")
		_, err := Parse("s.tmpl", src, Options{Sets: fastTestSets(), IncludeDir: dir})
		if err == nil || !strings.Contains(err.Error(), "KVCONF_FASTPATH") || !strings.Contains(err.Error(), `"of"`) {
			t.Errorf("Parse with %s=of: %v, want an error naming the variable and the value", FastPathEnv, err)
		}
	})
}

// TestFastPathSwitchSameOutput renders every template of the repository
// with each of its stores with the fast path off and on: the outputs and
// errors are the same, and with it off nothing runs on the fast path.
func TestFastPathSwitchSameOutput(t *testing.T) { //nolint:paralleltest // sets the environment
	ctx := noNetContext(t.Context())
	var rendered, fastOn int
	for _, c := range corpus(t) {
		src, err := os.ReadFile(filepath.Join("..", filepath.FromSlash(c.file)))
		if err != nil {
			t.Fatal(err)
		}
		parse := func(env string) *Template {
			t.Setenv(FastPathEnv, env)
			tm, err := Parse(c.name, src, Options{IncludeDir: c.dir})
			if err != nil {
				return nil
			}
			return tm
		}
		off, on := parse("off"), parse("on")
		if (off == nil) != (on == nil) {
			t.Fatalf("%s: Parse gave a template with the fast path off %t, on %t", c.file, off != nil, on != nil)
		}
		if off == nil {
			continue // a case of a parse error, or a fragment of one
		}
		for _, st := range c.stores {
			plain, fast := renderIn(ctx, off, st.s, autoMode), renderIn(ctx, on, st.s, autoMode)
			if plain.String() != fast.String() {
				t.Errorf("%s with store %s: fast path off: %v; on: %v", c.file, st.name, plain, fast)
			}
			if o := renderIn(ctx, off, st.s, fastMode); !errors.Is(o.err, fastexec.ErrNotFast) {
				t.Errorf("%s with store %s: fastMode with the fast path off: %v, want ErrNotFast", c.file, st.name, o)
			}
			if renderIn(ctx, on, st.s, fastMode).err == nil {
				fastOn++
			}
			rendered++
		}
	}
	t.Logf("%d renders, the same with the fast path off and on; %d of them on the fast path when on", rendered, fastOn)
	if fastOn == 0 {
		t.Error("no render ran on the fast path with the switch on: the comparison proves nothing")
	}
}
