package resource

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	iradix "github.com/hashicorp/go-immutable-radix/v2"

	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/funcs"
	"github.com/kvconf/kvconf/internal/backoff"
)

// daemon is the state of one [Run]: one backend, its fetch loop and one
// worker per resource.
//
// The fetch loop (the only goroutine that talks to the backend) owns kvs,
// rev, down and the touched scratch space. It publishes each new store
// through cur, then kicks the workers of the resources that read a changed
// key. Workers only read cur, so every render sees one complete update:
// never a failed or partial fetch.
type daemon struct {
	b         backends.Backend
	w         backends.Watcher // nil without RunOptions.Watch, or when b cannot watch
	unwatched bool             // RunOptions.Watch is set but b cannot watch
	opts      RunOptions       // Retry has its defaults
	reconnect backoff.Policy   // between attempts to read a failing backend
	log       *slog.Logger
	prefixes  []string            // MergePrefixes of the resources
	index     *iradix.Tree[[]int] // each resource prefix → the workers that read it
	workers   []*worker
	cur       atomic.Pointer[current]

	// Owned by the fetch loop.
	rev     uint64 // last revision seen
	down    bool   // the backend is failing
	touched []bool // by worker, during one update
	kick    []int  // the workers touched, in order
}

// current is the store the workers render from, and its revision.
type current struct {
	store *funcs.Store
	rev   uint64
}

// newDaemon checks opts and prepares a run of rs against b. Its errors
// are Run's.
func newDaemon(b backends.Backend, rs []*Resource, opts RunOptions) (*daemon, error) {
	d := &daemon{b: b, opts: opts, log: opts.Logger, prefixes: MergePrefixes(rs)}
	if opts.Watch {
		d.w, _ = b.(backends.Watcher)
		d.unwatched = d.w == nil
	}
	switch {
	case opts.Interval < 0:
		return nil, fmt.Errorf("resource: run: interval %s is negative", opts.Interval)
	case !opts.Watch && opts.Interval == 0:
		return nil, errors.New("resource: run: interval must be positive without watch")
	}
	if err := opts.Wait.validate(); err != nil {
		return nil, fmt.Errorf("resource: run: wait %s: %w", opts.Wait, err)
	}
	d.opts.Retry = opts.Retry.WithDefaults()
	d.reconnect = backoff.Policy{
		Min: min(d.opts.Retry.Min, reconnectFirst),
		Max: min(d.opts.Retry.Max, ReconnectMax),
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	txn := iradix.New[[]int]().Txn()
	for i, r := range rs {
		w := &worker{r: r, d: d, wait: opts.Wait, kick: make(chan struct{}, 1)}
		if r.waitSet {
			w.wait = r.wait
		}
		d.workers = append(d.workers, w)
		for _, p := range r.Prefixes() {
			ids, _ := txn.Get([]byte(p))
			txn.Insert([]byte(p), append(ids[:len(ids):len(ids)], i))
		}
	}
	d.index = txn.Commit()
	d.touched = make([]bool, len(rs))
	return d, nil
}

// fetch is the backend loop: the first snapshot, then watches or polls,
// until ctx is done. It returns ctx's error.
func (d *daemon) fetch(ctx context.Context) error {
	if len(d.workers) == 0 {
		<-ctx.Done()
		return ctx.Err()
	}
	var s *funcs.Store
	err := d.retry(ctx, func(ctx context.Context) (err error) {
		s, d.rev, err = readStore(ctx, d.b, d.prefixes)
		return err
	})
	if err != nil {
		return err
	}
	d.cur.Store(&current{store: s, rev: d.rev})
	d.log.Debug("snapshot", "rev", d.rev, "keys", s.Len())
	d.observe(BackendSnapshot, nil)
	for _, w := range d.workers {
		w.notify()
	}
	switch {
	case d.w != nil:
		return d.watch(ctx)
	case d.unwatched:
		// Said once per Run: at start and after each reload.
		d.log.Info("backend cannot watch; resources render at start, on reload and every interval",
			"resources", len(d.workers), "interval", d.opts.Interval)
		if d.opts.Interval == 0 {
			<-ctx.Done()
			return ctx.Err()
		}
	}
	return d.poll(ctx)
}

// poll takes a snapshot every interval and renders the resources whose
// keys changed.
func (d *daemon) poll(ctx context.Context) error {
	t := time.NewTimer(d.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		snap, err := d.snapshot(ctx)
		if err != nil {
			return err
		}
		d.replace(snap, false)
		d.observe(BackendSnapshot, nil)
		t.Reset(d.opts.Interval)
	}
}

// watch follows the backend's changes from d.rev, with a full
// reconciliation every interval if there is one.
func (d *daemon) watch(ctx context.Context) error {
	var next time.Time // the next reconciliation; zero for none
	if d.opts.Interval > 0 {
		next = time.Now().Add(d.opts.Interval)
	}
	fails := 0
	for {
		if !next.IsZero() && !time.Now().Before(next) {
			snap, err := d.snapshot(ctx)
			if err != nil {
				return err
			}
			d.log.Debug("reconciling", "rev", snap.Rev)
			d.replace(snap, true)
			d.observe(BackendSnapshot, nil)
			next = time.Now().Add(d.opts.Interval)
			continue
		}
		wctx, cancel := ctx, context.CancelFunc(func() {})
		if !next.IsZero() {
			wctx, cancel = context.WithDeadline(ctx, next)
		}
		began := time.Now()
		u, err := d.w.Watch(wctx, d.prefixes, d.rev)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			if wctx.Err() != nil {
				continue // time to reconcile
			}
			if time.Since(began) > d.reconnect.Max {
				fails = 0 // the watch worked for a while: a new failure
			}
			fails++
			d.failed(err, fails)
			if err := d.resync(ctx, fails); err != nil {
				return err
			}
			continue
		}
		fails = 0
		d.recovered()
		d.update(u)
		d.observe(BackendUpdate, nil)
	}
}

// resync reads the prefixes again after a failed watch, the fails-th in a
// row, and installs what it read: the changes made while the watch was
// down are found whether or not the watch could resume, and the backend
// counts as up again as soon as it answers a read, even when no key
// changes after it. A watch that fails again at once (while reads work)
// is paced by the reconnection backoff.
func (d *daemon) resync(ctx context.Context, fails int) error {
	if fails > 1 {
		if err := sleep(ctx, d.reconnect.Delay(fails-1)); err != nil {
			return err
		}
	}
	snap, err := d.snapshot(ctx)
	if err != nil {
		return err
	}
	d.replace(snap, false)
	d.observe(BackendSnapshot, nil)
	return nil
}

// snapshot reads the prefixes, retrying with backoff until it succeeds or
// ctx is done (then it returns ctx's error).
func (d *daemon) snapshot(ctx context.Context) (backends.Snapshot, error) {
	var snap backends.Snapshot
	err := d.retry(ctx, func(ctx context.Context) (err error) {
		snap, err = d.b.Snapshot(ctx, d.prefixes)
		return err
	})
	return snap, err
}

// retry calls read until it succeeds, with the reconnection backoff
// between the failures, or until ctx is done (then it returns ctx's
// error).
func (d *daemon) retry(ctx context.Context, read func(context.Context) error) error {
	err := backoff.Retry(ctx, d.reconnect, func(ctx context.Context) error {
		err := read(ctx)
		if err != nil && ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}, func(n int, err error, _ time.Duration) { d.failed(err, n) })
	if err != nil {
		return ctx.Err()
	}
	d.recovered()
	return nil
}

// Bounds of the backoff between attempts to read a failing backend: at
// most [RunOptions.Retry]'s, and never more than ReconnectMax, so that a
// backend that answers again is read within about ReconnectMax (+20%).
const (
	reconnectFirst = 250 * time.Millisecond
	// ReconnectMax is the longest wait between two attempts to read a
	// failing backend.
	ReconnectMax = 2 * time.Second
)

// failed notes a backend error: a warning when the backend goes down,
// nothing more while it stays down but a debug line.
func (d *daemon) failed(err error, attempt int) {
	d.observe(BackendError, err)
	if !d.down {
		d.down = true
		d.opts.Status.wentDown()
		d.observe(BackendDown, err)
		d.log.Warn("backend down", "rev", d.rev, "err", err)
		return
	}
	d.log.Debug("backend still down", "attempt", attempt, "err", err)
}

// recovered notes a backend success, with a message when it was down.
func (d *daemon) recovered() {
	if d.down {
		d.down = false
		d.opts.Status.cameUp()
		d.observe(BackendUp, nil)
		d.log.Info("backend up", "rev", d.rev)
	}
}

// BackendStatus is what a [Run] knows of its backend's health: whether it
// is down now, and how many times it went down and came back up. Run
// updates it when [RunOptions.Status] points to it, at the moments it logs
// "backend down" and "backend up"; a metrics exporter or a health check
// may read it at any time (its methods are safe for concurrent use). The
// zero BackendStatus is ready to use: up, no transitions. One status
// serves one backend; across reloads (a new Run on the same backend) the
// counts go on.
type BackendStatus struct {
	down  atomic.Bool
	downs atomic.Uint64
	ups   atomic.Uint64
	since atomic.Int64 // Unix nanoseconds of the last transition; 0 for none
}

// Down reports whether the backend is down: its last read or watch failed
// and no read succeeded since.
func (s *BackendStatus) Down() bool { return s.down.Load() }

// Downs returns how many times the backend went down.
func (s *BackendStatus) Downs() uint64 { return s.downs.Load() }

// Ups returns how many times the backend came back up after being down.
func (s *BackendStatus) Ups() uint64 { return s.ups.Load() }

// Since returns the time of the last transition, down or up; the zero
// time if there was none.
func (s *BackendStatus) Since() time.Time {
	ns := s.since.Load()
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// wentDown records a transition to down; a nil s records nothing.
func (s *BackendStatus) wentDown() {
	if s == nil {
		return
	}
	s.since.Store(time.Now().UnixNano())
	s.down.Store(true)
	s.downs.Add(1)
}

// cameUp records a transition to up; a nil s records nothing.
func (s *BackendStatus) cameUp() {
	if s == nil {
		return
	}
	s.since.Store(time.Now().UnixNano())
	s.down.Store(false)
	s.ups.Add(1)
}

// update applies one result of Watch.
func (d *daemon) update(u backends.Update) {
	switch {
	case u.Full != nil:
		snap := *u.Full
		if u.Rev != 0 {
			snap.Rev = u.Rev
		}
		d.replace(snap, false)
		return
	case len(u.Changes) == 0:
		if u.Rev != 0 {
			d.rev = u.Rev
		}
		return
	}
	// Each change is compared with the store before the update: the last
	// change of a key that ends with a new value touches its resources
	// (an earlier one may too, a harmless extra render).
	prev := d.cur.Load().store
	for _, c := range u.Changes {
		old, had := prev.Lookup(c.Key)
		if c.Deleted && !had || !c.Deleted && had && old == c.Value {
			continue // no change for any view
		}
		d.touch(c.Key)
	}
	if u.Rev != 0 {
		d.rev = u.Rev
	}
	d.publish(d.cur.Load().store.Apply(u.Changes), len(u.Changes))
}

// replace installs a full snapshot of the prefixes. Unless all is set, it
// renders only the resources under which a key was added, changed or
// removed.
func (d *daemon) replace(snap backends.Snapshot, all bool) {
	if all {
		for i := range d.workers {
			d.touched[i] = true
			d.kick = append(d.kick, i)
		}
	} else {
		prev := d.cur.Load().store
		for k, v := range snap.KVs {
			if old, had := prev.Lookup(k); !had || old != v {
				d.touch(k)
			}
		}
		for _, p := range d.prefixes {
			prev.Walk(p, func(k, _ string) bool {
				if _, ok := snap.KVs[k]; !ok {
					d.touch(k)
				}
				return true
			})
		}
	}
	if snap.Rev != 0 {
		d.rev = snap.Rev
	}
	d.publish(d.cur.Load().store.Replace(d.prefixes, snap.KVs), len(snap.KVs))
}

// touch marks the workers of every resource with a prefix of key, in
// O(len(key)) plus the matches: the index is a radix tree of the prefixes
// and WalkPath visits exactly the entries on key's path.
func (d *daemon) touch(key string) {
	d.index.Root().WalkPath([]byte(key), func(_ []byte, ids []int) bool {
		for _, i := range ids {
			if !d.touched[i] {
				d.touched[i] = true
				d.kick = append(d.kick, i)
			}
		}
		return false
	})
}

// publish makes s the store to render from, then kicks the touched
// workers.
func (d *daemon) publish(s *funcs.Store, keys int) {
	d.cur.Store(&current{store: s, rev: d.rev})
	d.log.Debug("update", "rev", d.rev, "keys", keys, "resources", len(d.kick))
	for _, i := range d.kick {
		d.touched[i] = false
		d.workers[i].notify()
	}
	d.kick = d.kick[:0]
}

// worker renders one resource when the fetch loop kicks it, after the
// resource's wait, and retries failures with backoff.
type worker struct {
	r    *Resource
	d    *daemon
	wait Wait
	kick chan struct{} // capacity 1: kicks coalesce
}

// notify asks the worker to render; it never blocks.
func (w *worker) notify() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// run is the worker's loop. The first kick (the first snapshot) renders at
// once; later kicks render after the wait. It returns ctx's error.
func (w *worker) run(ctx context.Context) error {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var (
		started bool      // the first render was scheduled
		first   time.Time // the first change not rendered yet, for Wait.Max
		due     time.Time // when the next render is due; zero for none
		fails   int       // failed attempts in a row
		owed    bool      // dest is new but its reload_cmd has not succeeded
	)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-w.kick:
			now := time.Now()
			if !started {
				started, due = true, now
				break
			}
			if first.IsZero() {
				first = now
			}
			due = w.wait.due(now, first)
		case <-timer.C:
			first, due = time.Time{}, time.Time{}
			err := w.render(ctx, &owed)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err == nil {
				fails = 0
				break
			}
			fails++
			delay := w.d.opts.Retry.Delay(fails)
			due = time.Now().Add(delay)
			w.d.log.Error("apply failed", "resource", w.r.Name, "dest", w.r.dest,
				"attempt", fails, "retry_in", delay, "err", err)
		}
		if due.IsZero() {
			timer.Stop()
		} else {
			timer.Reset(time.Until(due))
		}
	}
}

// render applies the resource to the current store and, when a reload is
// owed from an earlier attempt and Apply did not run one, runs reload_cmd.
func (w *worker) render(ctx context.Context, owed *bool) error {
	cur := w.d.cur.Load()
	res, err := w.r.Apply(ctx, cur.store)
	switch {
	case err == nil && res == Updated:
		*owed = false // Apply ran reload_cmd
	// An applier's live change (Applied) does not pay a reload owed from
	// an earlier attempt: that may be of a change the applier never saw.
	case err == nil && *owed:
		if err = w.r.reloadOnly(ctx); err == nil {
			*owed = false
		}
	case err != nil && res == Updated && isHook(err, "reload_cmd"):
		*owed = true // dest is new, its reload failed and was not rolled back
	}
	w.d.log.Debug("rendered", "resource", w.r.Name, "dest", w.r.dest, "rev", cur.rev, "result", res)
	w.r.observe(EventDone, 0, err)
	if w.d.opts.OnRender != nil {
		w.d.opts.OnRender(w.r.Name, res, err)
	}
	return err
}

// isHook reports whether err comes from the named hook.
func isHook(err error, hook string) bool {
	var he *HookError
	return errors.As(err, &he) && he.Hook == hook
}

// reloadOnly runs reload_cmd on dest as it is: the retry of a reload that
// failed after dest was replaced, and was not rolled back.
func (r *Resource) reloadOnly(ctx context.Context) error {
	if r.reload == nil || r.opts.SyncOnly || r.opts.Noop {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	cmd, err := hookCommand(r.reload, r.dest, r.dest)
	if err != nil {
		return &Error{Resource: r.Name, Err: fmt.Errorf("reload_cmd: %w", err)}
	}
	if err := r.hook(ctx, "reload_cmd", cmd); err != nil {
		return &Error{Resource: r.Name, Err: err}
	}
	return nil
}
