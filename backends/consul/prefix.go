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
