package resource

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	texttemplate "text/template"

	"go.uber.org/goleak"

	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/backends/backendtest"
	"github.com/kvconf/kvconf/funcs"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testSet is a tiny function set for these tests, used until the confd and
// sprig sets are registered (see testSets).
const testSet = "resourcetest"

func init() {
	funcs.Register(testSet, "test-only functions of package resource", func(_ context.Context, s *funcs.Store) texttemplate.FuncMap {
		return texttemplate.FuncMap{
			"getv": func(k string, def ...string) (string, error) {
				v, err := s.Get(k)
				if err != nil && len(def) > 0 {
					return def[0], nil
				}
				return v, err
			},
			"ls": s.List,
		}
	})
}

// testSets returns nil (the default sets) when they are all registered,
// else the test-only set. Templates in these tests use only getv and ls,
// which mean the same in both.
func testSets() []string {
	names := funcs.Names()
	for _, d := range funcs.DefaultSets() {
		if !slices.Contains(names, d) {
			return []string{testSet}
		}
	}
	return nil
}

// env is a ConfDir with conf.d and templates, plus a directory for dests.
type env struct {
	t    *testing.T
	dir  string // ConfDir
	out  string // where dests go
	opts Options
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, dir: dir, out: filepath.Join(dir, "out")}
	for _, d := range []string{"conf.d", "templates", "out"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	e.opts = Options{ConfDir: dir, Sets: testSets()}
	return e
}

// write writes a file under ConfDir.
func (e *env) write(rel, content string) string {
	e.t.Helper()
	p := filepath.Join(e.dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		e.t.Fatal(err)
	}
	return p
}

// dest returns the path of a dest file named name.
func (e *env) dest(name string) string { return filepath.Join(e.out, name) }

// resource writes conf.d/name.toml with a template table made of fields
// (TOML lines) and the template src with content tmpl, then loads it.
func (e *env) resource(name, tmpl string, fields ...string) *Resource {
	e.t.Helper()
	e.write("templates/"+name+".tmpl", tmpl)
	toml := "[template]\nsrc = " + q(name+".tmpl") + "\n" + strings.Join(fields, "\n") + "\n"
	r, err := Load(e.write("conf.d/"+name+".toml", toml), e.opts)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// q quotes s as a TOML basic string.
func q(s string) string { return strconv.Quote(s) }

// counting wraps a backend (a [backendtest.Fake] in these tests) and counts
// its snapshots.
type counting struct {
	backends.Backend
	mu       sync.Mutex
	snaps    int
	prefixes [][]string
	// onSnapshot, if set, runs after snapshot n (from 1) was taken.
	onSnapshot func(n int)
}

// newBackend returns a fake holding kvs, and the counting wrapper to pass
// to Once and Run.
func newBackend(kvs map[string]string) (*backendtest.Fake, *counting) {
	f := backendtest.NewFake()
	for k, v := range kvs {
		f.Set(k, v)
	}
	return f, &counting{Backend: f}
}

func (c *counting) Snapshot(ctx context.Context, prefixes []string) (backends.Snapshot, error) {
	snap, err := c.Backend.Snapshot(ctx, prefixes)
	c.mu.Lock()
	c.snaps++
	n := c.snaps
	c.prefixes = append(c.prefixes, slices.Clone(prefixes))
	hook := c.onSnapshot
	c.mu.Unlock()
	if hook != nil {
		hook(n)
	}
	return snap, err
}
