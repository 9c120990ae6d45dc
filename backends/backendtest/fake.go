// Package backendtest helps test backends and the code that uses them: [Fake]
// is an in-memory backend with a working watch, and [Run] is the
// conformance suite that every backend passes.
package backendtest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/kvconf/kvconf/backends"
)

// Fake is an in-memory backend for tests, safe for concurrent use. It
// implements [backends.Backend], [backends.Lister] and [backends.Watcher].
//
// Its revision starts at 1 and grows by one with every [Fake.Set] and with
// every [Fake.Delete] of a key that exists, as etcd's does. It keeps a log of
// the changes, so that Watch returns them as a delta; after [Fake.Compact],
// a Watch from a revision older than the compaction gets a full snapshot
// instead.
type Fake struct {
	mu        sync.Mutex
	kvs       map[string]string
	rev       uint64
	log       []logEntry    // changes after compacted, by rev
	compacted uint64        // the log holds every change after this revision
	wake      chan struct{} // closed and replaced on each change and on Close
	closed    bool
	fail      error // set by Fail: Snapshot and Watch return it
}

type logEntry struct {
	rev    uint64
	change backends.Change
}

// NewFake returns an empty fake at revision 1.
func NewFake() *Fake {
	return &Fake{kvs: map[string]string{}, rev: 1, compacted: 1, wake: make(chan struct{})}
}

// Set sets key to value, as one change at a new revision; the watchers
// whose prefixes match key return it.
func (f *Fake) Set(key, value string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.kvs[key] = value
	f.record(backends.Change{Key: key, Value: value})
}

// Delete removes key, as one change at a new revision. Deleting a key that
// does not exist changes nothing.
func (f *Fake) Delete(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.kvs[key]; !ok {
		return
	}
	delete(f.kvs, key)
	f.record(backends.Change{Key: key, Deleted: true})
}

// Compact forgets the change log, as a store does after a compaction: a
// later Watch from an older revision returns a full snapshot.
func (f *Fake) Compact() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log = nil
	f.compacted = f.rev
}

// Fail makes Snapshot and Watch fail with an error wrapping err, as a
// backend that lost its server does, until [Fake.Recover]; watchers that
// are waiting return it at once. Set, Delete and Compact still work, so a
// test can change the data during the outage. Fail(nil) is Recover.
func (f *Fake) Fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = err
	if err != nil {
		f.notify()
	}
}

// Recover ends a [Fake.Fail]: Snapshot and Watch work again, and a Watch
// from a revision before the outage returns what changed since, or a full
// snapshot if the changes were compacted away.
func (f *Fake) Recover() { f.Fail(nil) }

// Rev returns the current revision.
func (f *Fake) Rev() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rev
}

// record logs c at a new revision and wakes the watchers. f.mu is held.
func (f *Fake) record(c backends.Change) {
	f.rev++
	f.log = append(f.log, logEntry{rev: f.rev, change: c})
	f.notify()
}

// notify wakes every waiting Watch. f.mu is held.
func (f *Fake) notify() {
	close(f.wake)
	f.wake = make(chan struct{})
}

// Snapshot returns the keys under prefixes at the current revision.
func (f *Fake) Snapshot(ctx context.Context, prefixes []string) (backends.Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return backends.Snapshot{}, fmt.Errorf("backendtest: snapshot: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return backends.Snapshot{}, fmt.Errorf("backendtest: snapshot: %w", backends.ErrClosed)
	}
	if f.fail != nil {
		return backends.Snapshot{}, fmt.Errorf("backendtest: snapshot: %w", f.fail)
	}
	return f.snapshot(prefixes), nil
}

// List returns the keys under prefixes at the current revision, sorted;
// it implements [backends.Lister].
func (f *Fake) List(ctx context.Context, prefixes []string) (backends.List, error) {
	s, err := f.Snapshot(ctx, prefixes)
	if err != nil {
		return backends.List{}, err
	}
	kvs := make([]backends.KV, 0, len(s.KVs))
	for _, k := range slices.Sorted(maps.Keys(s.KVs)) {
		kvs = append(kvs, backends.KV{Key: k, Value: s.KVs[k]})
	}
	return backends.List{Rev: s.Rev, KVs: kvs}, nil
}

// snapshot returns the keys under prefixes. f.mu is held.
func (f *Fake) snapshot(prefixes []string) backends.Snapshot {
	kvs := make(map[string]string)
	for k, v := range f.kvs {
		if under(k, prefixes) {
			kvs[k] = v
		}
	}
	return backends.Snapshot{Rev: f.rev, KVs: kvs}
}

// Watch implements [backends.Watcher]: it blocks until a key under prefixes
// changed after revision after, then returns those changes, in order, and
// the current revision. With after == 0 it returns at once with the current
// revision. When the changes after after were compacted away, it returns a
// full snapshot of prefixes. It never wakes spuriously.
func (f *Fake) Watch(ctx context.Context, prefixes []string, after uint64) (backends.Update, error) {
	for {
		if err := ctx.Err(); err != nil {
			return backends.Update{}, fmt.Errorf("backendtest: watch: %w", err)
		}
		f.mu.Lock()
		if f.closed {
			f.mu.Unlock()
			return backends.Update{}, fmt.Errorf("backendtest: watch: %w", backends.ErrClosed)
		}
		if f.fail != nil {
			err := f.fail
			f.mu.Unlock()
			return backends.Update{}, fmt.Errorf("backendtest: watch: %w", err)
		}
		if after == 0 {
			rev := f.rev
			f.mu.Unlock()
			return backends.Update{Rev: rev}, nil
		}
		if after < f.compacted {
			s := f.snapshot(prefixes)
			f.mu.Unlock()
			return backends.Update{Rev: s.Rev, Full: &s}, nil
		}
		var changes []backends.Change
		i := sort.Search(len(f.log), func(i int) bool { return f.log[i].rev > after })
		for _, e := range f.log[i:] {
			if under(e.change.Key, prefixes) {
				changes = append(changes, e.change)
			}
		}
		rev, wake := f.rev, f.wake
		f.mu.Unlock()
		if len(changes) > 0 {
			return backends.Update{Rev: rev, Changes: changes}, nil
		}
		select {
		case <-ctx.Done():
		case <-wake:
		}
	}
}

// Close closes the fake and wakes its watchers, which return
// [backends.ErrClosed], as do later calls. It is idempotent. Set and Delete
// still work after Close.
func (f *Fake) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closed {
		f.closed = true
		f.notify()
	}
	return nil
}

// KVs returns a copy of every key and value.
func (f *Fake) KVs() map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.kvs)
}

// under reports whether key starts with one of prefixes.
func under(key string, prefixes []string) bool {
	return slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(key, p) })
}

var (
	_ backends.Backend = (*Fake)(nil)
	_ backends.Lister  = (*Fake)(nil)
	_ backends.Watcher = (*Fake)(nil)
)
