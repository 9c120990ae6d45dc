package consul

import (
	"context"
	"encoding/base64"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/backends/consul/catalog"
)

// asMap returns kvs as a map.
func asMap(kvs []backends.KV) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		m[kv.Key] = kv.Value
	}
	return m
}

func TestDiff(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		old, cur []backends.KV
		want     []backends.Change
	}{
		{name: "both empty"},
		{name: "all new", cur: kvList("/a", "1", "/b", ""), want: []backends.Change{{Key: "/a", Value: "1"}, {Key: "/b"}}},
		{name: "all gone", old: kvList("/a", "1", "/b", ""), want: []backends.Change{{Key: "/a", Deleted: true}, {Key: "/b", Deleted: true}}},
		{name: "same", old: kvList("/a", "1"), cur: kvList("/a", "1")},
		{
			name: "mixed",
			old:  kvList("/a", "1", "/b", "2", "/d", "4", "/e", ""),
			cur:  kvList("/a", "1", "/b", "two", "/c", "3", "/e", "", "/f", "6"),
			want: []backends.Change{{Key: "/b", Value: "two"}, {Key: "/c", Value: "3"}, {Key: "/d", Deleted: true}, {Key: "/f", Value: "6"}},
		},
		{name: "a value emptied", old: kvList("/a", "1"), cur: kvList("/a", ""), want: []backends.Change{{Key: "/a"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := diff(nil, tt.old, tt.cur); !slices.Equal(got, tt.want) {
				t.Errorf("diff = %+v, want %+v", got, tt.want)
			}
			if ref := backends.Diff(asMap(tt.old), asMap(tt.cur)); !slices.Equal(ref, tt.want) {
				t.Errorf("reference = %+v, want %+v", ref, tt.want)
			}
		})
	}
	r := rand.New(rand.NewPCG(3, 4))
	random := func() []backends.KV {
		var kvs []backends.KV
		for i := range 40 {
			if r.IntN(2) == 0 {
				kvs = append(kvs, backends.KV{Key: "/k" + strconv.Itoa(100+i), Value: strconv.Itoa(r.IntN(3))})
			}
		}
		return kvs
	}
	for range 1000 {
		old, cur := random(), random()
		if got, want := diff(nil, old, cur), backends.Diff(asMap(old), asMap(cur)); !slices.Equal(got, want) {
			t.Fatalf("diff(%q, %q) = %+v, want %+v", old, cur, got, want)
		}
	}
}

func TestUpdate(t *testing.T) {
	t.Parallel()
	l := func(kv ...string) *listing { return &listing{kvs: kvList(kv...)} }
	// Each listing's changes in order, and the whole sorted: catalog
	// keys of two queries may interleave.
	bases := []*listing{l("/a", "1", "/b", "2"), l("consul:s/x", "1", "consul:s/z", "1"), l("consul:s/y", "1")}
	cur := []*listing{l("/a", "1", "/c", "3"), l("consul:s/x", "2", "consul:s/z", "2"), l("consul:s/y", "2")}
	u := update(bases, cur, 7)
	want := []backends.Change{{Key: "/b", Deleted: true}, {Key: "/c", Value: "3"},
		{Key: "consul:s/x", Value: "2"}, {Key: "consul:s/y", Value: "2"}, {Key: "consul:s/z", Value: "2"}}
	if u.Rev != 7 || u.Full != nil || !slices.Equal(u.Changes, want) {
		t.Errorf("update = %+v, want changes %+v at 7", u, want)
	}
	u = update([]*listing{bases[0], nil, bases[2]}, cur, 8)
	if u.Full == nil || u.Full.Rev != 8 || !maps.Equal(u.Full.KVs, asMap(join(cur))) {
		t.Errorf("update without a base = %+v, want a full snapshot at 8", u)
	}
}

func TestJoin(t *testing.T) {
	t.Parallel()
	l := func(kv ...string) *listing { return &listing{kvs: kvList(kv...)} }
	tests := []struct {
		name string
		ls   []*listing
		want []backends.KV
	}{
		{name: "none", want: kvList()},
		{name: "end to end", ls: []*listing{l("/a", "1", "/b", "2"), l(), l("/c", "3"), l("consul:x", "4")},
			want: kvList("/a", "1", "/b", "2", "/c", "3", "consul:x", "4")},
		{name: "interleaved", ls: []*listing{l("consul:a", "1", "consul:c", "3"), l("consul:b", "2")},
			want: kvList("consul:a", "1", "consul:b", "2", "consul:c", "3")},
		{name: "the last listing wins", ls: []*listing{l("consul:a", "1", "consul:b", "2"), l("consul:a", "one")},
			want: kvList("consul:a", "one", "consul:b", "2")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var before [][]backends.KV
			for _, l := range tt.ls {
				before = append(before, slices.Clone(l.kvs))
			}
			got := join(tt.ls)
			if !slices.Equal(got, tt.want) {
				t.Errorf("join = %q, want %q", got, tt.want)
			}
			if !maps.Equal(asMap(got), toMap(tt.ls)) {
				t.Errorf("join = %q, toMap = %q", got, toMap(tt.ls))
			}
			for i, l := range tt.ls {
				if !slices.Equal(l.kvs, before[i]) {
					t.Errorf("join changed listing %d: %q, was %q", i, l.kvs, before[i])
				}
				if len(got) > 0 && len(l.kvs) > 0 && &got[0] == &l.kvs[0] {
					t.Errorf("join returned listing %d itself", i)
				}
			}
		})
	}
}

// checkList checks that l holds the keys and values of s, sorted by key,
// each once, at its revision or later.
func checkList(t *testing.T, l backends.List, s backends.Snapshot) {
	t.Helper()
	if !slices.IsSortedFunc(l.KVs, func(a, b backends.KV) int { return strings.Compare(a.Key, b.Key) }) ||
		len(slices.CompactFunc(slices.Clone(l.KVs), func(a, b backends.KV) bool { return a.Key == b.Key })) != len(l.KVs) {
		t.Errorf("List = %q, want keys sorted, each once", l.KVs)
	}
	if !maps.Equal(asMap(l.KVs), s.KVs) {
		t.Errorf("List = %q, want the keys of Snapshot, %v", l.KVs, s.KVs)
	}
	if l.Rev < s.Rev {
		t.Errorf("List at revision %d, before Snapshot's %d", l.Rev, s.Rev)
	}
}

// TestListFake reads key/value prefixes from a fake agent, in Consul's
// order, compact and indented, with folders, unclean names and keys that
// come out of order once cleaned: List and Snapshot agree, and the list
// is the caller's.
func TestListFake(t *testing.T) {
	t.Parallel()
	listing := func(indent bool, keys ...string) string {
		var b strings.Builder
		b.WriteString("[")
		for i, k := range keys {
			if i > 0 {
				b.WriteString(",")
			}
			if indent {
				b.WriteString("\n    ")
			}
			b.WriteString(`{"LockIndex":0,"Key":` + strconv.Quote(k) + `,"Flags":0,"Value":"dg==","CreateIndex":5,"ModifyIndex":5}`)
		}
		b.WriteString("]")
		return b.String()
	}
	bodies := map[string]string{
		"/v1/kv/app/": listing(false, "app/", "app/db/", "app/db/host", "app/dir/", "app/dir-x", "app/x"),
		"/v1/kv/b":    listing(true, "b", "b//c", "b/c", "bz"),
		"/v1/kv/c":    listing(true),
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Consul-Index", "9")
		body, ok := bodies[r.URL.Path]
		if !ok || !r.URL.Query().Has("recurse") {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(body))
	}))
	defer srv.Close()
	c, err := New(t.Context(), Config{Nodes: []string{srv.URL}, AuthToken: "t"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	}()
	prefixes := []string{"/b", "/app/", "/app/db", "/c"}
	s, err := c.Snapshot(t.Context(), prefixes)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"/app/db": "v", "/app/db/host": "v", "/app/dir": "v", "/app/dir-x": "v", "/app/x": "v",
		"/b": "v", "/b/c": "v", "/bz": "v"}
	if !maps.Equal(s.KVs, want) {
		t.Errorf("Snapshot = %v, want %v", s.KVs, want)
	}
	for range 2 { // the second time from the listings kept
		l, err := c.List(t.Context(), prefixes)
		if err != nil {
			t.Fatal(err)
		}
		checkList(t, l, s)
		for i := range l.KVs {
			l.KVs[i].Value = "changed by the caller"
		}
	}
}

// TestPlanBound plans the watch of many key/value prefixes beside catalog
// queries: the queries in all stay within maxQueries, every source is
// served by exactly one group, and more than maxServiceQueries services of
// a datacenter share the datacenter's three queries.
func TestPlanBound(t *testing.T) {
	t.Parallel()
	c, err := New(t.Context(), Config{Nodes: []string{"127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }() // never contacted
	tests := []struct {
		name     string
		kv       int
		services int
		other    []string
	}{
		{name: "1,000 prefixes", kv: 1000},
		{name: "200 prefixes and 2 services", kv: 200, services: 2},
		{name: "200 prefixes and 50 services", kv: 200, services: 50,
			other: []string{catalog.Query{Kind: catalog.KindServices}.Prefix(), catalog.Query{Kind: catalog.KindNodes}.Prefix()}},
		{name: "services only", services: 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var prefixes []string
			for i := range tt.kv {
				prefixes = append(prefixes, fmt.Sprintf("/scale/p%04d", i))
			}
			for i := range tt.services {
				prefixes = append(prefixes, catalog.Query{Kind: catalog.KindService, Name: fmt.Sprintf("svc%02d", i)}.Prefix())
			}
			prefixes = append(prefixes, tt.other...)
			srcs, err := c.sources(prefixes)
			if err != nil {
				t.Fatal(err)
			}
			c.mu.Lock()
			plan := c.plan(srcs)
			c.mu.Unlock()
			queries := 0
			served := map[string]int{}
			for _, g := range plan {
				queries += max(1, len(g.triggers))
				for _, n := range g.names {
					served[n]++
				}
			}
			if queries > maxQueries {
				t.Errorf("%d queries, want at most %d", queries, maxQueries)
			}
			for _, s := range srcs {
				if served[s.name()] != 1 {
					t.Errorf("%s served by %d groups, want 1", s.name(), served[s.name()])
				}
			}
			if len(served) != len(srcs) {
				t.Errorf("%d sources served, want %d", len(served), len(srcs))
			}
		})
	}
}

// groupListing returns a listing of n members (Consul prefixes
// "s/p000" …) with per keys each, in Consul's order, and the members.
func groupListing(n, per int) (kvs []backends.KV, members, names []string) {
	for m := range n {
		p := fmt.Sprintf("s/p%03d", m)
		members = append(members, p)
		names = append(names, kvSource{p: p}.name())
		for k := range per {
			kvs = append(kvs, backends.KV{Key: fmt.Sprintf("/%s/k%05d", p, k*n+m), Value: "v"})
		}
	}
	return kvs, members, names
}

func TestSplit(t *testing.T) {
	t.Parallel()
	kvs, members, names := groupListing(20, 5)
	// A key outside every member, as a group's listing may hold.
	kvs = append(kvs, backends.KV{Key: "/s/q", Value: "x"})
	got := split(kvs, members, names)
	shuffled := slices.Clone(kvs)
	rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	unsorted := split(shuffled, members, names)
	for i, m := range members {
		g := got[names[i]]
		if len(g) != 5 {
			t.Fatalf("member %s: %d pairs, want 5: %v", m, len(g), g)
		}
		for _, kv := range g {
			if !strings.HasPrefix(kv.Key, "/"+m+"/") {
				t.Errorf("member %s got key %s", m, kv.Key)
			}
		}
		if !maps.Equal(asMap(g), asMap(unsorted[names[i]])) {
			t.Errorf("member %s: sorted listing gives %v, shuffled %v", m, g, unsorted[names[i]])
		}
	}
}

// BenchmarkSplit splits the listing of a group of 100 prefixes of 50 keys
// each, as a group of the watch of 200 resources over 10,000 keys does on
// each change under it.
func BenchmarkSplit(b *testing.B) {
	kvs, members, names := groupListing(100, 50)
	for b.Loop() {
		split(kvs, members, names)
	}
}

// TestWatchRechecksAfterError: an agent restarted (its index back from 35
// to 30) first answers a blocking query with an error, as a dev agent
// without a leader yet does (HTTP 500) on the connection it just
// accepted. The next query must not block from the old index, which the
// new agent would hold until its own index passed it (60 s, or forever
// on a quiet store): the watch must see the new store. A small fake of
// the agent, since a real one cannot be made to answer so at will.
func TestWatchRechecksAfterError(t *testing.T) {
	t.Parallel()
	entry := func(v string) string {
		return `[{"LockIndex":0,"Key":"app/k","Flags":0,"Value":"` + base64.StdEncoding.EncodeToString([]byte(v)) +
			`","CreateIndex":5,"ModifyIndex":5}]`
	}
	var mu sync.Mutex
	restarted := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		blocking := r.URL.Query().Has("index")
		switch {
		case !blocking && !restarted:
			mu.Unlock()
			w.Header().Set("X-Consul-Index", "35")
			_, _ = w.Write([]byte(entry("old")))
		case !blocking:
			mu.Unlock()
			w.Header().Set("X-Consul-Index", "30")
			_, _ = w.Write([]byte(entry("new")))
		case !restarted:
			restarted = true
			mu.Unlock()
			http.Error(w, "No cluster leader", http.StatusInternalServerError)
		default:
			// Nothing changes: Consul holds the query for its wait.
			mu.Unlock()
			<-r.Context().Done()
		}
	}))
	defer srv.Close()
	c, err := New(t.Context(), Config{Nodes: []string{srv.URL}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }() // the fake holds a query open: Close cancels it
	prefixes := []string{"/app"}
	s, err := c.Snapshot(t.Context(), prefixes)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for {
		u, err := c.Watch(ctx, prefixes, s.Rev)
		if ctx.Err() != nil {
			t.Fatalf("the watch never saw the restarted agent's store: %v", err)
		}
		if err != nil {
			continue // the agent's error, reported once
		}
		if u.Full == nil || u.Full.KVs["/app/k"] != "new" {
			t.Fatalf("Watch = %+v, want a full snapshot of the new store", u)
		}
		return
	}
}
