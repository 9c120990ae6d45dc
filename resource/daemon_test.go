package resource

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/backends/backendtest"
)

// deadline bounds every wait for a condition in these tests. It is
// generous on purpose: conditions normally hold within milliseconds, and
// no test asserts how long anything takes.
const deadline = 10 * time.Second

// fastRetry keeps the retries of these tests quick.
var fastRetry = Backoff{Min: 5 * time.Millisecond, Max: 50 * time.Millisecond}

// eventually polls cond until it holds, and fails the test if it still
// does not after d.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	stop := time.Now().Add(d)
	for !cond() {
		if time.Now().After(stop) {
			t.Fatalf("gave up after %s waiting for %s", d, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// renders counts the OnRender calls of a run, by resource name.
type renders struct {
	mu      sync.Mutex
	calls   map[string]int // every call
	failed  map[string]int // calls with an error
	updated map[string]int // calls with Updated and no error
}

func newRenders() *renders {
	return &renders{calls: map[string]int{}, failed: map[string]int{}, updated: map[string]int{}}
}

func (c *renders) hook(name string, res Result, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls[name]++
	if err != nil {
		c.failed[name]++
	} else if res == Updated {
		c.updated[name]++
	}
}

func (c *renders) get(m map[string]int, name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return m[name]
}

func (c *renders) count(r *Resource) int    { return c.get(c.calls, r.Name) }
func (c *renders) failures(r *Resource) int { return c.get(c.failed, r.Name) }

// daemonEnv is an env plus a fake backend, a log buffer and render counts.
type daemonEnv struct {
	*env
	fake    *backendtest.Fake
	logs    *syncBuffer
	renders *renders
}

func newDaemonEnv(t *testing.T) *daemonEnv {
	t.Helper()
	e := &daemonEnv{env: newEnv(t), fake: backendtest.NewFake(), logs: &syncBuffer{}, renders: newRenders()}
	e.opts.Logger = slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return e
}

// runOptions returns options that watch the fake, retry fast, count
// renders and log to e.logs.
func (e *daemonEnv) runOptions() RunOptions {
	return RunOptions{Watch: true, Retry: fastRetry, Logger: e.opts.Logger, OnRender: e.renders.hook}
}

// start runs Run in the background until the returned stop is called (or
// the test ends), and stop returns Run's error.
func (e *daemonEnv) start(b backends.Backend, rs []*Resource, opts RunOptions) (stop func() error) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(e.t.Context())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, b, rs, opts) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			err = <-done
		})
		return err
	}
	e.t.Cleanup(func() { _ = stop() })
	return stop
}

// waitFor waits until the file at p holds want.
func waitFor(t testing.TB, p, want string) {
	t.Helper()
	eventually(t, deadline, fmt.Sprintf("%s to hold %q", filepath.Base(p), want), func() bool {
		data, err := os.ReadFile(p)
		return err == nil && string(data) == want
	})
}

// waitRenders waits until r was rendered at least n times.
func (e *daemonEnv) waitRenders(t testing.TB, r *Resource, n int) {
	t.Helper()
	eventually(t, deadline, fmt.Sprintf("%s to render %d times", r.Name, n), func() bool { return e.renders.count(r) >= n })
}

// updateRE matches the debug line logged for each update of the store.
var updateRE = regexp.MustCompile(`msg=update rev=(\d+) keys=\d+ resources=(\d+)`)

// touchedAt waits for the store update that brings the run to revision rev
// and returns how many resources it touched.
func (e *daemonEnv) touchedAt(t testing.TB, rev uint64) int {
	t.Helper()
	n := -1
	eventually(t, deadline, fmt.Sprintf("the update to revision %d", rev), func() bool {
		for _, m := range updateRE.FindAllStringSubmatch(e.logs.String(), -1) {
			if m[1] == strconv.FormatUint(rev, 10) {
				n, _ = strconv.Atoi(m[2])
				return true
			}
		}
		return false
	})
	return n
}

func TestRunStartupRendersAll(t *testing.T) {
	t.Parallel()
	e := newDaemonEnv(t)
	e.fake.Set("/a/k", "1")
	e.fake.Set("/b/k", "2")
	a := e.resource("a", `a={{getv "/k"}}`, "dest = "+q(e.dest("a")), `prefix = "/a"`)
	b := e.resource("b", `b={{getv "/k"}}`, "dest = "+q(e.dest("b")), `prefix = "/b"`)
	c := e.resource("c", `c`, "dest = "+q(e.dest("c")), `keys = ["/c"]`)
	stop := e.start(e.fake, []*Resource{a, b, c}, e.runOptions())
	waitFor(t, e.dest("a"), "a=1")
	waitFor(t, e.dest("b"), "b=2")
	waitFor(t, e.dest("c"), "c")
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v, want context.Canceled", err)
	}
	for _, r := range []*Resource{a, b, c} {
		if n := e.renders.count(r); n != 1 {
			t.Errorf("%s rendered %d times, want 1", r.Name, n)
		}
	}
}

// TestRunRendersTouchedOnly changes keys one at a time and checks which
// resources each change renders again.
func TestRunRendersTouchedOnly(t *testing.T) {
	t.Parallel()
	e := newDaemonEnv(t)
	e.fake.Set("/app/a/k", "a1")
	e.fake.Set("/app/b/k", "b1")
	e.fake.Set("/shared/k", "s1")
	a := e.resource("a", `{{getv "/a/k" "none"}} {{getv "/shared/k" "none"}}`, "dest = "+q(e.dest("a")),
		`prefix = "/app"`, `keys = ["/a"]`)
	// b reads the whole of /app/b, and also /shared: two prefixes.
	b := e.resource("b", `{{getv "/app/b/k" "none"}} {{getv "/shared/k" "none"}}`, "dest = "+q(e.dest("b")),
		`keys = ["/app/b", "/shared"]`)
	// s is a sentinel: a key outside every prefix makes no update, so
	// the case sets a key of s after it, to know when it was passed over.
	s := e.resource("s", `{{getv "/k" "none"}}`, "dest = "+q(e.dest("s")), `prefix = "/zz"`)
	rs := []*Resource{a, b, s}
	e.start(e.fake, rs, e.runOptions())
	waitFor(t, e.dest("a"), "a1 none")
	waitFor(t, e.dest("b"), "b1 s1")
	waitFor(t, e.dest("s"), "none")
	for _, r := range rs {
		e.waitRenders(t, r, 1)
	}

	tests := []struct {
		name     string
		change   func(f *backendtest.Fake)
		rendered []*Resource // render again; the others do not
		wantA    string
		wantB    string
	}{
		{name: "set under a", change: func(f *backendtest.Fake) { f.Set("/app/a/k", "a2") },
			rendered: []*Resource{a}, wantA: "a2 none", wantB: "b1 s1"},
		{name: "new key under b", change: func(f *backendtest.Fake) { f.Set("/app/b/new", "x") },
			rendered: []*Resource{b}, wantA: "a2 none", wantB: "b1 s1"},
		{name: "key outside every prefix", change: func(f *backendtest.Fake) {
			f.Set("/elsewhere/k", "x")
			f.Set("/zz/k", "sentinel")
		}, rendered: []*Resource{s}, wantA: "a2 none", wantB: "b1 s1"},
		{name: "plain string prefix", change: func(f *backendtest.Fake) { f.Set("/app/abc", "x") },
			rendered: []*Resource{a}, wantA: "a2 none", wantB: "b1 s1"},
		{name: "same value again", change: func(f *backendtest.Fake) { f.Set("/app/a/k", "a2") },
			wantA: "a2 none", wantB: "b1 s1"},
		{name: "second prefix of b", change: func(f *backendtest.Fake) { f.Set("/shared/k", "s2") },
			rendered: []*Resource{b}, wantA: "a2 none", wantB: "b1 s2"},
		{name: "delete under b", change: func(f *backendtest.Fake) { f.Delete("/app/b/k") },
			rendered: []*Resource{b}, wantA: "a2 none", wantB: "none s2"},
		{name: "delete under a", change: func(f *backendtest.Fake) { f.Delete("/app/a/k") },
			rendered: []*Resource{a}, wantA: "none none", wantB: "none s2"},
	}
	// Not parallel: the cases run in order against one Run.
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := map[*Resource]int{}
			for _, r := range rs {
				before[r] = e.renders.count(r)
			}
			tt.change(e.fake)
			if n := e.touchedAt(t, e.fake.Rev()); n != len(tt.rendered) {
				t.Errorf("the change touched %d resources, want %d", n, len(tt.rendered))
			}
			for _, r := range tt.rendered {
				e.waitRenders(t, r, before[r]+1)
			}
			waitFor(t, e.dest("a"), tt.wantA)
			waitFor(t, e.dest("b"), tt.wantB)
			for _, r := range rs {
				want := before[r]
				for _, rr := range tt.rendered {
					if rr == r {
						want++
					}
				}
				if got := e.renders.count(r); got != want {
					t.Errorf("%s rendered %d times, want %d", r.Name, got, want)
				}
			}
		})
	}
}

func TestRunDebounce(t *testing.T) {
	t.Parallel()
	t.Run("quiet period", func(t *testing.T) {
		t.Parallel()
		e := newDaemonEnv(t)
		e.fake.Set("/k", "0")
		r := e.resource("a", `{{getv "/k"}}`, "dest = "+q(e.dest("a")), `keys = ["/k"]`)
		opts := e.runOptions()
		opts.Wait = Wait{Min: 500 * time.Millisecond, Max: time.Minute}
		e.start(e.fake, []*Resource{r}, opts)
		waitFor(t, e.dest("a"), "0") // the first render does not wait
		for i := 1; i <= 5; i++ {
			e.fake.Set("/k", strconv.Itoa(i))
		}
		waitFor(t, e.dest("a"), "5")
		e.waitRenders(t, r, 2)
		if n := e.renders.count(r); n != 2 {
			t.Errorf("%d renders, want 2: the start-up one and one for the 5 changes", n)
		}
	})
	t.Run("max bounds a stream", func(t *testing.T) {
		t.Parallel()
		e := newDaemonEnv(t)
		e.fake.Set("/k", "0")
		// The resource's own wait overrides the run's, which would wait
		// for a minute.
		r := e.resource("a", `{{getv "/k"}}`, "dest = "+q(e.dest("a")), `keys = ["/k"]`, `wait = "200ms:500ms"`)
		opts := e.runOptions()
		opts.Wait = Wait{Min: time.Minute, Max: time.Hour}
		e.start(e.fake, []*Resource{r}, opts)
		waitFor(t, e.dest("a"), "0")
		// A change every 10ms never leaves 200ms of quiet: only Max can
		// bring the render about while the stream goes on.
		i := 0
		eventually(t, deadline, "a render during the stream", func() bool {
			i++
			e.fake.Set("/k", strconv.Itoa(i))
			time.Sleep(10 * time.Millisecond)
			return e.renders.count(r) > 1
		})
	})
	t.Run("resource wait of zero", func(t *testing.T) {
		t.Parallel()
		e := newDaemonEnv(t)
		e.fake.Set("/k", "0")
		r := e.resource("a", `{{getv "/k"}}`, "dest = "+q(e.dest("a")), `keys = ["/k"]`, `wait = "0s"`)
		opts := e.runOptions()
		opts.Wait = Wait{Min: time.Hour, Max: time.Hour}
		e.start(e.fake, []*Resource{r}, opts)
		waitFor(t, e.dest("a"), "0")
		e.fake.Set("/k", "1")
		waitFor(t, e.dest("a"), "1")
	})
}

func TestRunRetriesFailedRender(t *testing.T) {
	t.Parallel()
	e := newDaemonEnv(t)
	bad := e.resource("bad", `{{getv "/k"}}`, "dest = "+q(e.dest("bad")), `prefix = "/m"`)
	good := e.resource("good", `good`, "dest = "+q(e.dest("good")), `prefix = "/g"`)
	e.start(e.fake, []*Resource{bad, good}, e.runOptions())
	waitFor(t, e.dest("good"), "good")
	// The key is still missing: bad is retried, with backoff, and keeps
	// failing; good is not rendered again.
	eventually(t, deadline, "bad to be retried", func() bool { return e.renders.failures(bad) >= 3 })
	if exists(t, e.dest("bad")) {
		t.Error("bad's dest was written")
	}
	e.fake.Set("/m/k", "v")
	waitFor(t, e.dest("bad"), "v")
	if n := e.renders.count(good); n != 1 {
		t.Errorf("good rendered %d times, want 1", n)
	}
	if !strings.Contains(e.logs.String(), `msg="apply failed" resource=conf.d/bad.toml`) {
		t.Errorf("no apply failed line for bad:\n%s", e.logs)
	}
}

func TestRunRetriesFailedReload(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		rollback bool
	}{
		{"rollback", true},
		{"no rollback", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newDaemonEnv(t)
			marker, reloads := e.dest("marker"), e.dest("reloads")
			e.fake.Set("/k", "v1")
			r := e.resource("a", `{{getv "/k"}}`, "dest = "+q(e.dest("a")), `keys = ["/k"]`,
				"rollback = "+strconv.FormatBool(tt.rollback),
				"reload_cmd = "+q("test -e "+marker+" && cat {{.dest}} >> "+reloads))
			e.start(e.fake, []*Resource{r}, e.runOptions())
			eventually(t, deadline, "the reload to be retried", func() bool { return e.renders.failures(r) >= 3 })
			if tt.rollback && exists(t, e.dest("a")) {
				t.Error("dest kept after a failed reload with rollback")
			}
			if err := os.WriteFile(marker, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			waitFor(t, reloads, "v1")
			waitFor(t, e.dest("a"), "v1")
			// Once it succeeded, nothing is retried any more, so a change
			// is rendered and reloaded once.
			e.fake.Set("/k", "v2")
			waitFor(t, reloads, "v1v2")
		})
	}
}

func TestRunBackendOutage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// atStart fails the backend before Run starts: the first
		// snapshot fails. Otherwise the watch fails after start-up.
		atStart bool
	}{
		{"watch fails", false},
		{"first snapshot fails", true},
	}
	errDown := errors.New("connection refused")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newDaemonEnv(t)
			e.fake.Set("/k", "v1")
			r := e.resource("a", `{{getv "/k"}}`, "dest = "+q(e.dest("a")), `keys = ["/k"]`)
			if tt.atStart {
				e.fake.Fail(errDown)
			}
			opts := e.runOptions()
			var st BackendStatus
			opts.Status = &st
			e.start(e.fake, []*Resource{r}, opts)
			if !tt.atStart {
				waitFor(t, e.dest("a"), "v1")
				e.fake.Fail(errDown)
			}
			e.fake.Set("/k", "v2")
			// Wait until the loop has failed a few times more.
			eventually(t, deadline, "retries", func() bool {
				return strings.Count(e.logs.String(), `msg="backend still down"`) >= 3
			})
			if tt.atStart {
				if exists(t, e.dest("a")) {
					t.Error("dest written while the backend is down")
				}
			} else if got := readFile(t, e.dest("a")); got != "v1" {
				t.Errorf("dest holds %q during the outage, want v1", got)
			}
			if !st.Down() || st.Downs() != 1 || st.Ups() != 0 || st.Since().IsZero() {
				t.Errorf("status during the outage: down %v, %d downs, %d ups, since %v; want down, 1, 0, set",
					st.Down(), st.Downs(), st.Ups(), st.Since())
			}
			e.fake.Recover()
			waitFor(t, e.dest("a"), "v2")
			if st.Down() || st.Downs() != 1 || st.Ups() != 1 {
				t.Errorf("status after the outage: down %v, %d downs, %d ups; want up, 1, 1", st.Down(), st.Downs(), st.Ups())
			}
			e.fake.Set("/k", "v3") // and the watch goes on
			waitFor(t, e.dest("a"), "v3")
			out := e.logs.String()
			if n := strings.Count(out, `msg="backend down"`); n != 1 {
				t.Errorf("backend down logged %d times, want 1:\n%s", n, out)
			}
			if n := strings.Count(out, `msg="backend up"`); n != 1 {
				t.Errorf("backend up logged %d times, want 1:\n%s", n, out)
			}
			if !strings.Contains(out, `level=WARN msg="backend down"`) || !strings.Contains(out, "connection refused") {
				t.Errorf("the backend down line lacks its level or error:\n%s", out)
			}
		})
	}
}

// TestRunBackendUpWithoutChange: a backend back from an outage counts as
// up as soon as it answers a read, though no key changed: the up line
// does not wait for the next change to end the watch.
func TestRunBackendUpWithoutChange(t *testing.T) {
	t.Parallel()
	e := newDaemonEnv(t)
	e.fake.Set("/k", "v1")
	r := e.resource("a", `{{getv "/k"}}`, "dest = "+q(e.dest("a")), `keys = ["/k"]`)
	opts := e.runOptions()
	var st BackendStatus
	opts.Status = &st
	e.start(e.fake, []*Resource{r}, opts)
	waitFor(t, e.dest("a"), "v1")
	e.fake.Fail(errors.New("connection refused"))
	eventually(t, deadline, "the outage", func() bool { return st.Down() })
	e.fake.Recover()
	eventually(t, deadline, "backend up", func() bool { return strings.Contains(e.logs.String(), `msg="backend up"`) })
	if st.Down() || st.Ups() != 1 {
		t.Errorf("status: down %v, %d ups; want up, 1", st.Down(), st.Ups())
	}
}

// TestRunFullUpdate makes the fake answer the watch with a full snapshot
// (the changes were compacted away during an outage): only resources
// whose view changed are rendered again.
func TestRunFullUpdate(t *testing.T) {
	t.Parallel()
	e := newDaemonEnv(t)
	e.fake.Set("/a/k", "a1")
	e.fake.Set("/a/gone", "x")
	e.fake.Set("/b/k", "b1")
	a := e.resource("a", `{{getv "/k"}} {{getv "/gone" "none"}}`, "dest = "+q(e.dest("a")), `prefix = "/a"`)
	b := e.resource("b", `{{getv "/k"}}`, "dest = "+q(e.dest("b")), `prefix = "/b"`)
	c := e.resource("c", `{{getv "/k"}}`, "dest = "+q(e.dest("c")), `prefix = "/c"`, `keys = ["/"]`)
	e.fake.Set("/c/k", "c1")
	rs := []*Resource{a, b, c}
	e.start(e.fake, rs, e.runOptions())
	waitFor(t, e.dest("a"), "a1 x")
	waitFor(t, e.dest("b"), "b1")
	waitFor(t, e.dest("c"), "c1")
	for _, r := range rs {
		e.waitRenders(t, r, 1)
	}

	e.fake.Fail(errors.New("leader lost"))
	eventually(t, deadline, "the outage", func() bool { return strings.Contains(e.logs.String(), `msg="backend down"`) })
	e.fake.Delete("/a/gone")   // a's view changes
	e.fake.Set("/b/k", "b1")   // b's does not: same value
	e.fake.Set("/c/k", "c2")   // c's changes,
	e.fake.Set("/c/k", "c1")   // and back
	e.fake.Set("/other", "no") // outside every prefix
	e.fake.Compact()
	e.fake.Recover()
	if n := e.touchedAt(t, e.fake.Rev()); n != 1 {
		t.Errorf("the full update touched %d resources, want 1", n)
	}
	waitFor(t, e.dest("a"), "a1 none")
	e.waitRenders(t, a, 2)
	for r, want := range map[*Resource]int{a: 2, b: 1, c: 1} {
		if n := e.renders.count(r); n != want {
			t.Errorf("%s rendered %d times, want %d", r.Name, n, want)
		}
	}
}

func TestRunCancelMidRender(t *testing.T) {
	t.Parallel()
	e := newDaemonEnv(t)
	started := filepath.Join(e.dir, "started")
	r := e.resource("a", `a`, "dest = "+q(e.dest("a")),
		"check_cmd = "+q("touch "+started+"; sleep 30"))
	stop := e.start(e.fake, []*Resource{r}, e.runOptions())
	eventually(t, deadline, "check_cmd to start", func() bool { _, err := os.Stat(started); return err == nil })
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v, want context.Canceled", err)
	}
	if exists(t, e.dest("a")) {
		t.Error("dest written by a cancelled render")
	}
	if left := stageFiles(t, e.out); len(left) > 0 {
		t.Errorf("stage files left: %q", left)
	}
}

func TestRunPoll(t *testing.T) {
	t.Parallel()
	e := newDaemonEnv(t)
	f, be := newBackend(map[string]string{"/a/k": "a1", "/b/k": "b1"}) // be has no Watch
	a := e.resource("a", `{{getv "/k"}}`, "dest = "+q(e.dest("a")), `prefix = "/a"`)
	b := e.resource("b", `{{getv "/k"}}`, "dest = "+q(e.dest("b")), `prefix = "/b"`)
	opts := e.runOptions()
	opts.Watch, opts.Interval = false, 10*time.Millisecond
	e.start(be, []*Resource{a, b}, opts)
	waitFor(t, e.dest("a"), "a1")
	waitFor(t, e.dest("b"), "b1")
	e.waitRenders(t, b, 1)
	f.Set("/a/k", "a2")
	if n := e.touchedAt(t, f.Rev()); n != 1 {
		t.Errorf("the poll touched %d resources, want 1", n)
	}
	waitFor(t, e.dest("a"), "a2")
	e.waitRenders(t, a, 2)
	if n := e.renders.count(b); n != 1 {
		t.Errorf("b rendered %d times, want 1", n)
	}
}

func TestRunReconcile(t *testing.T) {
	t.Parallel()
	e := newDaemonEnv(t)
	e.fake.Set("/a/k", "a1")
	a := e.resource("a", `{{getv "/k"}}`, "dest = "+q(e.dest("a")), `prefix = "/a"`)
	b := e.resource("b", `b`, "dest = "+q(e.dest("b")), `prefix = "/b"`)
	opts := e.runOptions()
	opts.Interval = 20 * time.Millisecond
	e.start(e.fake, []*Resource{a, b}, opts)
	waitFor(t, e.dest("a"), "a1")
	waitFor(t, e.dest("b"), "b")
	// Someone edits dest by hand: no key changes, the reconciliation
	// restores it, and renders every resource.
	if err := os.WriteFile(e.dest("b"), []byte("edited"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, e.dest("b"), "b")
	eventually(t, deadline, "a to be rendered by reconciliation", func() bool { return e.renders.count(a) >= 2 })
	// Changes are still watched between reconciliations.
	e.fake.Set("/a/k", "a2")
	waitFor(t, e.dest("a"), "a2")
}

// TestRunUnwatched: with Watch, a backend that cannot watch does not stop
// Run: its resources render at start, and then every Interval when it is
// set (never otherwise); Run says once that they are not watched.
func TestRunUnwatched(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		interval time.Duration
	}{
		{"no interval", 0},
		{"interval", 10 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newDaemonEnv(t)
			f, be := newBackend(map[string]string{"/k": "v1"}) // be has no Watch
			r := e.resource("a", `{{getv "/k"}}`, "dest = "+q(e.dest("a")), `keys = ["/k"]`)
			opts := e.runOptions()
			opts.Interval = tt.interval
			stop := e.start(be, []*Resource{r}, opts)
			waitFor(t, e.dest("a"), "v1")
			f.Set("/k", "v2")
			if tt.interval > 0 {
				waitFor(t, e.dest("a"), "v2")
			} else {
				// Nothing reads the backend again: wait for a few
				// would-be polls and check dest kept the first value.
				time.Sleep(50 * time.Millisecond)
				if got := readFile(t, e.dest("a")); got != "v1" {
					t.Errorf("dest = %q without interval, want v1", got)
				}
				be.mu.Lock()
				n := be.snaps
				be.mu.Unlock()
				if n != 1 {
					t.Errorf("%d snapshots without interval, want 1", n)
				}
			}
			if err := stop(); !errors.Is(err, context.Canceled) {
				t.Fatalf("Run returned %v, want context.Canceled", err)
			}
			if n := strings.Count(e.logs.String(), `msg="backend cannot watch; resources render at start, on reload and every interval"`); n != 1 {
				t.Errorf("the not-watched line was logged %d times, want 1:\n%s", n, e.logs.String())
			}
		})
	}
}

func TestRunOptionErrors(t *testing.T) {
	t.Parallel()
	_, noWatch := newBackend(nil)
	tests := []struct {
		name string
		b    backends.Backend
		opts RunOptions
		is   error
		want string
	}{
		{name: "poll without interval", b: noWatch, opts: RunOptions{}, want: "interval must be positive"},
		{name: "negative interval", b: backendtest.NewFake(), opts: RunOptions{Watch: true, Interval: -time.Second}, want: "negative"},
		{name: "bad wait", b: backendtest.NewFake(), opts: RunOptions{Watch: true, Wait: Wait{Min: 2 * time.Second, Max: time.Second}},
			want: "max 1s is less than min 2s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := Run(t.Context(), tt.b, nil, tt.opts)
			if err == nil || errors.Is(err, context.Canceled) {
				t.Fatalf("Run returned %v, want an option error", err)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("Run returned %v, want %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Run returned %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestRunCancelled(t *testing.T) {
	t.Parallel()
	e := newDaemonEnv(t)
	r := e.resource("a", "a", "dest = "+q(e.dest("a")))
	_, be := newBackend(nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := Run(ctx, be, []*Resource{r}, RunOptions{Interval: time.Hour}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v, want context.Canceled", err)
	}
	if be.snaps != 0 {
		t.Errorf("%d snapshots after cancel", be.snaps)
	}
	// Without resources Run waits for ctx too.
	stop := e.start(be, nil, RunOptions{Interval: time.Hour})
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run without resources returned %v, want context.Canceled", err)
	}
}

func TestRunLogsNoValues(t *testing.T) {
	t.Parallel()
	e := newDaemonEnv(t)
	e.fake.Set("/pw", "s3cr3t-1")
	good := e.resource("good", `pw={{getv "/pw"}}`, "dest = "+q(e.dest("good")), `keys = ["/pw"]`)
	bad := e.resource("bad", `{{getv "/nope"}}`, "dest = "+q(e.dest("bad")), `keys = ["/pw"]`)
	e.start(e.fake, []*Resource{good, bad}, e.runOptions())
	waitFor(t, e.dest("good"), "pw=s3cr3t-1")
	e.fake.Set("/pw", "s3cr3t-2")
	waitFor(t, e.dest("good"), "pw=s3cr3t-2")
	eventually(t, deadline, "bad to fail twice", func() bool { return e.renders.failures(bad) >= 2 })
	if out := e.logs.String(); strings.Contains(out, "s3cr3t") {
		t.Errorf("a value was logged:\n%s", out)
	}
}

func TestParseWait(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    Wait
		wantErr string
	}{
		{in: "", want: Wait{}},
		{in: "2s:10s", want: Wait{Min: 2 * time.Second, Max: 10 * time.Second}},
		{in: " 2s : 10s ", want: Wait{Min: 2 * time.Second, Max: 10 * time.Second}},
		{in: "2s", want: Wait{Min: 2 * time.Second, Max: 8 * time.Second}},
		{in: "0s", want: Wait{}},
		{in: "1s:1s", want: Wait{Min: time.Second, Max: time.Second}},
		{in: "500ms:0s", wantErr: "max 0s is less than min 500ms"},
		{in: "10s:2s", wantErr: "max 2s is less than min 10s"},
		{in: "-1s", wantErr: "negative"},
		{in: "1s:2s:3s", wantErr: "want min[:max]"},
		{in: "soon", wantErr: `invalid wait "soon": min: `},
		{in: "1s:later", wantErr: `invalid wait "1s:later": max: `},
		{in: "5", wantErr: "missing unit"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseWait(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseWait(%q) = %v, %v; want an error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseWait(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestWaitDue(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := time.Second
	tests := []struct {
		name       string
		w          Wait
		now, first time.Duration // after t0
		want       time.Duration
	}{
		{"zero renders at once", Wait{}, 5 * s, 0, 5 * s},
		{"first change", Wait{Min: 2 * s, Max: 10 * s}, 0, 0, 2 * s},
		{"quiet period restarts", Wait{Min: 2 * s, Max: 10 * s}, 3 * s, 0, 5 * s},
		{"capped by max", Wait{Min: 2 * s, Max: 10 * s}, 9 * s, 0, 10 * s},
		{"zero max is 4×min", Wait{Min: 2 * s}, 7 * s, 0, 8 * s},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.w.due(t0.Add(tt.now), t0.Add(tt.first)); !got.Equal(t0.Add(tt.want)) {
				t.Errorf("due = %s, want %s", got.Sub(t0), tt.want)
			}
		})
	}
}

func TestLoadWait(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.write("templates/a.tmpl", "a")
	p := e.write("conf.d/a.toml", "[template]\nsrc = \"a.tmpl\"\ndest = \"/x\"\nwait = \"10s:2s\"\n")
	_, err := Load(p, e.opts)
	var le *LoadError
	if !errors.As(err, &le) || le.Path != "conf.d/a.toml" || le.Field != "template.wait" {
		t.Fatalf("got %v, want a *LoadError for conf.d/a.toml, template.wait", err)
	}
	if want := `conf.d/a.toml: template.wait: invalid wait "10s:2s": max 2s is less than min 10s`; err.Error() != want {
		t.Errorf("got %q, want %q", err, want)
	}
	p = e.write("conf.d/b.toml", "[template]\nsrc = \"a.tmpl\"\ndest = \"/x\"\nwait = \"2s\"\n")
	r, err := Load(p, e.opts)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Wait{Min: 2 * time.Second, Max: 8 * time.Second}); !r.waitSet || r.wait != want {
		t.Errorf("wait = %v (set %t), want %v", r.wait, r.waitSet, want)
	}
}

// BenchmarkWatchDelta measures how long one change takes to reach its
// dest: 200 resources read 50 keys each out of 10,000; each iteration sets
// one key of one resource and waits until that resource's dest was
// updated.
func BenchmarkWatchDelta(b *testing.B) {
	const resources, perResource = 200, 50
	dir := b.TempDir()
	for _, d := range []string{"conf.d", "templates", "out"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			b.Fatal(err)
		}
	}
	tmpl := `{{range ls "/"}}{{.}}={{getv (printf "/%s" .)}}` + "\n{{end}}"
	if err := os.WriteFile(filepath.Join(dir, "templates", "r.tmpl"), []byte(tmpl), 0o644); err != nil {
		b.Fatal(err)
	}
	f := backendtest.NewFake()
	opts := Options{ConfDir: dir, Sets: testSets()}
	rs := make([]*Resource, resources)
	for i := range rs {
		p := filepath.Join(dir, "conf.d", fmt.Sprintf("r%03d.toml", i))
		toml := fmt.Sprintf("[template]\nsrc = \"r.tmpl\"\ndest = %q\nprefix = \"/svc/%03d\"\n",
			filepath.Join(dir, "out", fmt.Sprintf("r%03d", i)), i)
		if err := os.WriteFile(p, []byte(toml), 0o644); err != nil {
			b.Fatal(err)
		}
		r, err := Load(p, opts)
		if err != nil {
			b.Fatal(err)
		}
		rs[i] = r
		for k := range perResource {
			f.Set(fmt.Sprintf("/svc/%03d/k%02d", i, k), "v")
		}
	}
	target := rs[resources/2]
	key := fmt.Sprintf("/svc/%03d/k07", resources/2)

	var mu sync.Mutex
	rendered := 0
	initial := make(chan struct{})    // closed after the start-up renders
	updated := make(chan struct{}, 1) // the target's dest was updated
	ropts := RunOptions{Watch: true, Retry: fastRetry, OnRender: func(name string, res Result, err error) {
		if err != nil {
			b.Error(err)
		}
		mu.Lock()
		if rendered++; rendered == resources {
			close(initial)
		}
		mu.Unlock()
		if name == target.Name && res == Updated {
			select {
			case updated <- struct{}{}:
			default:
			}
		}
	}}
	ctx, cancel := context.WithCancel(b.Context())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, f, rs, ropts) }()
	<-initial
	<-updated // the target's start-up render
	b.ResetTimer()
	for i := range b.N {
		f.Set(key, strconv.Itoa(i))
		<-updated
	}
	b.StopTimer()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		b.Fatal(err)
	}
}

// TestRunList checks that Run takes its first snapshot with List from a
// backend that has it, then follows the watch.
func TestRunList(t *testing.T) {
	t.Parallel()
	e := newDaemonEnv(t)
	l := &listing{Fake: e.fake}
	e.fake.Set("/a/k", "1")
	a := e.resource("a", `a={{getv "/k"}}`, "dest = "+q(e.dest("a")), `prefix = "/a"`)
	e.start(l, []*Resource{a}, e.runOptions())
	waitFor(t, e.dest("a"), "a=1")
	e.fake.Set("/a/k", "2")
	waitFor(t, e.dest("a"), "a=2")
	if n := l.lists.Load(); n != 1 {
		t.Errorf("%d lists, want 1", n)
	}
}
