package consul

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/backends/consul/catalog"
)

// kvPrefix returns the Consul form of a template prefix: without its
// leading "/", since Consul keys have none ("/app/db" is "app/db"; "/" is
// "", every key).
func kvPrefix(p string) string {
	return strings.TrimPrefix(p, "/")
}

// merge returns the Consul prefixes that cover prefixes: in Consul form
// (see [kvPrefix]), sorted, without duplicates and without a prefix that
// another one covers by plain string prefix ("app" covers "app/db" and
// "appx"). No prefix gives none.
func merge(prefixes []string) []string {
	ps := make([]string, 0, len(prefixes))
	for _, p := range prefixes {
		ps = append(ps, kvPrefix(p))
	}
	return cover(ps)
}

// cover sorts ps in place and returns it without duplicates and without a
// string that another one of ps is a string prefix of.
func cover(ps []string) []string {
	slices.Sort(ps)
	// Sorted, the prefixes that p covers come right after p.
	out := ps[:0]
	for _, p := range ps {
		if len(out) > 0 && strings.HasPrefix(p, out[len(out)-1]) {
			continue
		}
		out = append(out, p)
	}
	return slices.Clip(out)
}

// partition splits prefixes into key/value prefixes, merged (see
// [merge]), and catalog queries (prefixes for which [catalog.IsKey] holds),
// sorted by prefix and without a query that another one covers: every
// service of a datacenter covers each service of it. Catalog prefixes are
// never merged with key/value prefixes: "/" covers every key/value key,
// not the catalog. A catalog prefix that is not one made by
// [catalog.Query.Prefix] is an error.
func partition(prefixes []string) (kv []string, queries []catalog.Query, err error) {
	var kvs, cats []string
	for _, p := range prefixes {
		if catalog.IsKey(p) {
			q, ok := catalog.ParsePrefix(p)
			if !ok || q.Prefix() != p {
				return nil, nil, fmt.Errorf("%q is not a catalog prefix (see package catalog)", p)
			}
			cats = append(cats, p)
		} else {
			kvs = append(kvs, p)
		}
	}
	for _, p := range cover(cats) {
		q, _ := catalog.ParsePrefix(p) // checked above
		queries = append(queries, q)
	}
	return merge(kvs), queries, nil
}

// pairs returns the pairs that a listing of the Consul prefix p holds,
// kvs ("/" + the Consul key, and the value, in Consul's order), with
// confd's keys, sorted by key: confd takes path.Join("/", key), so
// "app/db" is "/app/db" and a folder "app/dir/" (a key that ends in "/",
// usually without a value) is "/app/dir", with its value (usually ""). A
// folder never hides a key of the same name ("app/dir" wins over
// "app/dir/"), and a pair whose cleaned key falls outside the prefix (the
// folder "app/" under the prefix "app/") is left out. pairs may reuse
// kvs.
//
// Consul lists keys sorted, so the keys usually come out in order: then
// pairs keeps them where they are, with no copy when every key is clean.
// Otherwise (a folder followed by keys that sort before it once it loses
// its "/", such as "app/dir/" and "app/dir-x") it collects them in a map
// and sorts them.
func pairs(p string, kvs []backends.KV) []backends.KV {
	n, changed, ok := inOrder(p, kvs, false)
	switch {
	case !ok:
		m := make(map[string]string, len(kvs))
		collect(m, p, kvs)
		out := make([]backends.KV, 0, len(m))
		for k, v := range m {
			out = append(out, backends.KV{Key: k, Value: v})
		}
		slices.SortFunc(out, func(a, b backends.KV) int { return strings.Compare(a.Key, b.Key) })
		return out
	case changed:
		n, _, _ = inOrder(p, kvs, true)
		clear(kvs[n:]) // let the pairs left out go
	}
	return kvs[:n]
}

// inOrder applies the rules of [pairs] to kvs in one pass, when the
// cleaned keys that fall under p come in order: each one after the
// previous one, or equal to it (a folder after its key). It reports n, the
// number of pairs, whether they differ from the first n of kvs, and ok,
// whether the keys came in order. With write, it puts the pairs in kvs[:n].
func inOrder(p string, kvs []backends.KV, write bool) (n int, changed, ok bool) {
	want := "/" + p
	last, lastExact := "", false // the key of the last pair, and whether it was clean
	for _, kv := range kvs {
		k, exact := kv.Key, isClean(kv.Key)
		if !exact {
			k, changed = path.Clean(k), true
		}
		if !strings.HasPrefix(k, want) {
			changed = true
			continue
		}
		if n > 0 {
			switch strings.Compare(k, last) {
			case -1:
				return 0, false, false
			case 0:
				changed = true
				if exact || !lastExact {
					// A folder or an unclean name never hides a key.
					if write {
						kvs[n-1].Value = kv.Value
					}
					lastExact = exact
				}
				continue
			}
		}
		if write {
			kvs[n] = backends.KV{Key: k, Value: kv.Value}
		}
		n++
		last, lastExact = k, exact
	}
	return n, changed, true
}

// isClean reports whether key, which starts with "/", is clean:
// path.Clean(key) == key.
func isClean(key string) bool {
	if key == "" || key[0] != '/' {
		return false
	}
	if key == "/" {
		return true
	}
	for rest := key[1:]; ; {
		elem, after, more := strings.Cut(rest, "/")
		if elem == "" || elem == "." || elem == ".." {
			return false
		}
		if !more {
			return true
		}
		rest = after
	}
}

// collect adds to kvs the pairs of a listing of the Consul prefix p, with
// the rules of [pairs], as a map.
func collect(kvs map[string]string, p string, listed []backends.KV) {
	want := "/" + p
	folders := map[string]bool{}
	for _, e := range listed {
		k := path.Clean(e.Key) // no allocation when e.Key is clean
		if !strings.HasPrefix(k, want) {
			continue
		}
		exact := k == e.Key
		if _, had := kvs[k]; had && !exact && !folders[k] {
			continue // a folder or an unclean name never hides a key
		}
		kvs[k] = e.Value
		folders[k] = !exact
	}
}

// cut is one group of [groups]: key/value prefixes listed together by one
// recursive listing of prefix, which they all start with.
type cut struct {
	prefix  string
	members []string
	weight  int // the sum of the members' weights
}

// groups cuts ps, Consul prefixes sorted with none covering another, into
// at most n groups, each listed by one recursive listing of a common
// string prefix of its members and split among them. Consul's recurse
// matches keys by plain string prefix, so a group can be cut at any
// character: "scale/p0" covers scale/p00 … scale/p09.
//
// The groups are the nodes of the trie of ps where it is cut: starting
// from one group (the longest common prefix of all), groups splits the
// heaviest group into its children (the runs of members that share one
// more character, each under its own longest common prefix) as long as
// the number of groups stays within n. weights[i] is the cost of listing
// ps[i], its keys plus one; a group weighs the sum of its members'. A
// group's listing also holds the keys under its prefix that no member
// watches, which the trie keeps few by cutting at the members' common
// prefixes.
func groups(ps []string, weights []int, n int) []cut {
	if len(ps) == 0 {
		return nil
	}
	type node struct {
		cut
		weight int
		done   bool // cannot be split within n
		lo     int  // index in ps of members[0]
	}
	weigh := func(lo, hi int) int {
		w := 0
		for _, x := range weights[lo:hi] {
			w += x
		}
		return w
	}
	mk := func(lo, hi int) *node {
		w := weigh(lo, hi)
		return &node{cut: cut{prefix: lcp(ps[lo:hi]), members: ps[lo:hi], weight: w}, weight: w, lo: lo}
	}
	nodes := []*node{mk(0, len(ps))}
	for {
		var heavy *node
		for _, g := range nodes {
			if !g.done && len(g.members) > 1 && (heavy == nil || g.weight > heavy.weight) {
				heavy = g
			}
		}
		if heavy == nil {
			break
		}
		var kids []*node
		for _, r := range children(heavy.members, len(heavy.prefix)) {
			kids = append(kids, mk(heavy.lo+r[0], heavy.lo+r[1]))
		}
		if len(nodes)-1+len(kids) > n || len(kids) < 2 {
			heavy.done = true
			continue
		}
		i := slices.Index(nodes, heavy)
		nodes = slices.Replace(nodes, i, i+1, kids...)
	}
	out := make([]cut, len(nodes))
	for i, g := range nodes {
		out[i] = g.cut
	}
	return out
}

// children returns the children of a trie node at depth (the length of
// the node's prefix) whose members are ms, sorted: the runs ms[lo:hi] of
// members with the same byte at depth, as [lo, hi] pairs.
func children(ms []string, depth int) [][2]int {
	var out [][2]int
	start := 0
	for i := 1; i <= len(ms); i++ {
		if i == len(ms) || !sameAt(ms[start], ms[i], depth) {
			out = append(out, [2]int{start, i})
			start = i
		}
	}
	return out
}

// sameAt reports whether a and b have the same byte at i, or both end
// before it.
func sameAt(a, b string, i int) bool {
	switch {
	case len(a) <= i || len(b) <= i:
		return len(a) <= i && len(b) <= i
	default:
		return a[i] == b[i]
	}
}

// lcp returns the longest common prefix of ps, sorted.
func lcp(ps []string) string {
	first, last := ps[0], ps[len(ps)-1]
	i := 0
	for i < len(first) && i < len(last) && first[i] == last[i] {
		i++
	}
	return first[:i]
}
