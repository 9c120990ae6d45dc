package funcs

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/kvconf/kvconf/backends"
)

// TestSortedModel drives the sorted set with random changes and replaces,
// keeping every version, and checks each against a plain map after every
// step: the content, the count, seeks, and that older versions never
// change (the set is persistent).
func TestSortedModel(t *testing.T) {
	t.Parallel()
	for seed := uint64(1); seed <= 20; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			r := rand.New(rand.NewPCG(seed, seed))
			key := func() string { return fmt.Sprintf("/%c/%d", 'a'+r.IntN(4), r.IntN(300)) }
			model := map[string]string{}
			for i := 0; i < 200; i++ {
				model[key()] = fmt.Sprint(i)
			}
			type version struct {
				set   *sorted
				model map[string]string
			}
			cur := newSorted(model)
			if seed%2 == 0 { // the same set, built from a sorted list
				var kvs []backends.KV
				for _, k := range slices.Sorted(maps.Keys(model)) {
					kvs = append(kvs, backends.KV{Key: k, Value: model[k]})
				}
				cur = newSortedList(kvs)
			}
			versions := []version{{cur, maps.Clone(model)}}
			for step := 0; step < 400; step++ {
				if r.IntN(20) == 0 {
					p := fmt.Sprintf("/%c/", 'a'+r.IntN(4))
					kvs := map[string]string{}
					for i := 0; i < r.IntN(50); i++ {
						kvs[p+fmt.Sprint(r.IntN(300))] = fmt.Sprint("r", step)
					}
					kvs["/outside-"+fmt.Sprint(step)] = "x" // kvs may hold keys outside the prefixes
					for k := range model {
						if strings.HasPrefix(k, p) {
							delete(model, k)
						}
					}
					maps.Copy(model, kvs)
					cur = cur.replace([]string{p}, kvs)
				} else {
					var cs []backends.Change
					for i := 0; i < 1+r.IntN(8); i++ {
						k := key()
						if r.IntN(3) == 0 {
							cs = append(cs, backends.Change{Key: k, Deleted: true})
							delete(model, k)
						} else {
							v := fmt.Sprint(step, ".", i)
							cs = append(cs, backends.Change{Key: k, Value: v})
							model[k] = v
						}
					}
					cur = cur.apply(cs)
				}
				versions = append(versions, version{cur, maps.Clone(model)})
				check(t, cur, model)
			}
			for i, v := range versions {
				if !equal(v.set, v.model) {
					t.Fatalf("version %d changed after later updates", i)
				}
			}
		})
	}
}

func equal(s *sorted, model map[string]string) bool {
	got := s.all(nil)
	keys := slices.Sorted(maps.Keys(model))
	if len(got) != len(keys) || s.n != len(keys) {
		return false
	}
	for i, e := range got {
		if e.Key != keys[i] || e.Value != model[e.Key] {
			return false
		}
	}
	return true
}

func check(t *testing.T, s *sorted, model map[string]string) {
	t.Helper()
	if !equal(s, model) {
		t.Fatalf("set holds %v (n=%d), want %v", s.all(nil), s.n, model)
	}
	for _, k := range []string{"/a/1", "/b/150", "/c/299", "/d/0", "/e/1"} {
		v, ok := s.get(k)
		mv, mok := model[k]
		if v != mv || ok != mok {
			t.Fatalf("get(%q) = %q, %v; want %q, %v", k, v, ok, mv, mok)
		}
	}
	keys := slices.Sorted(maps.Keys(model))
	for _, from := range []string{"", "/b/", "/b/5", "/c/299", "/zz"} {
		it := s.seek(from)
		k, _, ok := it.next()
		i, _ := slices.BinarySearch(keys, from)
		if want := i < len(keys); ok != want || ok && k != keys[i] {
			t.Fatalf("seek(%q).next() = %q, %v; want the first key not less", from, k, ok)
		}
	}
}

// TestSortedList checks newSortedList: a sorted list becomes the base as
// it is, and any other is sorted, the last pair of a key winning.
func TestSortedList(t *testing.T) {
	t.Parallel()
	kv := func(kvs ...string) []backends.KV {
		out := []backends.KV{}
		for i := 0; i < len(kvs); i += 2 {
			out = append(out, backends.KV{Key: kvs[i], Value: kvs[i+1]})
		}
		return out
	}
	tests := []struct {
		name string
		in   []backends.KV
		want map[string]string
	}{
		{name: "empty", in: nil, want: map[string]string{}},
		{name: "one", in: kv("/a", "1"), want: map[string]string{"/a": "1"}},
		{name: "sorted", in: kv("/a", "1", "/a/b", "2", "/b", "3"), want: map[string]string{"/a": "1", "/a/b": "2", "/b": "3"}},
		{name: "unsorted", in: kv("/b", "3", "/a", "1", "/a/b", "2"), want: map[string]string{"/a": "1", "/a/b": "2", "/b": "3"}},
		{name: "duplicate, last wins", in: kv("/a", "1", "/b", "2", "/a", "3", "/b", "4", "/a", "5"), want: map[string]string{"/a": "5", "/b": "4"}},
		{name: "sorted duplicate", in: kv("/a", "1", "/a", "2", "/b", "3"), want: map[string]string{"/a": "2", "/b": "3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			check(t, newSortedList(tt.in), tt.want)
		})
	}

	in := kv("/a", "1", "/b", "2", "/c", "3")
	if got := newSortedList(in); &got.base[0] != &in[0] {
		t.Error("newSortedList copied a sorted list")
	}
}
