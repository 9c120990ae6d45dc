package funcs

import (
	"fmt"
	"math/rand/v2"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/kvconf/kvconf/backends"
)

// TestGetAllLeaves checks GetAll with a final "*" as its only wildcard,
// which reads the base array directly (see [Store.leaves]) unless the
// overlay changes a key in range, against path.Match over every visible
// key, on random nested stores, with and without changes in the overlay,
// through views with and without key prefixes.
func TestGetAllLeaves(t *testing.T) {
	t.Parallel()
	for seed := uint64(1); seed <= 30; seed++ {
		r := rand.New(rand.NewPCG(seed, 7))
		seg := func() string { return []string{"a", "b", "a-b", "b0", "c", "ab"}[r.IntN(6)] }
		key := func() string {
			k := "/app"
			for range 1 + r.IntN(4) {
				k += "/" + seg()
			}
			return k
		}
		model := map[string]string{}
		var list []backends.KV
		for i := range 150 {
			model[key()] = fmt.Sprint(i)
		}
		for k, v := range model {
			list = append(list, backends.KV{Key: k, Value: v})
		}
		s := NewStoreList(list)
		if seed%3 != 0 { // some changes in the overlay
			var cs []backends.Change
			for i := range 1 + r.IntN(5) {
				k := key()
				if r.IntN(2) == 0 {
					cs = append(cs, backends.Change{Key: k, Deleted: true})
					delete(model, k)
				} else {
					cs = append(cs, backends.Change{Key: k, Value: fmt.Sprint("new", i)})
					model[k] = fmt.Sprint("new", i)
				}
			}
			s = s.Apply(cs)
		}
		views := []*Store{s, s.View("/app", nil), s.View("/app", []string{"/a", "/b/c"}), s.View("/", []string{"/app/a-b"})}
		for vi, v := range views {
			for _, pattern := range []string{"/*", "/app/*", "/a/*", "/app/a/*", "/a/a*", "/b/*", "/app/b/*", "/app/a-b/*", "/b/c/*"} {
				got, err := v.GetAll(pattern)
				if err != nil {
					t.Fatal(err)
				}
				var want []KV
				pat := v.full(pattern)
				for _, k := range slices.Sorted(func(yield func(string) bool) {
					for k := range model {
						if !yield(k) {
							return
						}
					}
				}) {
					if ok, _ := path.Match(pat, k); ok && v.visible(k) {
						want = append(want, KV{Key: strings.TrimPrefix(k, v.root), Value: model[k]})
					}
				}
				if !slices.Equal(got, want) && len(got)+len(want) > 0 {
					t.Errorf("seed %d, view %d: GetAll(%q) = %q, want %q", seed, vi, pattern, got, want)
				}
				var each []KV
				if err := v.EachAll(pattern, func(kv KV) bool { each = append(each, kv); return true }); err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(each, want) {
					t.Errorf("seed %d, view %d: EachAll(%q) gave %q, want %q", seed, vi, pattern, each, want)
				}
				if len(want) > 1 {
					var first []KV
					if err := v.EachAll(pattern, func(kv KV) bool { first = append(first, kv); return false }); err != nil || !slices.Equal(first, want[:1]) {
						t.Errorf("seed %d, view %d: EachAll(%q) stopping at once gave %q, %v; want %q", seed, vi, pattern, first, err, want[:1])
					}
				}
			}
		}
	}
}

// TestEachAllBadPattern checks that EachAll fails as GetAll does on a bad
// pattern, before calling fn.
func TestEachAllBadPattern(t *testing.T) {
	t.Parallel()
	s := NewStore(map[string]string{"/a": "1"})
	_, want := s.GetAll("/[")
	called := false
	err := s.EachAll("/[", func(KV) bool { called = true; return true })
	if err == nil || want == nil || err.Error() != want.Error() || called {
		t.Errorf("EachAll(/[) = %v, called fn %v; want GetAll's error %v, and no call", err, called, want)
	}
}

// TestSortedUnder checks that under gives the base pairs under a prefix,
// and refuses when the overlay changes a key under it.
func TestSortedUnder(t *testing.T) {
	t.Parallel()
	s := newSortedList([]backends.KV{{Key: "/a", Value: "1"}, {Key: "/a/b", Value: "2"}, {Key: "/a/c", Value: "3"}, {Key: "/b", Value: "4"}})
	kvs, ok := s.under("/a/")
	if !ok || len(kvs) != 2 || kvs[0].Key != "/a/b" || kvs[1].Key != "/a/c" {
		t.Errorf(`under("/a/") = %v, %v; want /a/b and /a/c`, kvs, ok)
	}
	if kvs, ok := s.under("/z"); !ok || len(kvs) != 0 {
		t.Errorf(`under("/z") = %v, %v; want nothing`, kvs, ok)
	}
	s = s.apply([]backends.Change{{Key: "/a/c", Deleted: true}})
	if _, ok := s.under("/a/"); ok {
		t.Error(`under("/a/") with /a/c deleted in the overlay: want false`)
	}
	if kvs, ok := s.under("/b"); !ok || len(kvs) != 1 {
		t.Errorf(`under("/b") = %v, %v; want /b from the base`, kvs, ok)
	}
}
