package funcs

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/kvconf/kvconf/backends"
)

// ErrNotExist is wrapped by every [*KeyError].
var ErrNotExist = errors.New("funcs: key does not exist")

// KeyError reports a key that is not in the store.
type KeyError struct {
	// Key is the key as the template asked for it.
	Key string
}

func (e *KeyError) Error() string { return fmt.Sprintf("key %q does not exist", e.Key) }

// Unwrap returns [ErrNotExist].
func (e *KeyError) Unwrap() error { return ErrNotExist }

// KV is one key and its value as a template sees them: get returns one,
// gets a list of them, and templates read .Key and .Value.
//
// It has the fields of [backends.KV] but is a type apart, on purpose. A
// backends.KV holds a full backend key and belongs to the backend
// contract, in a package that imports nothing of kvconf's; a KV holds the
// key as the template's view sees it (relative to the resource's prefix,
// see [Store.View]) and is template data: its name shows in
// text/template's errors ("can't evaluate field Host in type funcs.KV"),
// and it can gain what templates need without touching the contract. The
// store makes a KV from its backends.KV when it strips the view's root,
// which it has to do anyway, so the two types cost no extra copy.
type KV struct {
	// Key is the key as the template's view sees it, such as "/db/host".
	Key string
	// Value is the key's value.
	Value string
}

// Store is an immutable, sorted set of key/value pairs. Look-ups cost
// O(log n + k): they binary-search to the literal prefix of what is asked
// and walk only the matching keys. [Store.Apply] returns a new store that
// shares the bulk of its keys with the old one and costs about O(sqrt n) a
// change; [Store.Replace] builds a new one.
//
// A store may be a view (see [Store.View]) that shows only the keys under
// some prefixes, with a root prefix stripped, the way a template resource
// sees its backend's data. A Store is safe for concurrent use.
type Store struct {
	tree *sorted
	root string   // stripped from full keys; "" for none
	keys []string // full-key prefixes the view may see; nil for all
}

// NewStore returns a store holding kvs; keys are full paths such as "/a/b".
func NewStore(kvs map[string]string) *Store {
	return &Store{tree: newSorted(kvs)}
}

// NewStoreList returns a store holding kvs, a [backends.List]'s pairs
// with full keys. The store keeps kvs, which the caller must not change
// afterwards. Sorted by key without duplicates, as a [backends.Lister]
// returns them, they cost a check of the order, with neither a map nor a
// sort; otherwise they are sorted in place, and of the pairs with the same
// key the last one wins.
func NewStoreList(kvs []backends.KV) *Store {
	return &Store{tree: newSortedList(kvs)}
}

// Len returns the number of keys in the underlying store, ignoring any view.
func (s *Store) Len() int { return s.tree.n }

// Apply returns a store with changes applied in order. Views keep their
// root and keys.
func (s *Store) Apply(changes []backends.Change) *Store {
	if len(changes) == 0 {
		return s
	}
	return &Store{tree: s.tree.apply(changes), root: s.root, keys: s.keys}
}

// Replace returns a store in which everything under prefixes (plain string
// prefixes, as in [backends.Backend.Snapshot]) is replaced by kvs.
func (s *Store) Replace(prefixes []string, kvs map[string]string) *Store {
	return &Store{tree: s.tree.replace(prefixes, kvs), root: s.root, keys: s.keys}
}

// View returns a store that shows only keys starting with root+k for some k
// in keys, with root stripped: with root "/app" and keys ["/db"], the full
// key "/app/db/host" is seen as "/db/host". Keys are matched as plain string
// prefixes, as confd fetches them. An empty keys list shows everything
// under root. The view is taken over s's underlying store, not over s's view.
func (s *Store) View(root string, keys []string) *Store {
	root = strings.TrimSuffix(cleanKey(root), "/")
	full := make([]string, 0, len(keys))
	for _, k := range keys {
		full = append(full, root+cleanKey(k))
	}
	if len(full) == 0 {
		full = append(full, root+"/")
		if root == "" {
			full[0] = ""
		}
	}
	return &Store{tree: s.tree, root: root, keys: minimalPrefixes(full)}
}

// minimalPrefixes sorts ps and drops every entry that another one is a
// prefix of, so the rest cover disjoint, ordered ranges of keys.
func minimalPrefixes(ps []string) []string {
	sort.Strings(ps)
	out := ps[:0]
	for _, p := range ps {
		if len(out) > 0 && strings.HasPrefix(p, out[len(out)-1]) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// cleanKey makes k absolute and clean: "a//b/" becomes "/a/b".
func cleanKey(k string) string { return path.Clean("/" + k) }

// full maps a key as the view sees it to the key in the underlying tree.
func (s *Store) full(k string) string { return s.root + cleanKey(k) }

// visible reports whether the view may see the full key k.
func (s *Store) visible(k string) bool {
	if s.keys == nil {
		return true
	}
	for _, p := range s.keys {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return false
}

// ranges returns the literal prefixes to walk for keys starting with want,
// each within one of the view's key prefixes, in key order.
func (s *Store) ranges(want string) []string {
	if s.keys == nil {
		return []string{want}
	}
	var out []string
	for _, p := range s.keys {
		switch {
		case strings.HasPrefix(want, p):
			return []string{want}
		case strings.HasPrefix(p, want):
			out = append(out, p)
		}
	}
	return out
}

// walk calls fn for each key starting with prefix, in order, until fn
// returns a non-empty key to seek to (the walk goes on from the first key
// not less than it) or false to stop.
func (s *Store) walk(prefix string, fn func(k, v string) (seek string, more bool)) {
	it := s.tree.seek(prefix)
	for {
		k, v, ok := it.next()
		if !ok || !strings.HasPrefix(k, prefix) {
			return
		}
		seek, more := fn(k, v)
		if !more {
			return
		}
		if seek != "" {
			it = s.tree.seek(seek)
		}
	}
}

// Lookup returns the value of the full key k as stored, ignoring any view
// and without cleaning k: it is for code that tracks backend keys, not for
// templates.
func (s *Store) Lookup(k string) (string, bool) { return s.tree.get(k) }

// Walk calls fn with every full key that starts with prefix, and its
// value, in key order, ignoring any view, until fn returns false.
func (s *Store) Walk(prefix string, fn func(k, v string) bool) {
	s.walk(prefix, func(k, v string) (string, bool) { return "", fn(k, v) })
}

// Get returns the value of key, or a [*KeyError].
func (s *Store) Get(key string) (string, error) {
	k := s.full(key)
	if s.visible(k) {
		if v, ok := s.tree.get(k); ok {
			return v, nil
		}
	}
	return "", &KeyError{Key: key}
}

// Exists reports whether key is in the store.
func (s *Store) Exists(key string) bool {
	_, err := s.Get(key)
	return err == nil
}

// GetAll returns the pairs whose keys match pattern (see [path.Match]: "*"
// does not cross "/"), sorted by key. Keys are as the view sees them.
func (s *Store) GetAll(pattern string) ([]KV, error) {
	m, err := s.match(pattern)
	if err != nil {
		return nil, err
	}
	out := []KV{}
	if m.simple {
		// Every pair is read twice, but the result is allocated once, at
		// its size.
		n := 0
		m.each(func(string, string) bool { n++; return true })
		out = make([]KV, 0, n)
	}
	m.each(func(k, v string) bool {
		if len(out) == cap(out) {
			// Double: append grows a large slice by a quarter only,
			// which allocates and copies about five times its final size.
			out = slices.Grow(out, max(len(out), 4))
		}
		out = append(out, KV{Key: strings.TrimPrefix(k, s.root), Value: v})
		return true
	})
	return out, nil
}

// EachAll calls fn with each pair that GetAll(pattern) returns, in the
// same order, until fn returns false, without making their list. Its error
// is GetAll's, returned before fn is called.
//
// It is GetAll for a reader that takes the pairs one at a time: a range
// over 100,000 of them then allocates a few kilobytes instead of their
// list. A set that declares a function to be GetAll ([RegisterGetAll])
// lets callers read that function's result this way; the template fast
// path does, for {{range gets "pattern"}}.
func (s *Store) EachAll(pattern string, fn func(KV) bool) error {
	m, err := s.match(pattern)
	if err != nil {
		return err
	}
	m.each(func(k, v string) bool { return fn(KV{Key: strings.TrimPrefix(k, s.root), Value: v}) })
	return nil
}

// matches are the pairs of a store whose full keys match a pattern: what
// GetAll and EachAll read.
type matches struct {
	s        *Store
	pat, lit string // the full pattern and its part before any wildcard
	depth    int    // the "/" of every match, or -1 when that is unknown
	simple   bool   // the only wildcard is a final "*"
	// leaves are the ranges of the base array to read for a simple
	// pattern when the overlay changes no key in them (see [sorted.under]);
	// nil when they must be walked.
	leaves [][]backends.KV
}

// match returns the matches of pattern in s.
func (s *Store) match(pattern string) (matches, error) {
	if _, err := path.Match(pattern, ""); err != nil {
		return matches{}, fmt.Errorf("pattern %q: %w", pattern, err)
	}
	m := matches{s: s, pat: s.full(pattern), depth: -1}
	if strings.HasSuffix(pattern, "/") && m.pat != "/" {
		m.pat += "/" // cleanKey drops it, but it makes the pattern match nothing, as in confd
	}
	m.lit = m.pat
	if i := strings.IndexAny(m.pat, `*?[\`); i >= 0 {
		m.lit = m.pat[:i]
	}
	// Without character classes or escapes, a match has exactly as many
	// "/" as the pattern, so deeper subtrees can be skipped whole.
	if !strings.ContainsAny(m.pat, `[\`) {
		m.depth = strings.Count(m.pat, "/")
	}
	// When the only wildcard is a final "*", every key left after that
	// skip matches: it starts with lit and has no "/" after it, and
	// path.Match is not needed.
	m.simple = m.depth >= 0 && m.pat[len(m.lit):] == "*"
	if m.simple {
		m.leaves = s.leaves(m.lit)
	}
	return m, nil
}

// each calls fn with the full key and value of each match, in key order,
// until fn returns false.
func (m *matches) each(fn func(k, v string) bool) {
	if m.leaves != nil {
		for _, kvs := range m.leaves {
			if !eachLeaf(kvs, len(m.lit), fn) {
				return
			}
		}
		return
	}
	more := true
	for _, r := range m.s.ranges(m.lit) {
		m.s.walk(r, func(k, v string) (string, bool) {
			if m.depth >= 0 {
				if i := nthIndex(k, '/', m.depth+1); i >= 0 {
					return k[:i] + "0", true // past every key under k[:i+1]
				}
			}
			if m.simple {
				more = fn(k, v)
			} else if ok, _ := path.Match(m.pat, k); ok {
				more = fn(k, v)
			}
			return "", more
		})
		if !more {
			return
		}
	}
}

// leaves returns the ranges of the base array of s's set that hold the
// keys under lit in the view's ranges, when the set's overlay changes none
// of them; otherwise nil. Reading them directly is much faster than
// walking the set.
func (s *Store) leaves(lit string) [][]backends.KV {
	ranges := s.ranges(lit)
	parts := make([][]backends.KV, len(ranges))
	for i, p := range ranges {
		kvs, ok := s.tree.under(p)
		if !ok {
			return nil
		}
		parts[i] = kvs
	}
	return parts
}

// eachLeaf calls fn with the key and value of each pair of kvs, sorted
// pairs whose keys share their first off bytes, that has no "/" after
// those bytes, skipping the pairs of a deeper key's subtree with one
// binary search, until fn returns false; it reports whether fn never did.
func eachLeaf(kvs []backends.KV, off int, fn func(k, v string) bool) bool {
	for i := 0; i < len(kvs); {
		k := kvs[i].Key
		j := strings.IndexByte(k[off:], '/')
		if j < 0 {
			if !fn(k, kvs[i].Value) {
				return false
			}
			i++
			continue
		}
		// Past every key under k[:off+j+1]: "0" follows "/".
		next, _ := findKV(kvs[i:], k[:off+j]+"0")
		i += next
	}
	return true
}

// nthIndex returns the index of the n-th (1-based) occurrence of c in s,
// or -1.
func nthIndex(s string, c byte, n int) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			if n--; n == 0 {
				return i
			}
		}
	}
	return -1
}

// GetAllValues returns the values of the keys matching pattern, sorted by
// value, as confd's getvs does.
func (s *Store) GetAllValues(pattern string) ([]string, error) {
	kvs, err := s.GetAll(pattern)
	if err != nil {
		return nil, err
	}
	vs := make([]string, len(kvs))
	for i, kv := range kvs {
		vs[i] = kv.Value
	}
	sort.Strings(vs)
	return vs, nil
}

// List returns the sorted, unique names of dir's immediate children: the
// first path element of every key under dir. As in confd, a key equal to
// dir itself lists its own base name.
func (s *Store) List(dir string) []string { return s.list(dir, false) }

// ListDir returns the sorted, unique names of dir's immediate children that
// have children of their own.
func (s *Store) ListDir(dir string) []string { return s.list(dir, true) }

func (s *Store) list(dir string, dirsOnly bool) []string {
	d := s.full(dir)
	seen := map[string]bool{}
	if !dirsOnly && d != "/" && s.visible(d) {
		if _, ok := s.tree.get(d); ok {
			seen[path.Base(d)] = true
		}
	}
	base := strings.TrimSuffix(d, "/") + "/"
	for _, r := range s.ranges(base) {
		s.walk(r, func(k, _ string) (string, bool) {
			rest := k[len(base):]
			child, _, deeper := strings.Cut(rest, "/")
			if child == "" {
				return "", true
			}
			if deeper || !dirsOnly {
				seen[child] = true
			}
			if deeper {
				// Skip the rest of child's subtree: every key between
				// base+child+"/" and base+child+"0" is in it.
				return base + child + "0", true
			}
			return "", true
		})
	}
	out := make([]string, 0, len(seen))
	for c := range seen {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}
