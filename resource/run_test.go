package resource

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/backends/backendtest"
	"github.com/kvconf/kvconf/funcs"
)

func TestOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.opts.Prefix = "/prod"
	a := e.resource("a", `a={{getv "/db/host"}}`, "dest = "+q(e.dest("a")), `prefix = "/app"`, `keys = ["/db"]`)
	b := e.resource("b", `b={{getv "/missing"}}`, "dest = "+q(e.dest("b")), `keys = ["/b"]`)
	c := e.resource("c", `c={{getv "/web/port"}}`, "dest = "+q(e.dest("c")), `prefix = "/app"`, `keys = ["/web", "/db/host"]`)
	_, be := newBackend(map[string]string{
		"/prod/app/db/host":  "db1",
		"/prod/app/web/port": "80",
		"/prod/other":        "x",
	})
	err := Once(t.Context(), be, []*Resource{a, b, c})
	if !errors.Is(err, funcs.ErrNotExist) || !strings.Contains(err.Error(), "resource conf.d/b.toml: ") {
		t.Fatalf("got %v, want b's missing-key error", err)
	}
	if strings.Contains(err.Error(), "conf.d/a.toml") || strings.Contains(err.Error(), "conf.d/c.toml") {
		t.Errorf("error %q blames a good resource", err)
	}
	for dest, want := range map[string]string{"a": "a=db1", "c": "c=80"} {
		if got := readFile(t, e.dest(dest)); got != want {
			t.Errorf("%s holds %q, want %q", dest, got, want)
		}
	}
	if exists(t, e.dest("b")) {
		t.Error("b was written")
	}
	if be.snaps != 1 {
		t.Errorf("%d snapshots, want 1", be.snaps)
	}
	if want := []string{"/prod/app/db", "/prod/app/web", "/prod/b"}; !slices.Equal(be.prefixes[0], want) {
		t.Errorf("snapshot of %q, want %q", be.prefixes[0], want)
	}
}

func TestOnceSnapshotFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.resource("a", "a", "dest = "+q(e.dest("a")))
	f, be := newBackend(nil)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := Once(t.Context(), be, []*Resource{r}); !errors.Is(err, backends.ErrClosed) {
		t.Fatalf("got %v, want backends.ErrClosed", err)
	}
	if exists(t, e.dest("a")) {
		t.Error("dest was written without a snapshot")
	}
}

func TestOnceNoResources(t *testing.T) {
	t.Parallel()
	_, be := newBackend(nil)
	if err := Once(t.Context(), be, nil); err != nil {
		t.Fatal(err)
	}
	if be.snaps != 0 {
		t.Errorf("%d snapshots for no resources", be.snaps)
	}
}

// syncBuffer is a bytes.Buffer safe for a logger used from several
// goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// listing is a fake backend that must be read with List: it counts the
// lists, and its Snapshot fails.
type listing struct {
	*backendtest.Fake
	lists atomic.Int32
}

func (l *listing) List(ctx context.Context, prefixes []string) (backends.List, error) {
	l.lists.Add(1)
	return l.Fake.List(ctx, prefixes)
}

func (l *listing) Snapshot(context.Context, []string) (backends.Snapshot, error) {
	return backends.Snapshot{}, errors.New("Snapshot called on a backends.Lister")
}

func TestOnceList(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.resource("a", `{{range ls "/db"}}{{.}}={{getv (printf "/db/%s" .)}} {{end}}`, "dest = "+q(e.dest("a")), `prefix = "/app"`, `keys = ["/db"]`)
	b := e.resource("b", `b={{getv "/x"}}`, "dest = "+q(e.dest("b")))
	l := &listing{Fake: backendtest.NewFake()}
	for k, v := range map[string]string{"/app/db/b": "2", "/app/db/a": "1", "/app/dbx": "no", "/x": "y", "/z": "z"} {
		l.Set(k, v)
	}
	if err := Once(t.Context(), l, []*Resource{a, b}); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, e.dest("a")); got != "a=1 b=2 " {
		t.Errorf("a holds %q", got)
	}
	if got := readFile(t, e.dest("b")); got != "b=y" {
		t.Errorf("b holds %q", got)
	}
	if n := l.lists.Load(); n != 1 {
		t.Errorf("%d lists, want 1", n)
	}
}

// TestOnceCommitsTogether checks the batched commit of Once: every
// reload_cmd runs once every dest, in two directories, holds its new
// content, while a failed check_cmd, a failed render and a failed
// reload_cmd fail their own resource only, as Apply does.
func TestOnceCommitsTogether(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sub := filepath.Join(e.out, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	dests := []string{e.dest("a"), e.dest("b"), filepath.Join(sub, "c"), filepath.Join(sub, "d")}
	var rs []*Resource
	for i, name := range []string{"a", "b", "c", "d"} {
		seen := filepath.Join(e.dir, "seen-"+name)
		reload := "cat " + strings.Join(dests, " ") + " > " + seen
		rs = append(rs, e.resource(name, name+`={{getv "/v"}};`, "dest = "+q(dests[i]), "reload_cmd = "+q(reload)))
	}
	for _, name := range []string{"check", "render", "reload"} {
		writeFile(t, e.dest(name), "old", 0o644)
	}
	rs = append(rs,
		e.resource("check", `new`, "dest = "+q(e.dest("check")), `check_cmd = "exit 1"`),
		e.resource("render", `{{getv "/missing"}}`, "dest = "+q(e.dest("render"))),
		e.resource("reload", `new`, "dest = "+q(e.dest("reload")), `reload_cmd = "exit 2"`),
		e.resource("fresh", `new`, "dest = "+q(e.dest("fresh")), `reload_cmd = "exit 2"`),
	)
	_, be := newBackend(map[string]string{"/v": "1"})
	err := Once(t.Context(), be, rs)

	var he *HookError
	if !errors.As(err, &he) || !errors.Is(err, funcs.ErrNotExist) {
		t.Errorf("Once = %v, want hook and missing-key errors", err)
	}
	for _, name := range []string{"check", "render", "reload", "fresh"} {
		if !strings.Contains(err.Error(), "resource conf.d/"+name+".toml: ") {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
	for _, name := range []string{"a", "b", "c", "d"} {
		if strings.Contains(err.Error(), "conf.d/"+name+".toml") {
			t.Errorf("error %q blames %s", err, name)
		}
		if got := readFile(t, filepath.Join(e.dir, "seen-"+name)); got != "a=1;b=1;c=1;d=1;" {
			t.Errorf("reload_cmd of %s saw %q, want every new dest", name, got)
		}
	}
	for _, name := range []string{"check", "render", "reload"} {
		if got := readFile(t, e.dest(name)); got != "old" {
			t.Errorf("%s holds %q, want its old content", name, got)
		}
	}
	if exists(t, e.dest("fresh")) {
		t.Error("fresh exists after its reload_cmd failed")
	}
	noStageFiles(t, e.out)
	noStageFiles(t, sub)
}

// TestOnceReportsEveryFailure applies five resources of which three fail
// at different steps: each failure is its own *Error, with the resource,
// its dest, the step and the hook's output.
func TestOnceReportsEveryFailure(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var rs []*Resource
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		fields := []string{"dest = " + q(e.dest(name))}
		tmpl := name + "\n"
		switch name {
		case "b":
			fields = append(fields, `check_cmd = "echo b is bad >&2; exit 1"`)
		case "c":
			tmpl = `{{getv "/missing"}}`
		case "e":
			fields = append(fields, `reload_cmd = "echo e did not reload; exit 2"`)
		}
		rs = append(rs, e.resource(name, tmpl, fields...))
	}
	_, be := newBackend(nil)
	err := Once(t.Context(), be, rs)
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("Once = %v, want joined errors", err)
	}
	type fail struct {
		step   Step
		output string
	}
	got := map[string]fail{}
	for _, part := range j.Unwrap() {
		var re *Error
		if !errors.As(part, &re) {
			t.Fatalf("error %v is no *Error", part)
		}
		f := fail{step: re.Step}
		var he *HookError
		if errors.As(part, &he) {
			f.output = string(he.Output)
		}
		got[re.Resource] = f
		name := strings.TrimSuffix(strings.TrimPrefix(re.Resource, "conf.d/"), ".toml")
		if re.Dest != e.dest(name) {
			t.Errorf("%s: dest %s, want %s", re.Resource, re.Dest, e.dest(name))
		}
	}
	want := map[string]fail{
		"conf.d/b.toml": {StepCheck, "b is bad\n"},
		"conf.d/c.toml": {StepRender, ""},
		"conf.d/e.toml": {StepReload, "e did not reload\n"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("failures %v, want %v", got, want)
	}
}

// TestOnceFetchError checks that a failed snapshot names the resources it
// left unrendered.
func TestOnceFetchError(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.resource("a", "a", "dest = "+q(e.dest("a")))
	b := e.resource("b", "b", "dest = "+q(e.dest("b")))
	f, be := newBackend(nil)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	err := Once(t.Context(), be, []*Resource{a, b})
	var fe *FetchError
	if !errors.As(err, &fe) || !slices.Equal(fe.Resources, []string{"conf.d/a.toml", "conf.d/b.toml"}) || !errors.Is(err, backends.ErrClosed) {
		t.Fatalf("Once = %v, want a *FetchError for a and b", err)
	}
}
