package backendtest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/kvconf/kvconf/backends"
)

// Harness connects [Run] to the backend under test.
type Harness struct {
	// Open returns a new backend on an empty store (or one that holds no
	// key under /kvconftest). Each subtest of Run calls it first, once,
	// and closes what it returns.
	Open func(t *testing.T) backends.Backend
	// Put sets key to value in the store of the backend that Open
	// returned last.
	Put func(t *testing.T, key, value string)
	// Delete removes key from that store.
	Delete func(t *testing.T, key string)
}

// timeout bounds every wait of the suite, so that a hung backend fails the
// test instead of blocking it.
const timeout = 10 * time.Second

// seed is the data that the subtests put. Keys are made of lower-case
// letters and "/" under /kvconftest, so that a backend with a restricted
// key syntax, such as env, can hold them; values are free text.
var seed = map[string]string{
	"/kvconftest/app/db/host":  "db.example",
	"/kvconftest/app/db/port":  "5432",
	"/kvconftest/app/dbx/name": "x",
	"/kvconftest/web/url":      "http://web.example/ café ☕",
	"/kvconftest/other/key":    "other",
}

// Run checks that the backend behind h follows the contract of package
// backends:
//
//   - Snapshot returns the keys under several prefixes, with full keys,
//     matching by plain string prefix ("/app/db" matches "/app/dbx"); "/"
//     matches every key and no prefix matches none;
//   - if the backend implements [backends.Lister], List returns the same
//     keys as each of those snapshots, sorted by key;
//   - a deleted key is gone from the next snapshot;
//   - the revision never goes backwards;
//   - Close can be called twice, and calls made after it return an error
//     that wraps [backends.ErrClosed];
//   - Snapshot with a cancelled context returns an error that wraps
//     [context.Canceled];
//   - if the backend implements [backends.Watcher]: Watch with after == 0
//     returns at once with no change and a revision other than 0; a Put or a Delete under the watched
//     prefixes wakes a blocked Watch, which returns only changes under its
//     prefixes (spurious returns are allowed); cancelling the context
//     unblocks Watch with an error that wraps [context.Canceled].
//
// The subtests run one after the other, never in parallel, so that h may
// change process-wide state such as the environment (with t.Setenv).
func Run(t *testing.T, h Harness) {
	t.Helper()
	t.Run("Snapshot", func(t *testing.T) {
		b := open(t, h)
		putAll(t, h, seed)
		got := snapshot(t, b, "/kvconftest/app/db", "/kvconftest/web")
		want := pick(seed, "/kvconftest/app/db/host", "/kvconftest/app/db/port",
			"/kvconftest/app/dbx/name", "/kvconftest/web/url")
		if !maps.Equal(got.KVs, want) {
			t.Errorf("Snapshot(/kvconftest/app/db, /kvconftest/web) = %v, want %v", got.KVs, want)
		}
	})
	t.Run("PlainPrefix", func(t *testing.T) {
		b := open(t, h)
		putAll(t, h, seed)
		got := snapshot(t, b, "/kvconftest/app/db")
		if v, ok := got.KVs["/kvconftest/app/dbx/name"]; !ok || v != seed["/kvconftest/app/dbx/name"] {
			t.Errorf("Snapshot(/kvconftest/app/db) = %v, want /kvconftest/app/dbx/name too (plain string prefix)", got.KVs)
		}
		got = snapshot(t, b, "/kvconftest/app/db/")
		want := pick(seed, "/kvconftest/app/db/host", "/kvconftest/app/db/port")
		if !maps.Equal(got.KVs, want) {
			t.Errorf("Snapshot(/kvconftest/app/db/) = %v, want %v", got.KVs, want)
		}
	})
	t.Run("Root", func(t *testing.T) {
		b := open(t, h)
		putAll(t, h, seed)
		got := snapshot(t, b, "/")
		for k, v := range seed {
			if g, ok := got.KVs[k]; !ok || g != v {
				t.Errorf("Snapshot(/)[%s] = %q, %t; want %q", k, g, ok, v)
			}
		}
	})
	t.Run("NoPrefix", func(t *testing.T) {
		b := open(t, h)
		putAll(t, h, seed)
		if got := snapshot(t, b); len(got.KVs) != 0 {
			t.Errorf("Snapshot() = %v, want no key", got.KVs)
		}
	})
	t.Run("Delete", func(t *testing.T) {
		b := open(t, h)
		putAll(t, h, seed)
		before := snapshot(t, b, "/kvconftest")
		h.Delete(t, "/kvconftest/app/db/port")
		after := snapshot(t, b, "/kvconftest")
		want := maps.Clone(seed)
		delete(want, "/kvconftest/app/db/port")
		if !maps.Equal(after.KVs, want) {
			t.Errorf("Snapshot after Delete = %v, want %v", after.KVs, want)
		}
		if after.Rev < before.Rev {
			t.Errorf("revision went from %d to %d after Delete", before.Rev, after.Rev)
		}
	})
	t.Run("Revision", func(t *testing.T) {
		b := open(t, h)
		revs := []uint64{snapshot(t, b, "/kvconftest").Rev}
		for _, k := range []string{"/kvconftest/app/db/host", "/kvconftest/web/url"} {
			h.Put(t, k, seed[k])
			revs = append(revs, snapshot(t, b, "/kvconftest").Rev)
			revs = append(revs, snapshot(t, b, "/kvconftest/app").Rev)
		}
		h.Delete(t, "/kvconftest/web/url")
		revs = append(revs, snapshot(t, b, "/kvconftest").Rev)
		for i := 1; i < len(revs); i++ {
			if revs[i] < revs[i-1] {
				t.Errorf("revisions went backwards: %v", revs)
				break
			}
		}
	})
	t.Run("Close", func(t *testing.T) {
		b := open(t, h)
		for i := range 2 {
			if err := b.Close(); err != nil {
				t.Errorf("Close #%d: %v", i+1, err)
			}
		}
		if _, err := b.Snapshot(t.Context(), []string{"/"}); !errors.Is(err, backends.ErrClosed) {
			t.Errorf("Snapshot after Close: err = %v, want backends.ErrClosed", err)
		}
		if w, ok := b.(backends.Watcher); ok {
			if _, err := w.Watch(t.Context(), []string{"/"}, 0); !errors.Is(err, backends.ErrClosed) {
				t.Errorf("Watch after Close: err = %v, want backends.ErrClosed", err)
			}
		}
	})
	t.Run("CanceledContext", func(t *testing.T) {
		b := open(t, h)
		putAll(t, h, seed)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := b.Snapshot(ctx, []string{"/kvconftest"}); !errors.Is(err, context.Canceled) {
			t.Errorf("Snapshot with a cancelled context: err = %v, want context.Canceled", err)
		}
	})
	t.Run("Watch", func(t *testing.T) {
		if _, ok := open(t, h).(backends.Watcher); !ok {
			t.Skip("the backend does not implement backends.Watcher")
		}
		runWatch(t, h)
	})
}

// open calls h.Open and closes the backend when the test ends.
func open(t *testing.T, h Harness) backends.Backend {
	t.Helper()
	b := h.Open(t)
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

func putAll(t *testing.T, h Harness, kvs map[string]string) {
	t.Helper()
	for k, v := range kvs {
		h.Put(t, k, v)
	}
}

func snapshot(t *testing.T, b backends.Backend, prefixes ...string) backends.Snapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	s, err := b.Snapshot(ctx, prefixes)
	if err != nil {
		t.Fatalf("Snapshot(%q): %v", prefixes, err)
	}
	if l, ok := b.(backends.Lister); ok {
		checkList(ctx, t, l, prefixes, s)
	}
	return s
}

// checkList checks that List(prefixes) returns the keys of s, sorted and
// each once, at a revision no older than s's.
func checkList(ctx context.Context, t *testing.T, l backends.Lister, prefixes []string, s backends.Snapshot) {
	t.Helper()
	got, err := l.List(ctx, prefixes)
	if err != nil {
		t.Fatalf("List(%q): %v", prefixes, err)
	}
	kvs := make(map[string]string, len(got.KVs))
	for i, kv := range got.KVs {
		if i > 0 && got.KVs[i-1].Key >= kv.Key {
			t.Errorf("List(%q): %q after %q, want keys sorted, each once", prefixes, kv.Key, got.KVs[i-1].Key)
		}
		kvs[kv.Key] = kv.Value
	}
	if !maps.Equal(kvs, s.KVs) {
		t.Errorf("List(%q) = %v, want the keys of Snapshot, %v", prefixes, got.KVs, s.KVs)
	}
	if got.Rev < s.Rev {
		t.Errorf("List(%q) at revision %d, before Snapshot's %d", prefixes, got.Rev, s.Rev)
	}
}

// pick returns the entries of m at keys.
func pick(m map[string]string, keys ...string) map[string]string {
	out := make(map[string]string, len(keys))
	for _, k := range keys {
		out[k] = m[k]
	}
	return out
}

func runWatch(t *testing.T, h Harness) {
	t.Run("AfterZero", func(t *testing.T) {
		b := open(t, h)
		putAll(t, h, seed)
		s := snapshot(t, b, "/kvconftest")
		ctx, cancel := context.WithTimeout(t.Context(), timeout)
		defer cancel()
		u, err := b.(backends.Watcher).Watch(ctx, []string{"/kvconftest"}, 0)
		if err != nil {
			t.Fatalf("Watch(after=0): %v", err)
		}
		if u.Rev == 0 {
			// Watch(after=0) returns at once: with no revision to wait
			// from, a watch loop would spin.
			t.Errorf("Watch(after=0).Rev = 0, want the current revision")
		}
		if u.Rev < s.Rev {
			t.Errorf("Watch(after=0).Rev = %d, older than the snapshot's %d", u.Rev, s.Rev)
		}
		if len(u.Changes) != 0 || u.Full != nil {
			t.Errorf("Watch(after=0) = %+v, want the revision only", u)
		}
	})
	t.Run("WakesOnPut", func(t *testing.T) {
		b := open(t, h)
		putAll(t, h, pick(seed, "/kvconftest/app/db/host"))
		watchFor(t, h, b, "/kvconftest/app/db/port", "5433", false)
	})
	t.Run("WakesOnDelete", func(t *testing.T) {
		b := open(t, h)
		putAll(t, h, pick(seed, "/kvconftest/app/db/host", "/kvconftest/app/db/port"))
		watchFor(t, h, b, "/kvconftest/app/db/port", "", true)
	})
	t.Run("CancelUnblocks", func(t *testing.T) {
		b := open(t, h)
		putAll(t, h, seed)
		w := b.(backends.Watcher)
		u, err := w.Watch(t.Context(), []string{"/kvconftest"}, 0)
		if err != nil {
			t.Fatalf("Watch(after=0): %v", err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		// Not waited for when it hangs: the test fails then, and goleak
		// reports the goroutine.
		done := make(chan error, 1)
		go func() {
			after := u.Rev
			for {
				u, err := w.Watch(ctx, []string{"/kvconftest"}, after)
				if err != nil {
					done <- err
					return
				}
				after = max(after, u.Rev) // a spurious return: watch again
			}
		}()
		time.Sleep(50 * time.Millisecond) // let Watch block
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Watch after cancel: err = %v, want context.Canceled", err)
			}
		case <-time.After(timeout):
			t.Fatalf("Watch still blocked %v after its context was cancelled", timeout)
		}
	})
}

// watchFor starts watching /kvconftest/app, then puts key=value (or deletes
// key) along with a key outside that prefix, and checks that Watch reports
// the change, and only changes under its prefix.
func watchFor(t *testing.T, h Harness, b backends.Backend, key, value string, del bool) {
	t.Helper()
	w := b.(backends.Watcher)
	prefixes := []string{"/kvconftest/app"}
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	u, err := w.Watch(ctx, prefixes, 0)
	if err != nil {
		t.Fatalf("Watch(after=0): %v", err)
	}
	start := u.Rev

	// Not waited for when it hangs: the test fails then, and goleak reports
	// the goroutine.
	done := make(chan error, 1)
	go func() { done <- awaitChange(ctx, b, prefixes, start, key, value, del) }()

	time.Sleep(50 * time.Millisecond) // let Watch block
	h.Put(t, "/kvconftest/other/key", "outside the watched prefix")
	if del {
		h.Delete(t, key)
	} else {
		h.Put(t, key, value)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(2 * timeout):
		t.Fatalf("Watch still blocked %v after the change and its context's deadline", 2*timeout)
	}
}

// awaitChange watches prefixes from revision after until an update shows key
// set to value (or deleted, if del), and checks every update on the way.
func awaitChange(ctx context.Context, b backends.Backend, prefixes []string, after uint64, key, value string, del bool) error {
	w := b.(backends.Watcher)
	for {
		u, err := w.Watch(ctx, prefixes, after)
		if err != nil {
			return fmt.Errorf("Watch(after=%d) did not report the change to %s: %w", after, key, err)
		}
		if u.Rev < after {
			return fmt.Errorf("Watch(after=%d) returned older revision %d", after, u.Rev)
		}
		after = u.Rev
		var kvs map[string]string
		switch {
		case u.Full != nil:
			kvs = u.Full.KVs
		case len(u.Changes) > 0:
			found := false
			for _, c := range u.Changes {
				if !under(c.Key, prefixes) {
					return fmt.Errorf("Watch(%q) returned a change to %s, outside its prefixes", prefixes, c.Key)
				}
				if c.Key == key && c.Deleted == del && (del || c.Value == value) {
					found = true
				}
			}
			if found {
				return nil
			}
			continue
		default: // a spurious return, or a backend that only gives revisions
			s, err := b.Snapshot(ctx, prefixes)
			if err != nil {
				return fmt.Errorf("Snapshot: %w", err)
			}
			kvs = s.KVs
		}
		for k := range kvs {
			if !under(k, prefixes) {
				return fmt.Errorf("Watch(%q) returned key %s, outside its prefixes", prefixes, k)
			}
		}
		if v, ok := kvs[key]; ok != del && (del || v == value) {
			return nil
		}
	}
}
