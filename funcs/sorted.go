package funcs

import (
	"math"
	"slices"
	"strings"

	"github.com/kvconf/kvconf/backends"
)

// entry is a change in the overlay of a [sorted] set: a key and its new
// value, or the deletion of a key.
type entry struct {
	key, value string
	deleted    bool
}

func byKey(a, b entry) int { return strings.Compare(a.key, b.key) }

// sorted is an immutable, persistent sorted map of strings: a base array
// sorted by key, and a small sorted overlay of the changes made since the
// base was built, which wins over it. Reads binary-search both and merge;
// an update copies only the overlay, and folds it into a new base once it
// outgrows about the square root of the base, so a change costs
// O(sqrt n) amortised while the base array stays compact: two strings a key
// and no per-key allocation beyond them.
type sorted struct {
	base []backends.KV // unique keys
	over []entry       // unique keys; deletions only of keys in base
	n    int           // live keys
}

// newSorted builds a set from a map.
func newSorted(kvs map[string]string) *sorted {
	base := make([]backends.KV, 0, len(kvs))
	for k, v := range kvs {
		base = append(base, backends.KV{Key: k, Value: v})
	}
	slices.SortFunc(base, func(a, b backends.KV) int { return strings.Compare(a.Key, b.Key) })
	return &sorted{base: base, n: len(base)}
}

// newSortedList builds a set from kvs, which it keeps as its base: when
// kvs is sorted by key without duplicates, as a [backends.Lister] returns
// it, that costs one pass to check the order. Otherwise kvs is sorted in
// place, stably, and of the pairs with the same key the last one is kept,
// as when a map is filled from kvs in order.
func newSortedList(kvs []backends.KV) *sorted {
	for i := 1; i < len(kvs); i++ {
		if kvs[i-1].Key >= kvs[i].Key {
			kvs = sortList(kvs)
			break
		}
	}
	return &sorted{base: kvs, n: len(kvs)}
}

// sortList sorts kvs by key, stably, and keeps the last pair of each key.
func sortList(kvs []backends.KV) []backends.KV {
	slices.SortStableFunc(kvs, func(a, b backends.KV) int { return strings.Compare(a.Key, b.Key) })
	out := kvs[:0]
	for i, kv := range kvs {
		if i+1 < len(kvs) && kvs[i+1].Key == kv.Key {
			continue
		}
		out = append(out, kv)
	}
	return slices.Clip(out)
}

// find returns the index of the first entry of es whose key is not less
// than k, and whether its key is k.
func find(es []entry, k string) (int, bool) {
	return slices.BinarySearchFunc(es, k, func(e entry, k string) int { return strings.Compare(e.key, k) })
}

// findKV is [find] for the base array.
func findKV(kvs []backends.KV, k string) (int, bool) {
	return slices.BinarySearchFunc(kvs, k, func(kv backends.KV, k string) int { return strings.Compare(kv.Key, k) })
}

// get returns the value of k.
func (t *sorted) get(k string) (string, bool) {
	if i, ok := find(t.over, k); ok {
		return t.over[i].value, !t.over[i].deleted
	}
	if i, ok := findKV(t.base, k); ok {
		return t.base[i].Value, true
	}
	return "", false
}

// under returns the pairs of the base array whose keys start with p, and
// false when the overlay changes any key that starts with p: then the
// base array alone does not say what is under p.
func (t *sorted) under(p string) ([]backends.KV, bool) {
	if j, _ := find(t.over, p); j < len(t.over) && strings.HasPrefix(t.over[j].key, p) {
		return nil, false
	}
	lo, _ := findKV(t.base, p)
	rest := t.base[lo:]
	hi, _ := slices.BinarySearchFunc(rest, p, func(kv backends.KV, p string) int {
		if strings.HasPrefix(kv.Key, p) {
			return -1
		}
		return 1
	})
	return rest[:hi], true
}

// inBase reports whether k is a key of the base array.
func (t *sorted) inBase(k string) bool {
	_, ok := findKV(t.base, k)
	return ok
}

// apply returns the set with changes made in order.
func (t *sorted) apply(changes []backends.Change) *sorted {
	// The last change of each key wins; sort them by key, stably.
	cs := make([]entry, len(changes))
	for i, c := range changes {
		cs[i] = entry{key: c.Key, value: c.Value, deleted: c.Deleted}
	}
	slices.SortStableFunc(cs, byKey)
	uniq := cs[:0]
	for i, c := range cs {
		if i+1 < len(cs) && cs[i+1].key == c.key {
			continue
		}
		uniq = append(uniq, c)
	}

	n := t.n
	over := make([]entry, 0, len(t.over)+len(uniq))
	i := 0
	for _, c := range uniq {
		for i < len(t.over) && t.over[i].key < c.key {
			over = append(over, t.over[i])
			i++
		}
		if i < len(t.over) && t.over[i].key == c.key {
			i++ // replaced by c
		}
		_, existed := t.get(c.key)
		switch {
		case c.deleted && existed:
			n--
		case !c.deleted && !existed:
			n++
		}
		if c.deleted && !t.inBase(c.key) {
			continue // nothing to hide
		}
		over = append(over, c)
	}
	over = append(over, t.over[i:]...)
	nt := &sorted{base: t.base, over: over, n: n}
	if len(over) > 64+int(math.Sqrt(float64(len(t.base)))) {
		return &sorted{base: nt.all(nil), n: n}
	}
	return nt
}

// replace returns the set with every key that starts with one of prefixes
// removed and kvs added.
func (t *sorted) replace(prefixes []string, kvs map[string]string) *sorted {
	under := func(k string) bool {
		for _, p := range prefixes {
			if strings.HasPrefix(k, p) {
				return true
			}
		}
		return false
	}
	kept := t.all(under)
	add := newSorted(kvs).base
	merged := make([]backends.KV, 0, len(kept)+len(add))
	i := 0
	for _, a := range add {
		for i < len(kept) && kept[i].Key < a.Key {
			merged = append(merged, kept[i])
			i++
		}
		if i < len(kept) && kept[i].Key == a.Key {
			i++ // a key of kvs outside the prefixes: kvs wins
		}
		merged = append(merged, a)
	}
	merged = append(merged, kept[i:]...)
	return &sorted{base: merged, n: len(merged)}
}

// all returns the live pairs in key order, without those that skip
// reports (nil skips none).
func (t *sorted) all(skip func(string) bool) []backends.KV {
	out := make([]backends.KV, 0, t.n)
	it := t.seek("")
	for {
		k, v, ok := it.next()
		if !ok {
			return out
		}
		if skip == nil || !skip(k) {
			out = append(out, backends.KV{Key: k, Value: v})
		}
	}
}

// iterator walks the live entries of a set in key order.
type iterator struct {
	t    *sorted
	i, j int // next base and overlay entries
}

// seek returns an iterator at the first key not less than k.
func (t *sorted) seek(k string) iterator {
	i, _ := findKV(t.base, k)
	j, _ := find(t.over, k)
	return iterator{t: t, i: i, j: j}
}

// next returns the next live entry.
func (it *iterator) next() (key, value string, ok bool) {
	base, over := it.t.base, it.t.over
	for {
		switch {
		case it.j >= len(over):
			if it.i >= len(base) {
				return "", "", false
			}
			kv := base[it.i]
			it.i++
			return kv.Key, kv.Value, true
		case it.i < len(base) && base[it.i].Key < over[it.j].key:
			kv := base[it.i]
			it.i++
			return kv.Key, kv.Value, true
		}
		// The overlay's entry comes first, or replaces the base's.
		e := over[it.j]
		if it.i < len(base) && base[it.i].Key == e.key {
			it.i++
		}
		it.j++
		if !e.deleted {
			return e.key, e.value, true
		}
	}
}
