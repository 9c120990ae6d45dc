package file

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/kvconf/kvconf/backends"
)

// Watch implements [backends.Watcher]. It blocks until the keys under
// prefixes differ from what they were at revision after, then returns the
// new revision and the keys that changed (set or deleted) since after,
// sorted. A change to the files that leaves the keys under prefixes as they
// were does not return. With after == 0 it returns at once with the current
// revision, reading the files if nothing was read yet.
//
// The changes come from a log that the client keeps, from its first Watch
// on, of its recent revisions: at most as many changes as the files hold
// keys, plus 1024. From a revision older than the log, or one that is not
// this client's, Watch returns a full snapshot of prefixes at once.
//
// The first Watch starts an fsnotify watch that runs until [Client.Close]
// and reads the files again once a burst of events has been quiet for 50
// ms (or one second after it began, if it goes on), so that one save is one
// read. It watches directories, not files: the directory of each listed
// file (and, for a file that is a symbolic link, the directory of its
// target, so that a link switched to a new target, as Kubernetes does with
// ConfigMap volumes, is seen when the old target goes), and each listed
// directory with every directory under it, taking in new ones as they
// appear. A file replaced by rename, or deleted and written again, is
// therefore seen. In listed directories, events for files whose name does
// not match [Config.Filter] are ignored; listed files count whatever their
// name. Changes of permissions alone are ignored.
//
// When a read fails (a listed file is missing, say, or does not parse), the
// pending Watch calls return its error, and the revision stays. A Watch
// called while the last read failed reads the files again at once, and
// returns the error if it persists; once the files read again, it waits
// for changes as usual. A caller that backs off and calls again thus
// recovers when the files are fixed, even where fsnotify cannot see it (a
// directory removed and created again). The same goes for a directory that
// cannot be watched (when the inotify limits are reached).//
// Watch honours ctx, returning an error that wraps ctx.Err(). Concurrent
// calls are safe, and share one fsnotify watch.
func (c *Client) Watch(ctx context.Context, prefixes []string, after uint64) (backends.Update, error) {
	if err := ctx.Err(); err != nil {
		return backends.Update{}, fmt.Errorf("file: watch: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return backends.Update{}, fmt.Errorf("file: watch: %w", backends.ErrClosed)
	}
	read := c.rev == 0 || c.err != nil
	if c.w == nil {
		if err := c.startWatch(); err != nil {
			return backends.Update{}, err
		}
		read = true // for what changed before the watches were set
	}
	if read {
		if err := c.refresh(ctx); err != nil {
			return backends.Update{}, err
		}
		if c.err != nil {
			return backends.Update{}, c.err
		}
	}
	if after == 0 {
		return backends.Update{Rev: c.rev}, nil
	}
	gen := c.gen
	for {
		changes, ok := c.changesSince(after, prefixes)
		switch {
		case !ok:
			s := c.snapshot(prefixes)
			return backends.Update{Rev: s.Rev, Full: &s}, nil
		case len(changes) > 0:
			return backends.Update{Rev: c.rev, Changes: changes}, nil
		}
		// Nothing changed under prefixes up to c.rev: wait from there.
		after = c.rev
		wake := c.wakeChan()
		c.mu.Unlock()
		var err error
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-wake:
		}
		c.mu.Lock()
		switch {
		case err != nil:
			return backends.Update{}, fmt.Errorf("file: watch: %w", err)
		case c.closed:
			return backends.Update{}, fmt.Errorf("file: watch: %w", backends.ErrClosed)
		case c.gen != gen && c.err != nil:
			return backends.Update{}, c.err
		}
		gen = c.gen
	}
}

// revChanges holds the changes that made revision rev.
type revChanges struct {
	rev     uint64
	changes []keyChange
}

// keyChange is the change of one key from one revision to the next.
type keyChange struct {
	key      string
	from, to string
	had, has bool // whether the key was there before, and after
}

// logSlack is how many changes the log holds beyond the number of keys.
const logSlack = 1024

// record makes kvs, just read, the current content: the first revision, or
// a new one if it differs from the current content. c.mu is held.
func (c *Client) record(kvs map[string]string) {
	if c.rev == 0 {
		c.rev, c.compacted, c.kvs = 1, 1, kvs
		return
	}
	var changes []keyChange
	for k, v := range kvs {
		if old, ok := c.kvs[k]; !ok || old != v {
			changes = append(changes, keyChange{key: k, from: old, to: v, had: ok, has: true})
		}
	}
	for k, old := range c.kvs {
		if _, ok := kvs[k]; !ok {
			changes = append(changes, keyChange{key: k, from: old, had: true})
		}
	}
	if len(changes) == 0 {
		return
	}
	c.rev++
	c.kvs = kvs
	if c.w == nil { // no Watch yet: no log to keep
		c.compacted = c.rev
		return
	}
	c.log = append(c.log, revChanges{rev: c.rev, changes: changes})
	c.logged += len(changes)
	n := 0
	for n < len(c.log) && c.logged > len(c.kvs)+logSlack {
		c.logged -= len(c.log[n].changes)
		c.compacted = c.log[n].rev
		n++
	}
	c.log = slices.Delete(c.log, 0, n)
}

// changesSince returns the keys under prefixes that changed after revision
// after, sorted, or false if the log does not go back to after. c.mu is
// held.
func (c *Client) changesSince(after uint64, prefixes []string) ([]backends.Change, bool) {
	if after < c.compacted || after > c.rev {
		return nil, false
	}
	i, _ := slices.BinarySearchFunc(c.log, after+1, func(e revChanges, rev uint64) int { return cmp.Compare(e.rev, rev) })
	net := map[string]keyChange{} // from the state at after to the current one
	for _, e := range c.log[i:] {
		for _, kc := range e.changes {
			if !under(kc.key, prefixes) {
				continue
			}
			if first, ok := net[kc.key]; ok {
				kc.from, kc.had = first.from, first.had
			}
			net[kc.key] = kc
		}
	}
	var changes []backends.Change
	for _, kc := range net {
		if kc.had == kc.has && kc.from == kc.to {
			continue // changed, then changed back
		}
		changes = append(changes, backends.Change{Key: kc.key, Value: kc.to, Deleted: !kc.has})
	}
	slices.SortFunc(changes, func(a, b backends.Change) int { return strings.Compare(a.Key, b.Key) })
	return changes, true
}

// watcher is the fsnotify watch of a [Client], from its first Watch to its
// Close. Two goroutines run it: pump drains fsnotify's channels and only
// that, so that fsnotify never waits for the rest; debounce reads the files
// when the events have quietened down.
type watcher struct {
	fs       *fsnotify.Watcher
	filter   string
	quiet    time.Duration
	maxWait  time.Duration
	events   chan struct{} // holds a token when a relevant event came
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	stopOnce sync.Once
	stopErr  error

	mu    sync.Mutex
	dirs  map[string]bool // watched directory → whether it is in a listed directory
	names map[string]bool // the listed files that are not directories, and their targets
}

// startWatch starts c's watcher; [Client.refresh] adds the watches. c.mu
// is held.
func (c *Client) startWatch() error {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("file: watch: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{
		fs:      fw,
		filter:  c.filter,
		quiet:   c.quiet,
		maxWait: c.maxWait,
		events:  make(chan struct{}, 1),
		cancel:  cancel,
	}
	w.wg.Go(w.pump)
	w.wg.Go(func() { c.debounce(ctx, w) })
	c.w = w
	return nil
}

// stop stops w and waits for its goroutines. It is idempotent.
func (w *watcher) stop() error {
	w.stopOnce.Do(func() {
		w.cancel()
		if err := w.fs.Close(); err != nil {
			w.stopErr = fmt.Errorf("file: close: %w", err)
		}
		w.wg.Wait()
	})
	return w.stopErr
}

// pump receives fsnotify's events and errors until its watcher is closed,
// and tells debounce of those that matter. It never blocks on anything
// else.
func (w *watcher) pump() {
	for {
		select {
		case ev, ok := <-w.fs.Events:
			if !ok {
				return
			}
			if !w.relevant(ev) {
				continue
			}
		case _, ok := <-w.fs.Errors:
			if !ok {
				return
			}
			// Events may have been lost (the queue overflowed): read
			// the files again.
		}
		select {
		case w.events <- struct{}{}:
		default: // a token is waiting already
		}
	}
}

// debounce reads the files once the events that pump passes have been
// quiet for w.quiet, or w.maxWait after the first of them, until ctx is
// done.
func (c *Client) debounce(ctx context.Context, w *watcher) {
	t := time.NewTimer(w.quiet)
	t.Stop()
	var first time.Time // of the pending burst; zero if none
	for {
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-w.events:
			now := time.Now()
			if first.IsZero() {
				first = now
			}
			t.Reset(max(0, min(w.quiet, first.Add(w.maxWait).Sub(now))))
		case <-t.C:
			first = time.Time{}
			c.mu.Lock()
			if !c.closed {
				// The outcome is recorded for the pending Watch calls.
				_ = c.refresh(ctx)
			}
			c.mu.Unlock()
		}
	}
}

// relevant reports whether ev may change what the files hold.
func (w *watcher) relevant(ev fsnotify.Event) bool {
	if !ev.Has(fsnotify.Create) && !ev.Has(fsnotify.Write) && !ev.Has(fsnotify.Remove) && !ev.Has(fsnotify.Rename) {
		return false // permissions: too noisy (backups, indexers), and a read error is retried anyway
	}
	name := filepath.Clean(ev.Name)
	w.mu.Lock()
	listed := w.names[name]
	_, dir := w.dirs[name]
	inListedDir := w.dirs[filepath.Dir(name)]
	w.mu.Unlock()
	switch {
	case listed, dir: // a listed file, or a watched directory (removed, moved)
		return true
	case !inListedDir:
		return false
	}
	if ok, _ := filepath.Match(w.filter, filepath.Base(name)); ok {
		return true
	}
	// A new directory, to watch and read.
	fi, err := os.Lstat(name)
	return ev.Has(fsnotify.Create) && err == nil && fi.IsDir()
}

// sync makes w watch the directories that files need now: each listed
// directory and the directories under it, and the directory of each other
// listed path (of its target too, for a symbolic link). It stops watching
// those no longer needed. A directory that does not exist is left out; the
// read reports the missing file. c.mu is held.
func (w *watcher) sync(files []string) error {
	dirs, names := watchSet(files)
	w.mu.Lock()
	old := w.dirs
	w.dirs, w.names = dirs, names
	w.mu.Unlock()
	for d := range old {
		if _, ok := dirs[d]; !ok {
			// It may be gone already, and its watch with it.
			_ = w.fs.Remove(d)
		}
	}
	var errs []error
	for _, d := range slices.Sorted(maps.Keys(dirs)) {
		// Adding a watched directory again is cheap, and renews the
		// watch of a directory that was removed and created again.
		if err := w.fs.Add(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("file: watch %s: %w", d, err))
		}
	}
	return errors.Join(errs...)
}

// watchSet returns the directories to watch for files, each mapped to
// whether it is in a listed directory, and the listed paths that are not
// directories, with their targets.
func watchSet(files []string) (dirs, names map[string]bool) {
	dirs, names = map[string]bool{}, map[string]bool{}
	for _, root := range files {
		root = filepath.Clean(root)
		if fi, err := os.Stat(root); err == nil && fi.IsDir() {
			walkDirs(root, dirs)
			continue
		}
		paths := []string{root}
		if target, err := filepath.EvalSymlinks(root); err == nil && target != root {
			paths = append(paths, target)
		}
		for _, p := range paths {
			names[p] = true
			if _, ok := dirs[filepath.Dir(p)]; !ok {
				dirs[filepath.Dir(p)] = false
			}
		}
	}
	return dirs, names
}

// walkDirs adds dir and the directories under it to dirs, descending as
// [list] does: not into symbolic links. Errors are left to the read.
func walkDirs(dir string, dirs map[string]bool) {
	dirs[dir] = true
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.IsDir() {
			walkDirs(filepath.Join(dir, e.Name()), dirs)
		}
	}
}
