package etcd

import (
	"slices"
	"sort"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// merge returns the prefixes that cover prefixes: sorted, without
// duplicates, and without a prefix that another one covers (by plain
// string prefix: "/app" covers "/app/db" and "/appx"). "/" is taken as ""
// and so covers every key, even keys that do not start with "/", as the
// backend contract says it matches every key. No prefix gives none.
func merge(prefixes []string) []string {
	ps := make([]string, 0, len(prefixes))
	for _, p := range prefixes {
		if p == "/" {
			p = ""
		}
		ps = append(ps, p)
	}
	slices.Sort(ps)
	// Sorted, the prefixes that p covers come after p, and only prefixes
	// that p covers lie between them, so comparing with the last prefix
	// kept is enough.
	out := ps[:0]
	for _, p := range ps {
		if len(out) > 0 && strings.HasPrefix(p, out[len(out)-1]) {
			continue
		}
		out = append(out, p)
	}
	return slices.Clip(out)
}

// under reports whether key starts with one of ps, a result of [merge].
// Since no prefix of ps covers another, the only candidate is the greatest
// prefix not after key.
func under(key string, ps []string) bool {
	i := sort.SearchStrings(ps, key) // first prefix >= key
	if i < len(ps) && ps[i] == key {
		return true
	}
	return i > 0 && strings.HasPrefix(key, ps[i-1])
}

// span returns the key range [key, end) of the keys under prefix p, in the
// form etcd takes: "" has key "\x00", and an end of "\x00" means "every
// key from key on".
func span(p string) (key, end string) {
	if p == "" {
		return "\x00", "\x00"
	}
	return p, clientv3.GetPrefixRangeEnd(p)
}

// cover returns the smallest key range [key, end) that holds every key
// under ps, a non-empty result of [merge]: from the first prefix to the
// end of the last one. Since ps is sorted and no prefix covers another,
// the last prefix also has the greatest end. An end of "\x00" means "every
// key from key on".
func cover(ps []string) (key, end string) {
	key, _ = span(ps[0])
	_, end = span(ps[len(ps)-1])
	return key, end
}
