package resource

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/kvconf/kvconf/backends"
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
