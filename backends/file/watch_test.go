package file_test

import (
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
	"testing"
	"time"

	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/backends/file"
)

// waitLimit bounds the waits for Watch to return, so that a hung watch fails
// the test instead of blocking it.
const waitLimit = 10 * time.Second

// blockedFor is how long Watch must stay blocked in the negative checks. It
// is well above the debounce, so that a wrong wake-up would come before it;
// it is no speed requirement.
const blockedFor = 500 * time.Millisecond

// replaceFile writes data to a temporary file next to name, then renames it
// over name, as editors and configuration tools do.
func replaceFile(t *testing.T, name, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp*")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(data); err != nil {
		t.Fatal(errors.Join(err, f.Close()))
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(f.Name(), name); err != nil {
		t.Fatal(err)
	}
}

func remove(t *testing.T, name string) {
	t.Helper()
	if err := os.RemoveAll(name); err != nil {
		t.Fatal(err)
	}
}

// follower watches a client as the core does, from revision to revision,
// keeping the content under its prefixes.
type follower struct {
	c        *file.Client
	prefixes []string
	rev      uint64
	kvs      map[string]string
}

// follow starts watching c: the fsnotify watch runs when it returns.
func follow(t *testing.T, c *file.Client, prefixes ...string) *follower {
	t.Helper()
	u, err := c.Watch(t.Context(), prefixes, 0)
	if err != nil {
		t.Fatalf("Watch(after=0): %v", err)
	}
	s, err := c.Snapshot(t.Context(), prefixes)
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	if s.Rev != u.Rev {
		t.Fatalf("Snapshot at revision %d, Watch(after=0) at %d, with no change", s.Rev, u.Rev)
	}
	return &follower{c: c, prefixes: prefixes, rev: u.Rev, kvs: s.KVs}
}

// next waits for the next update and returns the changes it brings: those
// it lists or, when it is a full snapshot, those between the two contents.
func (f *follower) next(t *testing.T) []backends.Change {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	u, err := f.c.Watch(ctx, f.prefixes, f.rev)
	if err != nil {
		t.Fatalf("Watch(after=%d): %v", f.rev, err)
	}
	return f.apply(t, u)
}

// collect calls [follower.next] until the changes brought name n keys,
// and returns them merged, the later change of a key winning, sorted by
// key. A change made of several file operations (a directory removed
// file by file) may come in more than one update on a loaded machine:
// the watch settles on a quiet period, and a slow remover can outlast it.
func (f *follower) collect(t *testing.T, n int) []backends.Change {
	t.Helper()
	byKey := map[string]backends.Change{}
	for len(byKey) < n {
		for _, c := range f.next(t) {
			byKey[c.Key] = c
		}
	}
	return slices.SortedFunc(maps.Values(byKey), func(a, b backends.Change) int { return strings.Compare(a.Key, b.Key) })
}

func (f *follower) apply(t *testing.T, u backends.Update) []backends.Change {
	t.Helper()
	if u.Rev <= f.rev {
		t.Fatalf("Watch(after=%d) returned revision %d", f.rev, u.Rev)
	}
	f.rev = u.Rev
	changes := u.Changes
	if u.Full != nil {
		changes = changesBetween(f.kvs, u.Full.KVs)
	}
	for _, c := range changes {
		if !slices.ContainsFunc(f.prefixes, func(p string) bool { return strings.HasPrefix(c.Key, p) }) {
			t.Errorf("Watch(%q) returned %s, outside its prefixes", f.prefixes, c.Key)
		}
		if c.Deleted {
			delete(f.kvs, c.Key)
		} else {
			f.kvs[c.Key] = c.Value
		}
	}
	return changes
}

// want checks that the next update brings want.
func (f *follower) want(t *testing.T, want ...backends.Change) {
	t.Helper()
	if got := f.next(t); !slices.Equal(got, want) {
		t.Errorf("Watch brought %v, want %v", got, want)
	}
}

// wantErr checks that Watch returns an error that passes ok.
func (f *follower) wantErr(t *testing.T, ok func(error) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	if u, err := f.c.Watch(ctx, f.prefixes, f.rev); !ok(err) {
		t.Fatalf("Watch(after=%d) = %+v, %v; want another error", f.rev, u, err)
	}
}

// still checks that Watch stays blocked for blockedFor.
func (f *follower) still(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), blockedFor)
	defer cancel()
	u, err := f.c.Watch(ctx, f.prefixes, f.rev)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Watch(after=%d) = %+v, %v; want it still blocked", f.rev, u, err)
	}
}

// changesBetween returns the changes that turn old into cur, sorted by key.
func changesBetween(old, cur map[string]string) []backends.Change {
	var changes []backends.Change
	for _, k := range slices.Sorted(maps.Keys(cur)) {
		if v, ok := old[k]; !ok || v != cur[k] {
			changes = append(changes, backends.Change{Key: k, Value: cur[k]})
		}
	}
	for k := range old {
		if _, ok := cur[k]; !ok {
			changes = append(changes, backends.Change{Key: k, Deleted: true})
		}
	}
	slices.SortFunc(changes, func(a, b backends.Change) int { return strings.Compare(a.Key, b.Key) })
	return changes
}

func set(key, value string) backends.Change { return backends.Change{Key: key, Value: value} }
func del(key string) backends.Change        { return backends.Change{Key: key, Deleted: true} }

func TestWatchFile(t *testing.T) {
	t.Parallel()
	const initial = "app: {a: 1, b: 2}\nother: 1\n"
	tests := []struct {
		name   string
		change func(t *testing.T, name string)
		want   []backends.Change
	}{
		{
			name:   "write in place",
			change: func(t *testing.T, name string) { writeFile(t, name, "app: {a: 1, b: 3}\nother: 1\n") },
			want:   []backends.Change{set("/app/b", "3")},
		},
		{
			name:   "replace by rename",
			change: func(t *testing.T, name string) { replaceFile(t, name, "app: {a: 1, c: 4}\nother: 1\n") },
			want:   []backends.Change{del("/app/b"), set("/app/c", "4")},
		},
		{
			name: "delete and create again",
			change: func(t *testing.T, name string) {
				remove(t, name)
				writeFile(t, name, "app: {a: 5}\n")
			},
			want: []backends.Change{set("/app/a", "5"), del("/app/b")},
		},
		{
			name: "backup by rename, then write", // vim's default
			change: func(t *testing.T, name string) {
				if err := os.Rename(name, name+"~"); err != nil {
					t.Fatal(err)
				}
				writeFile(t, name, "app: {a: 1, b: 2, d: x}\nother: 1\n")
				remove(t, name+"~")
			},
			want: []backends.Change{set("/app/d", "x")},
		},
		{
			name:   "empty the file",
			change: func(t *testing.T, name string) { writeFile(t, name, "") },
			want:   []backends.Change{del("/app/a"), del("/app/b")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			name := filepath.Join(t.TempDir(), "data.yaml")
			writeFile(t, name, initial)
			f := follow(t, newClient(t, file.Config{File: []string{name}}), "/app")
			tt.change(t, name)
			f.want(t, tt.want...)
			f.still(t) // one save, one update
		})
	}
}

// TestWatchDelta checks that Watch gives the changes, not a full snapshot,
// when it knows the content at the revision it is given.
func TestWatchDelta(t *testing.T) {
	t.Parallel()
	name := filepath.Join(t.TempDir(), "data.yaml")
	writeFile(t, name, "app: {a: 1, b: 2}\n")
	c := newClient(t, file.Config{File: []string{name}})
	// The file is read again a second after the change: Watch is called
	// long before.
	file.SetDebounce(c, time.Second, 10*time.Second)
	f := follow(t, c, "/app/")
	replaceFile(t, name, "app: {a: 1, c: 3}\n")
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	u, err := c.Watch(ctx, f.prefixes, f.rev)
	if err != nil {
		t.Fatal(err)
	}
	want := backends.Update{Rev: f.rev + 1, Changes: []backends.Change{del("/app/b"), set("/app/c", "3")}}
	if u.Full != nil || u.Rev != want.Rev || !slices.Equal(u.Changes, want.Changes) {
		t.Errorf("Watch = %+v, want %+v", u, want)
	}
}

// TestWatchLog checks Watch from revisions older than the current one: it
// gives the changes from its log, and a full snapshot once the log no
// longer goes back that far.
func TestWatchLog(t *testing.T) {
	t.Parallel()
	name := filepath.Join(t.TempDir(), "data.yaml")
	// content returns n keys, /k/0 to /k/n-1, with value v, and /app/a.
	content := func(n int, v, a string) string {
		var b strings.Builder
		fmt.Fprintf(&b, "app: {a: %s}\nk:\n", a)
		for range n {
			fmt.Fprintf(&b, "  - %s\n", v)
		}
		return b.String()
	}
	writeFile(t, name, content(1000, "x", "1"))
	c := newClient(t, file.Config{File: []string{name}})
	f := follow(t, c, "/app")
	// Changes read by Snapshot, one after the other, before any Watch
	// sees them.
	var revs []uint64
	for i, step := range []struct{ v, a string }{{"y", "1"}, {"y", "2"}, {"z", "2"}, {"w", "2"}, {"w", "1"}} {
		replaceFile(t, name, content(1000, step.v, step.a))
		s, err := c.Snapshot(t.Context(), []string{"/"})
		if err != nil {
			t.Fatal(err)
		}
		if s.Rev != f.rev+uint64(i)+1 {
			t.Fatalf("step %d: revision %d, want %d", i, s.Rev, f.rev+uint64(i)+1)
		}
		revs = append(revs, s.Rev)
	}
	last := revs[len(revs)-1]
	full := &backends.Snapshot{Rev: last, KVs: map[string]string{"/app/a": "1"}}
	back := []backends.Change{set("/app/a", "1")}
	tests := []struct {
		name  string
		after uint64
		want  backends.Update // none: Watch stays blocked
	}{
		// The revisions made 1000 + 1 + 1000 + 1000 + 1 changes, more
		// than the keys (1001) plus 1024: the log lost the first one.
		{name: "before the log", after: f.rev, want: backends.Update{Rev: last, Full: full}},
		{name: "start of the log, changed and changed back", after: revs[0]},
		{name: "in the log", after: revs[1], want: backends.Update{Rev: last, Changes: back}},
		{name: "in the log, after unrelated changes", after: revs[2], want: backends.Update{Rev: last, Changes: back}},
		{name: "current revision", after: last},
		{name: "future revision", after: last + 10, want: backends.Update{Rev: last, Full: full}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), blockedFor)
			defer cancel()
			u, err := c.Watch(ctx, f.prefixes, tt.after)
			if tt.want.Rev == 0 {
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("Watch(after=%d) = %+v, %v; want it still blocked", tt.after, u, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if u.Rev != tt.want.Rev || !slices.Equal(u.Changes, tt.want.Changes) || (u.Full == nil) != (tt.want.Full == nil) ||
				u.Full != nil && (u.Full.Rev != tt.want.Full.Rev || !maps.Equal(u.Full.KVs, tt.want.Full.KVs)) {
				t.Errorf("Watch(after=%d) = %+v, want %+v", tt.after, u, tt.want)
			}
		})
	}
}

func TestWatchPrefixes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	name, other := filepath.Join(dir, "data.yaml"), filepath.Join(dir, "other.yaml")
	writeFile(t, name, "app: {a: 1}\nother: 1\n")
	writeFile(t, other, "more: 1\n")
	f := follow(t, newClient(t, file.Config{File: []string{name, other}}), "/app", "/web/")
	steps := []struct {
		name   string
		change func(t *testing.T)
		want   []backends.Change // none: Watch stays blocked
	}{
		{name: "key outside the prefixes", change: func(t *testing.T) { writeFile(t, name, "app: {a: 1}\nother: 2\n") }},
		{name: "other file, outside the prefixes", change: func(t *testing.T) { replaceFile(t, other, "more: 2\n") }},
		{name: "same content", change: func(t *testing.T) { replaceFile(t, name, "other: 2\napp:\n  a: 1\n") }},
		{name: "unrelated file", change: func(t *testing.T) { writeFile(t, filepath.Join(dir, "unrelated.yaml"), "app: {a: 9}\n") }},
		{
			name:   "key under a prefix",
			change: func(t *testing.T) { writeFile(t, name, "app: {a: 2}\nother: 3\n") },
			want:   []backends.Change{set("/app/a", "2")},
		},
		{
			name:   "other file, under a prefix",
			change: func(t *testing.T) { replaceFile(t, other, "web: {url: x}\nweb2: y\n") },
			want:   []backends.Change{set("/web/url", "x")},
		},
	}
	for _, st := range steps {
		st.change(t)
		if st.want == nil {
			f.still(t)
			continue
		}
		if got := f.collect(t, len(st.want)); !slices.Equal(got, st.want) {
			t.Errorf("%s: Watch brought %v, want %v", st.name, got, st.want)
		}
	}
}

func TestWatchDirectory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.yaml"), "a: 1\n")
	f := follow(t, newClient(t, file.Config{File: []string{dir}, Filter: "*.yaml"}), "/")
	steps := []struct {
		name   string
		change func(t *testing.T)
		want   []backends.Change // none: Watch stays blocked
	}{
		{
			name:   "file that does not match the filter",
			change: func(t *testing.T) { writeFile(t, filepath.Join(dir, "notes.txt"), "a: 2\n") },
		},
		{
			name:   "new file",
			change: func(t *testing.T) { replaceFile(t, filepath.Join(dir, "b.yaml"), "b: 1\n") },
			want:   []backends.Change{set("/b", "1")},
		},
		{
			name:   "new directory",
			change: func(t *testing.T) { writeFile(t, filepath.Join(dir, "sub", "c.yaml"), "c: 1\n") },
			want:   []backends.Change{set("/c", "1")},
		},
		{
			name:   "file in the new directory",
			change: func(t *testing.T) { writeFile(t, filepath.Join(dir, "sub", "d.yaml"), "d: 1\n") },
			want:   []backends.Change{set("/d", "1")},
		},
		{
			name:   "new nested directories",
			change: func(t *testing.T) { writeFile(t, filepath.Join(dir, "sub", "x", "y", "e.yaml"), "e: 1\n") },
			want:   []backends.Change{set("/e", "1")},
		},
		{
			name:   "write in a nested directory",
			change: func(t *testing.T) { writeFile(t, filepath.Join(dir, "sub", "x", "y", "e.yaml"), "e: 2\n") },
			want:   []backends.Change{set("/e", "2")},
		},
		{
			name:   "file that does not match, in a new directory",
			change: func(t *testing.T) { writeFile(t, filepath.Join(dir, "docs", "README"), "a: 3\n") },
		},
		{
			name:   "directory moved in",
			change: func(t *testing.T) { moveIn(t, filepath.Join(dir, "moved"), map[string]string{"f.yaml": "f: 1\n"}) },
			want:   []backends.Change{set("/f", "1")},
		},
		{
			name:   "file in the directory moved in",
			change: func(t *testing.T) { replaceFile(t, filepath.Join(dir, "moved", "f.yaml"), "f: 2\n") },
			want:   []backends.Change{set("/f", "2")},
		},
		{
			name:   "directory removed",
			change: func(t *testing.T) { remove(t, filepath.Join(dir, "sub")) },
			want:   []backends.Change{del("/c"), del("/d"), del("/e")},
		},
		{
			name:   "directory created again",
			change: func(t *testing.T) { writeFile(t, filepath.Join(dir, "sub", "c.yaml"), "c: 2\n") },
			want:   []backends.Change{set("/c", "2")},
		},
		{
			name:   "file in the directory created again",
			change: func(t *testing.T) { writeFile(t, filepath.Join(dir, "sub", "c.yaml"), "c: 3\n") },
			want:   []backends.Change{set("/c", "3")},
		},
	}
	for _, st := range steps {
		st.change(t)
		if st.want == nil {
			f.still(t)
			continue
		}
		if got := f.collect(t, len(st.want)); !slices.Equal(got, st.want) {
			t.Errorf("%s: Watch brought %v, want %v", st.name, got, st.want)
		}
	}
}

// moveIn makes a directory with files elsewhere on the same file system,
// then renames it to name.
func moveIn(t *testing.T, name string, files map[string]string) {
	t.Helper()
	tmp, err := os.MkdirTemp(filepath.Dir(filepath.Dir(name)), "staging")
	if err != nil {
		t.Fatal(err)
	}
	for n, data := range files {
		writeFile(t, filepath.Join(tmp, n), data)
	}
	if err := os.Rename(tmp, name); err != nil {
		t.Fatal(err)
	}
}

func TestWatchReadErrors(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "conf")
	name := filepath.Join(dir, "data.yaml")
	c := newClient(t, file.Config{File: []string{name}})

	if _, err := c.Watch(t.Context(), []string{"/"}, 0); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Watch(after=0) on a missing file: err = %v, want fs.ErrNotExist", err)
	}
	writeFile(t, name, "a: 1\n")
	f := follow(t, c, "/")

	notExist := func(err error) bool { return errors.Is(err, fs.ErrNotExist) }
	parseError := func(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "file: parse "+name+": ") }
	steps := []struct {
		name    string
		change  func(t *testing.T)
		wantErr func(error) bool  // Watch returns an error that passes it
		want    []backends.Change // else Watch brings these changes, or stays blocked if none
	}{
		{name: "file removed", change: func(t *testing.T) { remove(t, name) }, wantErr: notExist},
		{name: "still missing: Watch reads again and fails", change: func(*testing.T) {}, wantErr: notExist},
		{
			name:   "file back, with the same content",
			change: func(t *testing.T) { writeFile(t, name, "a: 1\n") },
		},
		{
			name:   "file written after it came back",
			change: func(t *testing.T) { writeFile(t, name, "a: 2\n") },
			want:   []backends.Change{set("/a", "2")},
		},
		{name: "parse error", change: func(t *testing.T) { replaceFile(t, name, "a: [\n") }, wantErr: parseError},
		{
			name:   "parse error fixed",
			change: func(t *testing.T) { replaceFile(t, name, "a: 3\n") },
			want:   []backends.Change{set("/a", "3")},
		},
		{name: "directory removed", change: func(t *testing.T) { remove(t, dir) }, wantErr: notExist},
		{
			name:   "directory back",
			change: func(t *testing.T) { writeFile(t, name, "a: 4\n") },
			want:   []backends.Change{set("/a", "4")},
		},
		{
			name:   "write in the directory that came back",
			change: func(t *testing.T) { writeFile(t, name, "a: 5\n") },
			want:   []backends.Change{set("/a", "5")},
		},
	}
	for _, st := range steps {
		st.change(t)
		switch {
		case st.wantErr != nil:
			f.wantErr(t, st.wantErr)
		case st.want == nil:
			f.still(t)
		default:
			if got := f.next(t); !slices.Equal(got, st.want) {
				t.Errorf("%s: Watch brought %v, want %v", st.name, got, st.want)
			}
		}
	}
}

// TestWatchSymlinkSwap switches a listed file to new content as Kubernetes
// does in ConfigMap volumes: data.yaml is a link to ..data/data.yaml,
// ..data a link to a directory of the version, which is replaced by
// renaming a new link over ..data, then removed.
func TestWatchSymlinkSwap(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "..v1", "data.yaml"), "a: 1\n")
	for link, target := range map[string]string{"..data": "..v1", "data.yaml": "..data/data.yaml"} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Skipf("no symbolic links here: %v", err)
		}
	}
	f := follow(t, newClient(t, file.Config{File: []string{filepath.Join(dir, "data.yaml")}}), "/")
	for i := 2; i <= 3; i++ {
		old, cur := fmt.Sprintf("..v%d", i-1), fmt.Sprintf("..v%d", i)
		writeFile(t, filepath.Join(dir, cur, "data.yaml"), fmt.Sprintf("a: %d\n", i))
		if err := os.Symlink(cur, filepath.Join(dir, "..data_tmp")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
		remove(t, filepath.Join(dir, old))
		f.want(t, set("/a", fmt.Sprint(i)))
	}
}

func TestWatchBurst(t *testing.T) {
	t.Parallel()
	name := filepath.Join(t.TempDir(), "data.yaml")
	writeFile(t, name, "n: start\n")
	c := newClient(t, file.Config{File: []string{name}})
	// Longer than the default, so that a slow machine still writes the
	// burst in one quiet period.
	file.SetDebounce(c, 500*time.Millisecond, 10*time.Second)
	f := follow(t, c, "/")
	start := f.rev
	for i := range 20 {
		writeFile(t, name, fmt.Sprintf("n: %d\n", i))
	}
	f.want(t, set("/n", "19"))
	if f.rev != start+1 {
		t.Errorf("revision went from %d to %d, want one read", start, f.rev)
	}
	f.still(t)
}

func TestWatchConcurrent(t *testing.T) {
	t.Parallel()
	name := filepath.Join(t.TempDir(), "data.yaml")
	writeFile(t, name, "app: {a: 1}\nweb: {b: 1}\n")
	c := newClient(t, file.Config{File: []string{name}})
	u, err := c.Watch(t.Context(), []string{"/"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	prefixes := [][]string{{"/app"}, {"/web"}, {"/app", "/web"}, {"/"}}
	got := make([]backends.Update, 4*len(prefixes))
	errs := make([]error, len(got))
	var wg sync.WaitGroup
	for i := range got {
		wg.Go(func() { got[i], errs[i] = c.Watch(ctx, prefixes[i%len(prefixes)], u.Rev) })
	}
	replaceFile(t, name, "app: {a: 2}\nweb: {b: 2}\n")
	wg.Wait()
	for i := range got {
		p := prefixes[i%len(prefixes)]
		want := []backends.Change{set("/app/a", "2"), set("/web/b", "2")}
		want = slices.DeleteFunc(want, func(c backends.Change) bool {
			return !slices.ContainsFunc(p, func(p string) bool { return strings.HasPrefix(c.Key, p) })
		})
		f := &follower{prefixes: p, rev: u.Rev, kvs: map[string]string{"/app/a": "1", "/web/b": "1"}}
		if errs[i] != nil {
			t.Errorf("Watch(%q): %v", p, errs[i])
		} else if changes := f.apply(t, got[i]); !slices.Equal(changes, want) {
			t.Errorf("Watch(%q) brought %v, want %v", p, changes, want)
		}
	}
}

func TestWatchClose(t *testing.T) {
	t.Parallel()
	name := filepath.Join(t.TempDir(), "data.yaml")
	writeFile(t, name, "a: 1\n")
	c := newClient(t, file.Config{File: []string{name}})
	u, err := c.Watch(t.Context(), []string{"/"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Watch(t.Context(), []string{"/"}, u.Rev)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond) // let Watch block; it returns the same otherwise
	for range 2 {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
	select {
	case err := <-done:
		if !errors.Is(err, backends.ErrClosed) {
			t.Errorf("pending Watch after Close: err = %v, want backends.ErrClosed", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Watch still blocked after Close")
	}
	if _, err := c.Watch(t.Context(), []string{"/"}, u.Rev); !errors.Is(err, backends.ErrClosed) {
		t.Errorf("Watch after Close: err = %v, want backends.ErrClosed", err)
	}
	// TestMain checks that the watch left no goroutine behind.
}

func TestWatchCanceled(t *testing.T) {
	t.Parallel()
	name := filepath.Join(t.TempDir(), "data.yaml")
	writeFile(t, name, "a: 1\n")
	c := newClient(t, file.Config{File: []string{name}})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := c.Watch(ctx, []string{"/"}, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("Watch with a cancelled context: err = %v, want context.Canceled", err)
	}
}
