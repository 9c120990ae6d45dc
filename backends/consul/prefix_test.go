package consul

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/kvconf/kvconf/backends"
)

// slowPairs is the reference of pairs: collect's map, sorted.
func slowPairs(p string, kvs []backends.KV) []backends.KV {
	m := map[string]string{}
	collect(m, p, kvs)
	out := []backends.KV{}
	for k, v := range m {
		out = append(out, backends.KV{Key: k, Value: v})
	}
	slices.SortFunc(out, func(a, b backends.KV) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// listed returns the pairs of a listing of keys, with "/" before each key
// and its value, in Consul's order: sorted by key.
func listed(kv ...string) []backends.KV {
	kvs := kvList(kv...)
	for i := range kvs {
		kvs[i].Key = "/" + kvs[i].Key
	}
	slices.SortFunc(kvs, func(a, b backends.KV) int { return strings.Compare(a.Key, b.Key) })
	return kvs
}

func TestPairs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		p       string
		in      []backends.KV
		want    []backends.KV
		inOrder bool // without the map
		same    bool // kvs as they are
	}{
		{name: "none", p: "app", in: listed(), want: kvList(), inOrder: true, same: true},
		{
			name: "clean keys", p: "app",
			in:      listed("app/a", "1", "app/b/c", "2", "apple", "3"),
			want:    kvList("/app/a", "1", "/app/b/c", "2", "/apple", "3"),
			inOrder: true, same: true,
		},
		{
			name: "folders", p: "app/",
			in:      listed("app/", "", "app/db/", "", "app/db/host", "h", "app/dir/", "d"),
			want:    kvList("/app/db", "", "/app/db/host", "h", "/app/dir", "d"),
			inOrder: true,
		},
		{
			name: "a key wins over its folder", p: "app",
			in:      listed("app/both", "key", "app/both/", "", "app/both/x", "x"),
			want:    kvList("/app/both", "key", "/app/both/x", "x"),
			inOrder: true,
		},
		{
			name: "unclean names", p: "",
			in:   listed("a//b", "1", "a/b", "2", "a/./c", "3", "a/c/", "4", "x/../y", "5"),
			want: kvList("/a/b", "2", "/a/c", "4", "/y", "5"),
			// "/a/./c" comes first, and is "/a/c".
		},
		{
			name: "outside the prefix once cleaned", p: "app/",
			in:      listed("app/../etc", "1", "app/x", "2"),
			want:    kvList("/app/x", "2"),
			inOrder: true,
		},
		{
			name: "a folder before keys that sort before it once cleaned", p: "app",
			in:   listed("app/dir/", "", "app/dir-x", "1", "app/dir.y/", "2"),
			want: kvList("/app/dir", "", "/app/dir-x", "1", "/app/dir.y", "2"),
		},
		{
			name: "unclean names after their key", p: "",
			in:   listed("a/b", "1", "a/b-c", "2", "a/b/", "3"),
			want: kvList("/a/b", "1", "/a/b-c", "2"),
		},
		{
			name: "the last unclean name wins", p: "",
			in:      listed("a//b", "1", "a//b/", "2"),
			want:    kvList("/a/b", "2"),
			inOrder: true,
		},
		{
			name: "root", p: "",
			in:      listed("", "root", "a", "1"),
			want:    kvList("/", "root", "/a", "1"),
			inOrder: true, same: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ref := slowPairs(tt.p, tt.in)
			if !slices.Equal(ref, tt.want) {
				t.Fatalf("reference = %q, want %q", ref, tt.want)
			}
			_, _, ok := inOrder(tt.p, tt.in, false)
			if ok != tt.inOrder {
				t.Errorf("in order: %t, want %t", ok, tt.inOrder)
			}
			in := slices.Clone(tt.in)
			got := pairs(tt.p, in)
			if !slices.Equal(got, tt.want) {
				t.Errorf("pairs = %q, want %q", got, tt.want)
			}
			if same := len(got) == 0 || &got[0] == &in[0] && slices.Equal(in, tt.in); same != tt.same {
				t.Errorf("pairs returned its input as it is: %t, want %t", same, tt.same)
			}
		})
	}
}

// FuzzPairs checks pairs against the map of collect, on listings of the
// keys given, one a line.
func FuzzPairs(f *testing.F) {
	for _, s := range []string{"app/a\napp/b", "app/dir/\napp/dir-x\napp/dir", "a//b\na/b\n./c\n../d", "app/\napp"} {
		f.Add("app", s)
	}
	f.Fuzz(func(t *testing.T, p, keys string) {
		var kv []string
		for i, k := range strings.Split(keys, "\n") {
			kv = append(kv, k, string(rune('a'+i%26)))
		}
		in := listed(kv...)
		// Consul's keys are unique.
		in = slices.CompactFunc(in, func(a, b backends.KV) bool { return a.Key == b.Key })
		want := slowPairs(p, in)
		if got := pairs(p, slices.Clone(in)); !slices.Equal(got, want) {
			t.Fatalf("pairs(%q, %q) = %q, want %q", p, in, got, want)
		}
	})
}

func TestIsClean(t *testing.T) {
	t.Parallel()
	for _, k := range []string{"/", "/a", "/a/b", "/.a", "/a..", "/...", "/a/.b/c", "//", "/a/", "/a//b", "/.", "/..", "/a/.",
		"/a/..", "/a/./b", "/a/../b", "", "a", "a/b", "/a/b/"} {
		if got, want := isClean(k), strings.HasPrefix(k, "/") && path.Clean(k) == k; got != want {
			t.Errorf("isClean(%q) = %t, want %t", k, got, want)
		}
	}
}

// FuzzIsClean checks isClean against path.Clean.
func FuzzIsClean(f *testing.F) {
	for _, s := range []string{"/a/b", "/a/./b", "//", "/.."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, k string) {
		if got, want := isClean(k), strings.HasPrefix(k, "/") && path.Clean(k) == k; got != want {
			t.Fatalf("isClean(%q) = %t, want %t", k, got, want)
		}
	})
}

// TestGroups cuts sorted prefixes into at most n groups at the nodes of
// their trie: every prefix in exactly one group, each group's prefix a
// string prefix of its members, the heaviest groups split first.
func TestGroups(t *testing.T) {
	t.Parallel()
	seq := func(format string, n int) []string {
		var ps []string
		for i := range n {
			ps = append(ps, fmt.Sprintf(format, i))
		}
		return ps
	}
	ones := func(n int) []int {
		w := make([]int, n)
		for i := range w {
			w[i] = 1
		}
		return w
	}
	prefixes := func(cs []cut) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.prefix)
		}
		return out
	}
	tests := []struct {
		name    string
		ps      []string
		weights []int
		n       int
		want    []string
	}{
		{name: "none", n: 4},
		{name: "one", ps: []string{"app/"}, weights: []int{5}, n: 4, want: []string{"app/"}},
		{name: "within n", ps: []string{"a/", "b/", "c/"}, weights: ones(3), n: 3, want: []string{"a/", "b/", "c/"}},
		{name: "one group", ps: []string{"a/", "b/", "c/"}, weights: ones(3), n: 1, want: []string{""}},
		{name: "200 prefixes in 12", ps: seq("scale/p%03d/", 200), weights: ones(200), n: 12,
			want: append(seq("scale/p0%d", 10), "scale/p1")},
		{name: "200 prefixes in 2", ps: seq("scale/p%03d/", 200), weights: ones(200), n: 2, want: []string{"scale/p0", "scale/p1"}},
		{name: "1000 prefixes in 12", ps: seq("scale/p%04d/", 1000), weights: ones(1000), n: 12, want: seq("scale/p0%d", 10)},
		{
			name: "the heaviest first", ps: []string{"a/1", "a/2", "b/1", "b/2", "b/3"}, weights: []int{1, 1, 100, 1, 1}, n: 4,
			want: []string{"a/", "b/1", "b/2", "b/3"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := groups(tt.ps, tt.weights, tt.n)
			if len(got) > max(tt.n, 1) {
				t.Fatalf("%d groups, want at most %d", len(got), tt.n)
			}
			var members []string
			for _, g := range got {
				for _, m := range g.members {
					if !strings.HasPrefix(m, g.prefix) {
						t.Errorf("member %q of group %q", m, g.prefix)
					}
				}
				members = append(members, g.members...)
			}
			if !slices.Equal(members, tt.ps) {
				t.Errorf("members %q, want %q", members, tt.ps)
			}
			if tt.want != nil && !slices.Equal(prefixes(got), tt.want) {
				t.Errorf("groups %q, want %q", prefixes(got), tt.want)
			}
		})
	}
}

// kvList returns the pairs of key, value, key, value…
func kvList(kv ...string) []backends.KV {
	kvs := []backends.KV{}
	for i := 0; i < len(kv); i += 2 {
		kvs = append(kvs, backends.KV{Key: kv[i], Value: kv[i+1]})
	}
	return kvs
}
