package resource

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/funcs"
)

// Once reads the keys of every resource from b in one snapshot (of
// [MergePrefixes]) and applies every resource to it, several at a time
// (see [onceWorkers]). One resource's failure does not stop the others;
// the result joins their errors, [*Error]s whose messages start with
// "resource NAME: ". A failed snapshot fails them all, with a
// [*FetchError] that names them.
//
// Each resource goes through the steps of [Resource.Apply], but the
// resources commit together: every update is staged (synced) and checked
// first, then each stage file is renamed over its dest and each directory
// that received one is synced once, and only then do the reload_cmds run.
// That spares a directory sync for every file, and the guarantees of Apply
// hold for each resource: a dest is only replaced by a complete, synced
// stage file, after its check_cmd passed, and its reload_cmd runs once
// the rename is durable.
func Once(ctx context.Context, b backends.Backend, rs []*Resource) error {
	failed, err := once(ctx, b, rs)
	errs := make([]error, 0, len(failed)+1)
	for _, f := range failed {
		errs = append(errs, f.err)
	}
	return errors.Join(append(errs, err)...)
}

// FetchError is the failure of [Once] to read its resources' keys from the
// backend: none of Resources was rendered.
type FetchError struct {
	// Resources names the resources that were not rendered.
	Resources []string
	// Err is the backend's error.
	Err error
}

func (e *FetchError) Error() string { return "resource: snapshot: " + e.Err.Error() }

// Unwrap returns Err.
func (e *FetchError) Unwrap() error { return e.Err }

// onceWorkers is how many resources [Once] applies at a time: more than
// the cores, since a write waits on fsync and a hook on its command, and
// the file system commits concurrent fsyncs together.
func onceWorkers() int { return max(16, 2*runtime.GOMAXPROCS(0)) }

// failure is one resource's error in a run.
type failure struct {
	r   *Resource
	err error
}

// once is [Once] with the errors kept apart: failed for single resources,
// err for the whole run (the snapshot, or ctx ending it).
func once(ctx context.Context, b backends.Backend, rs []*Resource) (failed []failure, err error) {
	if len(rs) == 0 {
		return nil, nil
	}
	s, rev, err := readStore(ctx, b, MergePrefixes(rs))
	if err != nil {
		names := make([]string, len(rs))
		for i, r := range rs {
			names[i] = r.Name
		}
		return nil, &FetchError{Resources: names, Err: err}
	}
	logger(rs).Debug("snapshot", "rev", rev, "keys", s.Len())
	// Resources are independent (no two share a dest): stage them on every
	// core. Each step holds the resource's lock, as Apply does.
	errs := make([]error, len(rs))
	ups := make([]*staged, len(rs))
	parallel(rs, func(i int, r *Resource) {
		if ctx.Err() == nil {
			r.mu.Lock()
			_, ups[i], errs[i] = r.prepare(ctx, s)
			r.mu.Unlock()
		}
	})
	// Commit every update, then sync each directory once: a rename is
	// durable when its directory is synced after it.
	var dirs []string
	seen := map[string]bool{}
	applied := make([]bool, len(rs))
	for i, u := range ups {
		if u == nil {
			continue
		}
		r := rs[i]
		r.mu.Lock()
		applied[i] = r.applyLive(ctx, u) // a resource's applier goes before its rename
		errs[i] = r.commit(u)
		r.mu.Unlock()
		if errs[i] != nil {
			ups[i] = nil
			continue
		}
		if dir := filepath.Dir(u.target); !seen[dir] {
			seen[dir] = true
			dirs = append(dirs, dir)
		}
	}
	dirErrs := syncDirs(dirs)
	parallel(rs, func(i int, r *Resource) {
		if u := ups[i]; u != nil {
			err := dirErrs[filepath.Dir(u.target)]
			if err != nil {
				err = fmt.Errorf("commit: %w", err)
			}
			if applied[i] { // no reload_cmd
				errs[i] = r.fail(StepWrite, err)
				return
			}
			r.mu.Lock()
			_, errs[i] = r.finish(ctx, u, err)
			r.mu.Unlock()
		}
	})
	if err := ctx.Err(); err != nil {
		return failed, fmt.Errorf("resource: %w", err)
	}
	for i, err := range errs {
		if err != nil {
			failed = append(failed, failure{rs[i], err}) // an *Error of rs[i]
		}
		rs[i].observe(EventDone, 0, err)
	}
	return failed, nil
}

// parallel calls fn for each resource, [onceWorkers] at a time, and
// returns when all calls have returned.
func parallel(rs []*Resource, fn func(i int, r *Resource)) {
	var g errgroup.Group
	g.SetLimit(onceWorkers())
	for i, r := range rs {
		g.Go(func() error {
			fn(i, r)
			return nil
		})
	}
	_ = g.Wait() // the goroutines return nil
}

// syncDirs syncs every directory of dirs, several at a time, and returns
// the errors by directory.
func syncDirs(dirs []string) map[string]error {
	errs := make([]error, len(dirs))
	var g errgroup.Group
	g.SetLimit(onceWorkers())
	for i, dir := range dirs {
		g.Go(func() error {
			errs[i] = syncDir(dir)
			return nil
		})
	}
	_ = g.Wait() // the goroutines return nil; their errors are in errs
	m := make(map[string]error, len(dirs))
	for i, dir := range dirs {
		m[dir] = errs[i]
	}
	return m
}

// readStore reads everything under prefixes from b into a new store, and
// returns it with its revision. From a [backends.Lister] it takes a list,
// already sorted, which spares a map and a sort of every key; from other
// backends, a snapshot.
func readStore(ctx context.Context, b backends.Backend, prefixes []string) (*funcs.Store, uint64, error) {
	if l, ok := b.(backends.Lister); ok {
		list, err := l.List(ctx, prefixes)
		if err != nil {
			return nil, 0, err
		}
		return funcs.NewStoreList(list.KVs), list.Rev, nil
	}
	snap, err := b.Snapshot(ctx, prefixes)
	if err != nil {
		return nil, 0, err
	}
	return funcs.NewStore(snap.KVs), snap.Rev, nil
}

// logger returns the logger of the first resource; resources loaded
// together share their Options.
func logger(rs []*Resource) *slog.Logger {
	if len(rs) == 0 {
		return slog.New(slog.DiscardHandler)
	}
	return rs[0].log
}

// ErrNoWatcher was returned by [Run] when [RunOptions.Watch] was set and
// the backend did not implement [backends.Watcher].
//
// Deprecated: Run no longer fails so: it renders such a backend's
// resources at start and every [RunOptions.Interval] instead.
var ErrNoWatcher = errors.New("resource: backend cannot watch for changes")

// RunOptions configure [Run].
type RunOptions struct {
	// Watch waits for changes with the backend's [backends.Watcher]
	// instead of polling. A backend that cannot watch (such as env) is
	// read at start and then every Interval if it is set, never
	// otherwise, and Run says so once in an info line.
	Watch bool
	// Interval is, without Watch, the period of the polls, and must then
	// be positive. With Watch, it is the period of a full reconciliation:
	// a fresh snapshot replaces the store and every resource is rendered
	// (an unchanged output writes nothing). Zero means no reconciliation.
	Interval time.Duration
	// Wait lets changes settle before a resource is rendered (see
	// [Wait]), for resources that set no wait of their own. The zero Wait
	// renders at once.
	Wait Wait
	// Retry bounds the backoff between the retries of a failed resource;
	// zero fields mean 1s and 1m. The retries of a failing backend use
	// the same bounds but at most 250ms and [ReconnectMax], so that a
	// backend back from an outage is read again within seconds.
	Retry Backoff
	// Status, when not nil, receives the backend's transitions down and
	// up as Run logs them (see [BackendStatus]), for metrics.
	Status *BackendStatus
	// Logger receives Run's messages (backend down and up, failed
	// renders); nil discards them. Resources also log through their own
	// [Options.Logger].
	Logger *slog.Logger
	// OnRender, when set, is called after every render; see [RenderHook].
	OnRender RenderHook
	// Observer, when set, receives the events of the backend (see
	// [BackendEvent]); resources send theirs to [Options.Observer].
	Observer BackendObserver
}

// RenderHook is the event hook of [Run]: it is called after every attempt
// to bring a resource up to date (each [Resource.Apply], and each retry of
// a reload_cmd that failed without rollback) with the resource's name
// (its file), the result and the error. [Updated] means dest changed and
// its hooks ran; kvconf exec signals its command on it, and tests,
// benchmarks and metrics count renders with it. It is called from the
// resource's own goroutine, concurrently for different resources and
// after the resource's hooks returned, so it must be safe for concurrent
// use and return promptly (hand slow work to another goroutine); it
// cannot change what Run does.
type RenderHook func(name string, res Result, err error)

// Run keeps the resources' dests up to date with b until ctx is done.
//
// It reads every resource's keys in one snapshot (of [MergePrefixes]) into
// one shared store and renders every resource. Then, with
// [RunOptions.Watch], a single loop follows b's [backends.Watcher.Watch]
// from the snapshot's revision and applies each update to the store (a
// delta, or a full snapshot that replaces everything under the prefixes);
// without it, the loop takes a new snapshot every [RunOptions.Interval].
// After each update only the resources that read a changed key are
// rendered again: a key k touches a resource when k starts with one of its
// [Resource.Prefixes]. Each resource renders after its wait (the resource's
// wait key, else [RunOptions.Wait]) and in its own goroutine, so that a slow
// check_cmd holds up no other resource.
//
// A resource that fails (a render error, a failed check_cmd or reload_cmd)
// is retried with exponential backoff ([RunOptions.Retry]) while the others
// carry on; as a failed reload rolls dest back, the retry renders and runs
// the hooks again, and a reload that failed without rollback is retried on
// its own, so that no reload is dropped. When b fails (a snapshot or a
// watch), every dest is left as it is, the loop retries with backoff (at
// most [ReconnectMax] apart) and logs one "backend down" warning with the
// cause and, once a read succeeds again, one "backend up" (and counts them
// in [RunOptions.Status]). After a failed watch it reads the prefixes
// afresh, renders what changed meanwhile, and watches from there.
//
// Run returns only after all its goroutines have ended. It returns an error
// at once for invalid options, and otherwise, once ctx is done, an error
// wrapping ctx.Err(). A render under way when ctx ends stops with its
// hooks killed and its stage file removed.
func Run(ctx context.Context, b backends.Backend, rs []*Resource, opts RunOptions) error {
	d, err := newDaemon(b, rs, opts)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("resource: run: %w", err)
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, w := range d.workers {
		g.Go(func() error { return w.run(gctx) })
	}
	g.Go(func() error { return d.fetch(gctx) })
	err = g.Wait()
	if ctx.Err() != nil || err == nil {
		// The loops end only when ctx is done.
		return fmt.Errorf("resource: run: %w", context.Cause(ctx))
	}
	return fmt.Errorf("resource: run: %w", err)
}
