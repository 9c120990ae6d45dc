package consul

import (
	"fmt"
	"path"
	"slices"
	"strings"

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

// collect adds to kvs the entries listed under the Consul prefix p, with
// confd's keys: confd takes path.Join("/", key), so "app/db" is "/app/db"
// and a folder "app/dir/" (a key that ends in "/", usually without a
// value) is "/app/dir", with its value (usually ""). A folder never hides
// a key of the same name ("app/dir" wins over "app/dir/"), and an entry
// whose cleaned name falls outside the prefix (the folder "app/" under
// the prefix "app/") is left out.
func collect(kvs map[string]string, p string, entries []entry) {
	want := "/" + p
	folders := map[string]bool{}
	for _, e := range entries {
		k := path.Clean(e.full) // no allocation when e.full is clean
		if !strings.HasPrefix(k, want) {
			continue
		}
		exact := k == e.full
		if _, had := kvs[k]; had && !exact && !folders[k] {
			continue // a folder or an unclean name never hides a key
		}
		kvs[k] = e.value
		folders[k] = !exact
	}
}
