package metadata

import (
	"slices"
	"strings"
)

// dirOf returns the path to request for the keys under prefix p: p up to
// its last "/", so that the plain string prefix "/self/serv" is served by
// the sub-tree at "/self", which holds "/self/service" and "/self/servers"
// alike. "" stands for the root of the document.
func dirOf(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return ""
	}
	return p[:i]
}

// dirs returns the paths to request for prefixes: sorted, without
// duplicates, and without a path inside another one. A prefix that does
// not start with "/", such as a Consul catalog key ("consul:..."), belongs
// to another backend's namespace: no metadata key starts with it, and it
// is not requested.
func dirs(prefixes []string) []string {
	ds := make([]string, 0, len(prefixes))
	for _, p := range prefixes {
		if p != "" && !strings.HasPrefix(p, "/") {
			continue
		}
		ds = append(ds, dirOf(p))
	}
	slices.Sort(ds)
	ds = slices.Compact(ds)
	out := ds[:0]
	for _, d := range ds {
		// Sorted, a path comes after the paths that hold it, though
		// not always right after: "/a" < "/a-b" < "/a/b".
		if slices.ContainsFunc(out, func(o string) bool { return inside(d, o) }) {
			continue
		}
		out = append(out, d)
	}
	return slices.Clip(out)
}

// inside reports whether key k lies in the sub-tree at path d.
func inside(k, d string) bool {
	return d == "" || k == d || strings.HasPrefix(k, d) && len(k) > len(d) && k[len(d)] == '/'
}

// under reports whether key starts with one of prefixes.
func under(key string, prefixes []string) bool {
	return slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(key, p) })
}
