package backendtest_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/backends/backendtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestFakeConformance(t *testing.T) {
	t.Parallel()
	var f *backendtest.Fake
	backendtest.Run(t, backendtest.Harness{
		Open: func(*testing.T) backends.Backend {
			f = backendtest.NewFake()
			return f
		},
		Put:    func(_ *testing.T, key, value string) { f.Set(key, value) },
		Delete: func(_ *testing.T, key string) { f.Delete(key) },
	})
}

func TestFakeRevisions(t *testing.T) {
	t.Parallel()
	f := backendtest.NewFake()
	if got := f.Rev(); got != 1 {
		t.Fatalf("new fake at revision %d, want 1", got)
	}
	f.Set("/a", "1")
	f.Set("/a", "1") // a put of the same value is still a change, as in etcd
	f.Delete("/missing")
	f.Delete("/a")
	if got := f.Rev(); got != 4 {
		t.Errorf("revision after 2 sets, 1 delete and 1 no-op delete = %d, want 4", got)
	}
	s, err := f.Snapshot(t.Context(), []string{"/"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Rev != 4 || len(s.KVs) != 0 {
		t.Errorf("Snapshot = %+v, want rev 4 and no key", s)
	}
}

func TestFakeWatchDelta(t *testing.T) {
	t.Parallel()
	f := backendtest.NewFake()
	f.Set("/app/a", "1")
	start := f.Rev()
	f.Set("/other", "x")
	f.Set("/app/b", "2")
	f.Set("/app/a", "3")
	f.Delete("/app/b")

	u, err := f.Watch(t.Context(), []string{"/app"}, start)
	if err != nil {
		t.Fatal(err)
	}
	want := []backends.Change{
		{Key: "/app/b", Value: "2"},
		{Key: "/app/a", Value: "3"},
		{Key: "/app/b", Deleted: true},
	}
	if u.Rev != f.Rev() || u.Full != nil || !slices.Equal(u.Changes, want) {
		t.Errorf("Watch = %+v, want rev %d and changes %+v", u, f.Rev(), want)
	}

	// From the current revision, nothing is pending: Watch blocks.
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if _, err := f.Watch(ctx, []string{"/app"}, u.Rev); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Watch with nothing pending: err = %v, want context.DeadlineExceeded", err)
	}
}

func TestFakeWatchCompacted(t *testing.T) {
	t.Parallel()
	f := backendtest.NewFake()
	f.Set("/app/a", "1")
	start := f.Rev()
	f.Set("/app/a", "2")
	f.Set("/other", "x")
	f.Compact()

	u, err := f.Watch(t.Context(), []string{"/app"}, start)
	if err != nil {
		t.Fatal(err)
	}
	if u.Full == nil || u.Changes != nil {
		t.Fatalf("Watch from before the compaction = %+v, want a full snapshot", u)
	}
	if want := map[string]string{"/app/a": "2"}; u.Rev != f.Rev() || u.Full.Rev != u.Rev || !maps.Equal(u.Full.KVs, want) {
		t.Errorf("Watch = %+v (full %+v), want rev %d and %v", u, *u.Full, f.Rev(), want)
	}

	// From the compaction on, deltas again.
	f.Set("/app/b", "3")
	u, err = f.Watch(t.Context(), []string{"/app"}, u.Rev)
	if err != nil {
		t.Fatal(err)
	}
	if want := []backends.Change{{Key: "/app/b", Value: "3"}}; u.Full != nil || !slices.Equal(u.Changes, want) {
		t.Errorf("Watch after the compaction = %+v, want %+v", u, want)
	}
}

func TestFakeWatchWakesEveryWatcher(t *testing.T) {
	t.Parallel()
	f := backendtest.NewFake()
	rev := f.Rev()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	const n = 4
	results := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			u, err := f.Watch(ctx, []string{"/app"}, rev)
			if err == nil && (len(u.Changes) != 1 || u.Changes[0].Key != "/app/x") {
				err = errors.New("unexpected update")
			}
			results <- err
		})
	}
	time.Sleep(20 * time.Millisecond) // let the watchers block
	f.Set("/app/x", "1")
	wg.Wait()
	close(results)
	for err := range results {
		if err != nil {
			t.Error(err)
		}
	}
}

func TestFakeCloseWakesWatchers(t *testing.T) {
	t.Parallel()
	f := backendtest.NewFake()
	done := make(chan error, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		_, err := f.Watch(t.Context(), []string{"/"}, f.Rev())
		done <- err
	})
	time.Sleep(20 * time.Millisecond) // let the watcher block
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, backends.ErrClosed) {
			t.Errorf("Watch woken by Close: err = %v, want backends.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not wake Watch")
	}

	// Set still works on a closed fake, and is visible through KVs.
	f.Set("/a", "1")
	if got := f.KVs(); got["/a"] != "1" {
		t.Errorf("KVs after Set on a closed fake = %v", got)
	}
}
