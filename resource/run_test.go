package resource

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

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

func TestRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var logs syncBuffer
	e.opts.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	reloads := e.dest("reloads")
	good := e.resource("good", `pw={{getv "/pw"}}`+"\n", "dest = "+q(e.dest("good")), `keys = ["/pw"]`,
		"reload_cmd = "+q("cat {{.dest}} >> "+reloads))
	bad := e.resource("bad", `{{getv "/nope"}}`, "dest = "+q(e.dest("bad")), `keys = ["/pw"]`)
	f, be := newBackend(map[string]string{"/pw": "s3cr3t-1"})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	be.onSnapshot = func(n int) {
		switch n {
		case 1:
			f.Set("/pw", "s3cr3t-2") // seen by the second snapshot
		case 4:
			cancel()
		}
	}
	err := Run(ctx, be, []*Resource{good, bad}, time.Millisecond)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v, want context.Canceled", err)
	}
	if be.snaps != 4 {
		t.Errorf("%d snapshots, want 4", be.snaps)
	}
	// Snapshots 2 and 3 are equal: dest was rewritten (and reloaded) once.
	if got, want := readFile(t, reloads), "pw=s3cr3t-1\npw=s3cr3t-2\n"; got != want {
		t.Errorf("reloads saw %q, want %q", got, want)
	}
	out := logs.String()
	if n := strings.Count(out, `msg="apply failed" resource=conf.d/bad.toml`); n != 3 {
		t.Errorf("bad's failure logged %d times, want 3:\n%s", n, out)
	}
	if strings.Contains(out, "s3cr3t") {
		t.Errorf("a value was logged:\n%s", out)
	}
}

func TestRunSnapshotFailureKeepsGoing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var logs syncBuffer
	e.opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	r := e.resource("a", "a", "dest = "+q(e.dest("a")))
	_, be := newBackend(nil)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	flaky := &failingBackend{Backend: be, fail: 2, onSnapshot: func(n int) {
		if n == 3 {
			cancel()
		}
	}}
	err := Run(ctx, flaky, []*Resource{r}, time.Millisecond)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v, want context.Canceled", err)
	}
	if n := strings.Count(logs.String(), `msg="run failed"`); n != 2 {
		t.Errorf("%d failures logged, want 2:\n%s", n, logs.String())
	}
	if exists(t, e.dest("a")) {
		t.Error("dest written by a cancelled run")
	}
}

// failingBackend fails its first fail snapshots.
type failingBackend struct {
	backends.Backend
	fail       int
	n          int
	onSnapshot func(n int)
}

var errFlaky = errors.New("flaky backend")

func (f *failingBackend) Snapshot(ctx context.Context, prefixes []string) (backends.Snapshot, error) {
	f.n++
	defer f.onSnapshot(f.n)
	if f.n <= f.fail {
		return backends.Snapshot{}, errFlaky
	}
	return f.Backend.Snapshot(ctx, prefixes)
}

func TestRunStopsOnCancelledContext(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.resource("a", "a", "dest = "+q(e.dest("a")))
	_, be := newBackend(nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := Run(ctx, be, []*Resource{r}, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v, want context.Canceled", err)
	}
	if be.snaps != 0 {
		t.Errorf("%d snapshots after cancel", be.snaps)
	}
}

func TestRunBadInterval(t *testing.T) {
	t.Parallel()
	_, be := newBackend(nil)
	if err := Run(t.Context(), be, nil, 0); err == nil {
		t.Fatal("Run accepted a zero interval")
	}
}
