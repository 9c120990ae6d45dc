package funcs_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"
	texttemplate "text/template"

	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/funcs"
)

// storeKVs is the data most store tests read. It has keys that are
// prefixes of one another as strings but not as paths ("/a" and "/ab",
// "/app/db" and "/app/dbx"), a key that is also a directory ("/a"), and
// keys at several depths.
var storeKVs = map[string]string{
	"/a":            "1",
	"/a/b":          "2",
	"/a/c/d":        "3",
	"/a/c/e":        "4",
	"/ab":           "5",
	"/ab/x":         "6",
	"/app/db/host":  "db.local",
	"/app/db/port":  "5432",
	"/app/dbx/user": "admin",
	"/app/web/url":  "http://web",
	"/top":          "7",
}

func kvs(pairs ...string) []funcs.KV {
	out := []funcs.KV{}
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, funcs.KV{Key: pairs[i], Value: pairs[i+1]})
	}
	return out
}

// views returns the stores the table tests run against, by name.
func views() map[string]*funcs.Store {
	s := funcs.NewStore(storeKVs)
	return map[string]*funcs.Store{
		"plain":              s,
		"root=/":             s.View("/", nil),
		"root=empty":         s.View("", nil),
		"root=/app":          s.View("/app", nil),
		"root=/app/":         s.View("/app/", nil),
		"app keys=db":        s.View("/app", []string{"/db"}),
		"app keys=db,web":    s.View("/app", []string{"/web", "/db", "/db/host"}),
		"app keys=db/h":      s.View("/app", []string{"db/h"}),
		"root=/ keys=a":      s.View("/", []string{"/a"}),
		"root=/ keys=top,ab": s.View("/", []string{"/top", "ab"}),
		"view of view":       s.View("/app", []string{"/db"}).View("/a", nil),
		"empty":              funcs.NewStore(nil),
		"list":               funcs.NewStoreList(sortedKVs(storeKVs)),
	}
}

// sortedKVs returns m as a list sorted by key.
func sortedKVs(m map[string]string) []backends.KV {
	out := make([]backends.KV, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, backends.KV{Key: k, Value: m[k]})
	}
	return out
}

// TestNewStoreList checks that a store built from a list, sorted or not,
// answers as one built from the same pairs in a map.
func TestNewStoreList(t *testing.T) {
	t.Parallel()
	sorted := sortedKVs(storeKVs)
	shuffled := slices.Clone(sorted)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	dup := append(slices.Clone(shuffled), backends.KV{Key: "/a", Value: "old"})
	slices.Reverse(dup) // "/a" first, then the right value later
	want := funcs.NewStore(storeKVs)
	for name, l := range map[string][]backends.KV{"sorted": sorted, "shuffled": shuffled, "duplicate": dup} {
		s := funcs.NewStoreList(l)
		if s.Len() != want.Len() {
			t.Errorf("%s: Len = %d, want %d", name, s.Len(), want.Len())
		}
		for _, p := range []string{"/*", "/a/*", "/a/*/*", "/app/*/*", "/*/*/*"} {
			got, _ := s.GetAll(p)
			w, _ := want.GetAll(p)
			if !slices.Equal(got, w) {
				t.Errorf("%s: GetAll(%q) = %v, want %v", name, p, got, w)
			}
		}
		for k, v := range storeKVs {
			if got, err := s.Get(k); err != nil || got != v {
				t.Errorf("%s: Get(%q) = %q, %v; want %q", name, k, got, err, v)
			}
		}
	}
}

func TestStoreGet(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		store string
		key   string
		want  string // "" with missing set
		miss  bool
	}{
		{name: "plain", store: "plain", key: "/a/b", want: "2"},
		{name: "dir key", store: "plain", key: "/a", want: "1"},
		{name: "sibling", store: "plain", key: "/ab", want: "5"},
		{name: "unclean", store: "plain", key: "a//b/", want: "2"},
		{name: "missing", store: "plain", key: "/a/x", miss: true},
		{name: "dir without key", store: "plain", key: "/a/c", miss: true},
		{name: "root key", store: "plain", key: "/", miss: true},
		{name: "root / sees all", store: "root=/", key: "/app/db/host", want: "db.local"},
		{name: "root empty sees all", store: "root=empty", key: "/top", want: "7"},
		{name: "root stripped", store: "root=/app", key: "/db/host", want: "db.local"},
		{name: "root trailing slash", store: "root=/app/", key: "/web/url", want: "http://web"},
		{name: "full key under root", store: "root=/app", key: "/app/db/host", miss: true},
		{name: "outside root", store: "root=/app", key: "/top", miss: true},
		{name: "keys filter in", store: "app keys=db", key: "/db/port", want: "5432"},
		{name: "keys plain prefix", store: "app keys=db", key: "/dbx/user", want: "admin"},
		{name: "keys filter out", store: "app keys=db", key: "/web/url", miss: true},
		{name: "several keys", store: "app keys=db,web", key: "/web/url", want: "http://web"},
		{name: "relative keys", store: "app keys=db/h", key: "/db/host", want: "db.local"},
		{name: "relative keys out", store: "app keys=db/h", key: "/db/port", miss: true},
		{name: "keys a sees ab", store: "root=/ keys=a", key: "/ab/x", want: "6"},
		{name: "keys a sees app, a plain prefix", store: "root=/ keys=a", key: "/app/db/host", want: "db.local"},
		{name: "keys a hides top", store: "root=/ keys=a", key: "/top", miss: true},
		{name: "keys top,ab", store: "root=/ keys=top,ab", key: "/ab/x", want: "6"},
		{name: "keys top,ab hides a", store: "root=/ keys=top,ab", key: "/a/b", miss: true},
		{name: "keys top,ab hides app", store: "root=/ keys=top,ab", key: "/app/db/host", miss: true},
		{name: "view of view is over the store", store: "view of view", key: "/b", want: "2"},
		{name: "empty", store: "empty", key: "/a", miss: true},
	}
	vs := views()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := vs[tt.store]
			got, err := s.Get(tt.key)
			if tt.miss {
				var ke *funcs.KeyError
				if !errors.As(err, &ke) || ke.Key != tt.key {
					t.Fatalf("Get(%q) error = %v, want *KeyError{%q}", tt.key, err, tt.key)
				}
				if !errors.Is(err, funcs.ErrNotExist) {
					t.Errorf("Get(%q) error %v does not wrap ErrNotExist", tt.key, err)
				}
				if s.Exists(tt.key) {
					t.Errorf("Exists(%q) = true for a missing key", tt.key)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Get(%q) = %q, %v; want %q", tt.key, got, err, tt.want)
			}
			if !s.Exists(tt.key) {
				t.Errorf("Exists(%q) = false for a key Get finds", tt.key)
			}
		})
	}
}

func TestStoreGetAll(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		store   string
		pattern string
		want    []funcs.KV
		values  []string // GetAllValues; nil means the values of want, sorted
	}{
		{name: "star", store: "plain", pattern: "/a/*", want: kvs("/a/b", "2")},
		{name: "star does not cross slash", store: "plain", pattern: "/a/*/*", want: kvs("/a/c/d", "3", "/a/c/e", "4")},
		{name: "a vs ab", store: "plain", pattern: "/a*", want: kvs("/a", "1", "/ab", "5")},
		{name: "literal", store: "plain", pattern: "/a", want: kvs("/a", "1")},
		{name: "literal is not a prefix", store: "plain", pattern: "/a/c", want: kvs()},
		{name: "question mark", store: "plain", pattern: "/a/c/?", want: kvs("/a/c/d", "3", "/a/c/e", "4")},
		{name: "class", store: "plain", pattern: "/a/c/[e-z]", want: kvs("/a/c/e", "4")},
		{name: "escape", store: "plain", pattern: `/a/\b`, want: kvs("/a/b", "2")},
		{name: "top level", store: "plain", pattern: "/*", want: kvs("/a", "1", "/ab", "5", "/top", "7")},
		{name: "trailing slash matches nothing", store: "plain", pattern: "/a/*/", want: kvs()},
		{name: "no match", store: "plain", pattern: "/zzz/*", want: kvs()},
		{name: "sorted by key, values by value", store: "plain", pattern: "/app/*/*",
			want:   kvs("/app/db/host", "db.local", "/app/db/port", "5432", "/app/dbx/user", "admin", "/app/web/url", "http://web"),
			values: []string{"5432", "admin", "db.local", "http://web"}},
		{name: "root /", store: "root=/", pattern: "/app/db/*", want: kvs("/app/db/host", "db.local", "/app/db/port", "5432")},
		{name: "root stripped", store: "root=/app", pattern: "/*/*",
			want: kvs("/db/host", "db.local", "/db/port", "5432", "/dbx/user", "admin", "/web/url", "http://web")},
		{name: "keys filter", store: "app keys=db", pattern: "/*/*",
			want: kvs("/db/host", "db.local", "/db/port", "5432", "/dbx/user", "admin")},
		{name: "several keys", store: "app keys=db,web", pattern: "/*/*",
			want: kvs("/db/host", "db.local", "/db/port", "5432", "/dbx/user", "admin", "/web/url", "http://web")},
		{name: "narrow keys", store: "app keys=db/h", pattern: "/db/*", want: kvs("/db/host", "db.local")},
		{name: "keys a", store: "root=/ keys=a", pattern: "/*", want: kvs("/a", "1", "/ab", "5")},
		{name: "keys top,ab", store: "root=/ keys=top,ab", pattern: "/*", want: kvs("/ab", "5", "/top", "7")},
		{name: "keys top,ab deeper", store: "root=/ keys=top,ab", pattern: "/*/*", want: kvs("/ab/x", "6")},
		{name: "empty", store: "empty", pattern: "/*", want: kvs()},
		{name: "view star", store: "root=/app", pattern: "/db/*", want: kvs("/db/host", "db.local", "/db/port", "5432")},
		{name: "star after part of a name", store: "plain", pattern: "/app/d*", want: kvs()},
		{name: "star matches empty", store: "plain", pattern: "/a/b*", want: kvs("/a/b", "2")},
		{name: "list store", store: "list", pattern: "/app/*/*",
			want: kvs("/app/db/host", "db.local", "/app/db/port", "5432", "/app/dbx/user", "admin", "/app/web/url", "http://web")},
		{name: "list store star", store: "list", pattern: "/a*", want: kvs("/a", "1", "/ab", "5")},
	}
	vs := views()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := vs[tt.store]
			got, err := s.GetAll(tt.pattern)
			if err != nil {
				t.Fatalf("GetAll(%q): %v", tt.pattern, err)
			}
			if got == nil {
				t.Errorf("GetAll(%q) = nil, want a non-nil slice as confd", tt.pattern)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("GetAll(%q) = %v, want %v", tt.pattern, got, tt.want)
			}
			want := tt.values
			if want == nil {
				want = []string{}
				for _, kv := range tt.want {
					want = append(want, kv.Value)
				}
				slices.Sort(want)
			}
			vals, err := s.GetAllValues(tt.pattern)
			if err != nil || !slices.Equal(vals, want) {
				t.Errorf("GetAllValues(%q) = %q, %v; want %q", tt.pattern, vals, err, want)
			}
		})
	}
}

func TestStoreBadPattern(t *testing.T) {
	t.Parallel()
	s := funcs.NewStore(storeKVs)
	for _, p := range []string{"/a/[", "[", `/a/\`, "/a/[b-"} {
		if _, err := s.GetAll(p); !errors.Is(err, path.ErrBadPattern) {
			t.Errorf("GetAll(%q) error = %v, want path.ErrBadPattern", p, err)
		}
		if _, err := s.GetAllValues(p); !errors.Is(err, path.ErrBadPattern) {
			t.Errorf("GetAllValues(%q) error = %v, want path.ErrBadPattern", p, err)
		}
	}
}

func TestStoreList(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		store   string
		dir     string
		ls      []string
		lsdir   []string
		comment string
	}{
		{name: "children and own base", store: "plain", dir: "/a", ls: []string{"a", "b", "c"}, lsdir: []string{"c"},
			comment: "confd quirk: /a is a key, so ls /a lists its base"},
		{name: "trailing slash", store: "plain", dir: "/a/", ls: []string{"a", "b", "c"}, lsdir: []string{"c"}},
		{name: "leaf key lists its base", store: "plain", dir: "/a/b", ls: []string{"b"}, lsdir: []string{}},
		{name: "ab not confused with a", store: "plain", dir: "/ab", ls: []string{"ab", "x"}, lsdir: []string{}},
		{name: "deeper", store: "plain", dir: "/a/c", ls: []string{"d", "e"}, lsdir: []string{}},
		{name: "root", store: "plain", dir: "/", ls: []string{"a", "ab", "app", "top"}, lsdir: []string{"a", "ab", "app"}},
		{name: "missing", store: "plain", dir: "/nope", ls: []string{}, lsdir: []string{}},
		{name: "partial name is not a dir", store: "plain", dir: "/ap", ls: []string{}, lsdir: []string{}},
		{name: "root / view", store: "root=/", dir: "/app", ls: []string{"db", "dbx", "web"}, lsdir: []string{"db", "dbx", "web"}},
		{name: "root stripped", store: "root=/app", dir: "/", ls: []string{"db", "dbx", "web"}, lsdir: []string{"db", "dbx", "web"}},
		{name: "root stripped empty dir", store: "root=/app", dir: "", ls: []string{"db", "dbx", "web"}, lsdir: []string{"db", "dbx", "web"}},
		{name: "root stripped sub", store: "root=/app", dir: "/db", ls: []string{"host", "port"}, lsdir: []string{}},
		{name: "keys filter", store: "app keys=db", dir: "/", ls: []string{"db", "dbx"}, lsdir: []string{"db", "dbx"}},
		{name: "narrow keys", store: "app keys=db/h", dir: "/db", ls: []string{"host"}, lsdir: []string{}},
		{name: "keys a", store: "root=/ keys=a", dir: "/", ls: []string{"a", "ab", "app"}, lsdir: []string{"a", "ab", "app"}},
		{name: "keys top,ab", store: "root=/ keys=top,ab", dir: "/", ls: []string{"ab", "top"}, lsdir: []string{"ab"}},
		{name: "keys top,ab inside", store: "root=/ keys=top,ab", dir: "/ab", ls: []string{"ab", "x"}, lsdir: []string{}},
		{name: "empty", store: "empty", dir: "/", ls: []string{}, lsdir: []string{}},
	}
	vs := views()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := vs[tt.store]
			if got := s.List(tt.dir); got == nil || !slices.Equal(got, tt.ls) {
				t.Errorf("List(%q) = %#v, want %#v %s", tt.dir, got, tt.ls, tt.comment)
			}
			if got := s.ListDir(tt.dir); got == nil || !slices.Equal(got, tt.lsdir) {
				t.Errorf("ListDir(%q) = %#v, want %#v", tt.dir, got, tt.lsdir)
			}
		})
	}
}

func TestStoreApply(t *testing.T) {
	t.Parallel()
	old := funcs.NewStore(storeKVs)
	oldView := old.View("/app", []string{"/db"})
	changes := []backends.Change{
		{Key: "/a/b", Value: "two"},
		{Key: "/a/c/d", Deleted: true},
		{Key: "/app/db/name", Value: "main"},
		{Key: "/app/db/name", Value: "main2"}, // in order: the last one wins
		{Key: "/never", Value: "x"},
		{Key: "/never", Deleted: true},
		{Key: "/absent", Deleted: true},
	}
	s := old.Apply(changes)
	view := oldView.Apply(changes)

	assertStore(t, "old", old, storeKVs)
	want := map[string]string{}
	for k, v := range storeKVs {
		want[k] = v
	}
	want["/a/b"] = "two"
	delete(want, "/a/c/d")
	want["/app/db/name"] = "main2"
	assertStore(t, "new", s, want)

	if got, err := view.GetAll("/db/*"); err != nil || !slices.Equal(got, kvs("/db/host", "db.local", "/db/name", "main2", "/db/port", "5432")) {
		t.Errorf("applied view GetAll = %v, %v; the view must keep its root and keys", got, err)
	}
	if view.Exists("/web/url") {
		t.Error("applied view sees /web/url, outside its keys")
	}
	if oldView.Exists("/db/name") {
		t.Error("old view sees a key applied to its copy")
	}
	if same := old.Apply(nil); same.Len() != old.Len() {
		t.Errorf("Apply(nil) changed the store: %d keys, want %d", same.Len(), old.Len())
	}
}

func TestStoreReplace(t *testing.T) {
	t.Parallel()
	old := funcs.NewStore(storeKVs)
	view := old.View("/app", nil)
	s := old.Replace([]string{"/app/db"}, map[string]string{"/app/db/host": "db2", "/app/db/user": "u"})
	v2 := view.Replace([]string{"/app/db"}, map[string]string{"/app/db/host": "db2"})

	assertStore(t, "old", old, storeKVs)
	want := map[string]string{}
	for k, v := range storeKVs {
		want[k] = v
	}
	// "/app/db" is a plain string prefix, as in backends.Backend.Snapshot: it
	// covers /app/dbx too.
	delete(want, "/app/db/port")
	delete(want, "/app/dbx/user")
	want["/app/db/host"] = "db2"
	want["/app/db/user"] = "u"
	assertStore(t, "new", s, want)

	if got, err := v2.Get("/db/host"); err != nil || got != "db2" {
		t.Errorf("replaced view Get(/db/host) = %q, %v; want db2", got, err)
	}
	if got, err := view.Get("/db/host"); err != nil || got != "db.local" {
		t.Errorf("old view Get(/db/host) = %q, %v; want the old value", got, err)
	}
}

// assertStore checks that s holds exactly want.
func assertStore(t *testing.T, name string, s *funcs.Store, want map[string]string) {
	t.Helper()
	if s.Len() != len(want) {
		t.Errorf("%s store: Len = %d, want %d", name, s.Len(), len(want))
	}
	for k, v := range want {
		if got, err := s.Get(k); err != nil || got != v {
			t.Errorf("%s store: Get(%q) = %q, %v; want %q", name, k, got, err, v)
		}
	}
}

func TestStoreConcurrent(t *testing.T) {
	t.Parallel()
	s := funcs.NewStore(storeKVs).View("/app", nil)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 200 {
				n := s.Apply([]backends.Change{{Key: fmt.Sprintf("/app/g%d/k%d", i, j), Value: "v"}})
				if _, err := n.GetAll("/*/*"); err != nil {
					t.Error(err)
					return
				}
				_ = s.List("/")
				_ = s.Exists("/db/host")
			}
		})
	}
	wg.Wait()
	if s.Len() != len(storeKVs) {
		t.Errorf("shared store changed under concurrent Apply: %d keys", s.Len())
	}
}

// benchStore returns a store with n keys laid out as n/100 directories of
// 100 keys each: /svc/0000/k00 ... /svc/0999/k99 for n = 100,000.
func benchStore(n int) *funcs.Store {
	m := make(map[string]string, n)
	for i := range n {
		m[fmt.Sprintf("/svc/%04d/k%02d", i/100, i%100)] = "v"
	}
	return funcs.NewStore(m)
}

// BenchmarkStore measures look-ups on a 100,000-key store. The GetAll and
// List sub-benchmarks also run on 1,000 keys: with O(log n + k) look-ups,
// the two sizes cost about the same for the same k.
func BenchmarkStore(b *testing.B) {
	for _, n := range []int{1_000, 100_000} {
		s := benchStore(n)
		b.Run(fmt.Sprintf("keys=%d/Get", n), func(b *testing.B) {
			for b.Loop() {
				if _, err := s.Get("/svc/0007/k42"); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("keys=%d/GetAll100", n), func(b *testing.B) {
			for b.Loop() {
				kvs, err := s.GetAll("/svc/0007/*")
				if err != nil || len(kvs) != 100 {
					b.Fatalf("GetAll: %d keys, %v", len(kvs), err)
				}
			}
		})
		b.Run(fmt.Sprintf("keys=%d/GetAllEvery", n), func(b *testing.B) {
			for b.Loop() {
				kvs, err := s.GetAll("/svc/*/*")
				if err != nil || len(kvs) != n {
					b.Fatalf("GetAll: %d keys, %v", len(kvs), err)
				}
			}
		})
		flat := make(map[string]string, n)
		for i := range n {
			flat[fmt.Sprintf("/k/%06d", i)] = "v"
		}
		fs := funcs.NewStore(flat)
		b.Run(fmt.Sprintf("keys=%d/GetAllFlat", n), func(b *testing.B) {
			for b.Loop() {
				kvs, err := fs.GetAll("/k/*")
				if err != nil || len(kvs) != n {
					b.Fatalf("GetAll: %d keys, %v", len(kvs), err)
				}
			}
		})
		b.Run(fmt.Sprintf("keys=%d/List100", n), func(b *testing.B) {
			for b.Loop() {
				if got := s.List("/svc/0007"); len(got) != 100 {
					b.Fatalf("List: %d names", len(got))
				}
			}
		})
		b.Run(fmt.Sprintf("keys=%d/ListDirs", n), func(b *testing.B) {
			for b.Loop() {
				if got := s.ListDir("/svc"); len(got) != n/100 {
					b.Fatalf("ListDir: %d names", len(got))
				}
			}
		})
		b.Run(fmt.Sprintf("keys=%d/Apply1", n), func(b *testing.B) {
			c := []backends.Change{{Key: "/svc/0007/k42", Value: "changed"}}
			for b.Loop() {
				if s.Apply(c).Len() != n {
					b.Fatal("Apply changed the key count")
				}
			}
		})
	}
}

// TestGetAllSkipsDeeperKeys checks the subtree skip in GetAll: keys deeper
// than the pattern, before, between and after the matches, never match,
// while character classes (which may match "/") still see every key.
func TestGetAllSkipsDeeperKeys(t *testing.T) {
	t.Parallel()
	s := funcs.NewStore(map[string]string{
		"/svc/a":         "1",
		"/svc/a/deep/x":  "2",
		"/svc/a-b":       "3",
		"/svc/b/c":       "4",
		"/svc/b0":        "5",
		"/svc/c":         "6",
		"/svc/c/d/e/f/g": "7",
	})
	tests := []struct {
		pattern string
		want    []string
	}{
		{"/svc/*", []string{"/svc/a", "/svc/a-b", "/svc/b0", "/svc/c"}},
		{"/svc/*/*", []string{"/svc/b/c"}},
		{"/svc/?/deep/*", []string{"/svc/a/deep/x"}},
		{"/svc/[a-c]", []string{"/svc/a", "/svc/c"}},
	}
	for _, tt := range tests {
		got, err := s.GetAll(tt.pattern)
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, kv := range got {
			keys = append(keys, kv.Key)
		}
		if strings.Join(keys, " ") != strings.Join(tt.want, " ") {
			t.Errorf("GetAll(%q) = %q, want %q", tt.pattern, keys, tt.want)
		}
	}
}

// TestStoreLookupWalk checks the raw accessors the daemon diffs with: they
// ignore views and take keys as stored, uncleaned.
func TestStoreLookupWalk(t *testing.T) {
	t.Parallel()
	s := funcs.NewStore(map[string]string{"/a/x": "1", "/a/y": "2", "/b": "3", "noslash": "4"}).View("/a", nil)
	if v, ok := s.Lookup("noslash"); !ok || v != "4" {
		t.Errorf(`Lookup("noslash") = %q, %v`, v, ok)
	}
	if _, ok := s.Lookup("/x"); ok {
		t.Error(`Lookup("/x") found a key through the view`)
	}
	var keys []string
	s.Walk("/a/", func(k, _ string) bool { keys = append(keys, k); return true })
	if strings.Join(keys, " ") != "/a/x /a/y" {
		t.Errorf(`Walk("/a/") = %q`, keys)
	}
	keys = nil
	s.Walk("", func(k, _ string) bool { keys = append(keys, k); return len(keys) < 2 })
	if strings.Join(keys, " ") != "/a/x /a/y" {
		t.Errorf(`Walk("") stopping after two = %q`, keys)
	}
}

// TestBinderBind checks that a Binder binds the names asked for to its
// store, from the last set that defines each, and leaves builtins out.
func TestBinderBind(t *testing.T) {
	t.Parallel()
	b, err := funcs.NewBinder(t.Context(), funcs.DefaultSets(), funcs.NewStore(map[string]string{"/a": "1"}))
	if err != nil {
		t.Fatal(err)
	}
	fm := b.Bind([]string{"getv", "upper", "join", "printf"})
	if len(fm) != 3 {
		t.Fatalf("Bind returned %d functions, want 3 (printf is a builtin): %v", len(fm), names(fm))
	}
	v, err := fm["getv"].(func(string, ...string) (string, error))("/a")
	if err != nil || v != "1" {
		t.Errorf("getv /a = %q, %v; want the binder's store", v, err)
	}
	// confd's join (list first) wins over sprig's.
	if _, ok := fm["join"].(func([]string, string) string); !ok {
		t.Errorf("join is %T, want confd's", fm["join"])
	}
	if _, err := funcs.NewBinder(t.Context(), []string{"nope"}, nil); err == nil {
		t.Error("NewBinder with an unknown set succeeded")
	}
}

// TestBinderIsGetAll checks that a binder reports a function to be the
// store's GetAll exactly when the set that wins the name declared it so,
// whatever the set or the function is called, and hands out its store.
func TestBinderIsGetAll(t *testing.T) {
	t.Parallel()
	s := funcs.NewStore(map[string]string{"/a/1": "x", "/a/2": "y"})
	b, err := funcs.NewBinder(t.Context(), funcs.DefaultSets(), s)
	if err != nil {
		t.Fatal(err)
	}
	if !b.IsGetAll("gets") {
		t.Fatal("IsGetAll(gets) with the default sets = false, want true: confd declares it")
	}
	for _, name := range []string{"getvs", "get", "ls", "upper", "nope"} {
		if b.IsGetAll(name) {
			t.Errorf("IsGetAll(%s) = true, want false", name)
		}
	}
	if b.Store() != s {
		t.Error("Store() is not the binder's store")
	}
	var got []string
	if err := b.Store().EachAll("/a/*", func(kv funcs.KV) bool { got = append(got, kv.Key+"="+kv.Value); return true }); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, " ") != "/a/1=x /a/2=y" {
		t.Errorf("Store().EachAll(/a/*) gave %q, want the binder's store's pairs", got)
	}
	registerTestGetAll()
	for _, tt := range []struct {
		sets []string
		name string
		want bool
	}{
		{[]string{"sprig"}, "gets", false},                // no such function
		{[]string{"confd", "test-gets"}, "gets", false},   // a later set's gets, not declared
		{[]string{"test-gets", "confd"}, "gets", true},    // confd's wins again
		{[]string{"test-getall"}, "pairs", true},          // declared under another name, by another set
		{[]string{"test-getall"}, "gets", false},          // the same set's undeclared gets
		{[]string{"test-getall"}, "badsig", false},        // declared, but not of GetAll's type
		{[]string{"test-getall", "confd"}, "pairs", true}, // confd defines no pairs
		{[]string{"confd", "test-getall"}, "gets", false}, // test-getall's gets wins
		{[]string{"test-getall", "test-gets"}, "pairs", true},
	} {
		b, err := funcs.NewBinder(t.Context(), tt.sets, s)
		if err != nil {
			t.Fatal(err)
		}
		if got := b.IsGetAll(tt.name); got != tt.want {
			t.Errorf("sets %q: IsGetAll(%s) = %t, want %t", tt.sets, tt.name, got, tt.want)
		}
	}
}

// TestGetAllDeclarations holds every registered set to what it declares
// with RegisterGetAll: each such function returns what the store's GetAll
// returns, for every pattern, so that reading the store's pairs instead
// changes nothing.
func TestGetAllDeclarations(t *testing.T) {
	t.Parallel()
	registerTestGetAll()
	s := funcs.NewStore(map[string]string{"/a/1": "x", "/a/2": "y", "/a/b/c": "z", "/d": "w", "/p/a": "1"}).View("/", nil)
	patterns := []string{"/*", "/a/*", "/a/*/*", "/a/[12]", "/nope/*", "/d", "/[", "/p/*"}
	declared := 0
	for _, set := range funcs.Names() {
		fm, err := funcs.Map(t.Context(), []string{set}, s)
		if err != nil {
			t.Fatal(err)
		}
		b, err := funcs.NewBinder(t.Context(), []string{set}, s)
		if err != nil {
			t.Fatal(err)
		}
		for name, f := range fm {
			if !b.IsGetAll(name) {
				continue
			}
			declared++
			getAll := f.(func(string) ([]funcs.KV, error))
			for _, p := range patterns {
				got, gerr := getAll(p)
				want, werr := s.GetAll(p)
				if fmt.Sprint(gerr) != fmt.Sprint(werr) || !slices.Equal(got, want) {
					t.Errorf("set %s: %s(%q) = %v, %v; GetAll gives %v, %v", set, name, p, got, gerr, want, werr)
				}
			}
		}
	}
	if declared < 2 { // confd's gets and the test set's pairs
		t.Errorf("%d functions declared to be GetAll, want confd's gets and test-getall's pairs at least", declared)
	}
}

// registerTestGetAll registers the sets "test-gets", whose gets is not
// the store's, and "test-getall", whose pairs is, declared so.
var registerTestGetAll = sync.OnceFunc(func() {
	funcs.Register("test-gets", "test-only", func(context.Context, *funcs.Store) texttemplate.FuncMap {
		return texttemplate.FuncMap{"gets": func(string) ([]funcs.KV, error) { return nil, nil }}
	})
	funcs.Register("test-getall", "test-only", func(_ context.Context, s *funcs.Store) texttemplate.FuncMap {
		if s == nil {
			s = funcs.NewStore(nil)
		}
		return texttemplate.FuncMap{
			"pairs":  s.GetAll,
			"gets":   func(string) ([]funcs.KV, error) { return nil, nil },
			"badsig": func(p string) []funcs.KV { kvs, _ := s.GetAll(p); return kvs },
		}
	})
	funcs.RegisterGetAll("test-getall", "pairs")
	funcs.RegisterGetAll("test-getall", "badsig")
})
