package etcd

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kvconf/kvconf/backends"
)

// fakeKV serves the range requests of Client.List from a sorted key set,
// as etcd does: ranges sorted by key, cut at their limit with More set and
// Count the whole range's size. Only Get and Txn of ranges are
// implemented; the other methods of clientv3.KV panic.
type fakeKV struct {
	clientv3.KV // nil: the methods not overridden panic

	keys []string // sorted
	vals map[string]string
	rev  int64

	mu        sync.Mutex
	compacted int       // ranges left to fail with ErrCompacted
	revs      [][]int64 // by request, the revision each range asked for
}

func newFakeKV(kvs map[string]string) *fakeKV {
	return &fakeKV{keys: slices.Sorted(maps.Keys(kvs)), vals: kvs, rev: 42}
}

// clone returns a fake with the same keys and no requests seen.
func (f *fakeKV) clone() *fakeKV {
	return &fakeKV{keys: f.keys, vals: f.vals, rev: f.rev}
}

// request notes a request of ops.
func (f *fakeKV) request(ops []clientv3.Op) {
	f.mu.Lock()
	defer f.mu.Unlock()
	revs := make([]int64, len(ops))
	for i, op := range ops {
		revs[i] = op.Rev()
	}
	f.revs = append(f.revs, revs)
}

// rangeOp answers one range request.
func (f *fakeKV) rangeOp(op clientv3.Op) (*pb.RangeResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.compacted > 0 {
		f.compacted--
		return nil, rpctypes.ErrCompacted
	}
	key, end := string(op.KeyBytes()), string(op.RangeBytes())
	lo := sort.SearchStrings(f.keys, key)
	hi := len(f.keys)
	if end != "\x00" {
		hi = sort.SearchStrings(f.keys, end)
	}
	in := f.keys[lo:max(lo, hi)]
	resp := &pb.RangeResponse{Header: &pb.ResponseHeader{Revision: f.rev}, Count: int64(len(in))}
	if l := int(op.Limit()); l > 0 && len(in) > l {
		in, resp.More = in[:l], true
	}
	for _, k := range in {
		resp.Kvs = append(resp.Kvs, &mvccpb.KeyValue{Key: []byte(k), Value: []byte(f.vals[k])})
	}
	return resp, nil
}

func (f *fakeKV) Get(_ context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	op := clientv3.OpGet(key, opts...)
	f.request([]clientv3.Op{op})
	r, err := f.rangeOp(op)
	return (*clientv3.GetResponse)(r), err
}

func (f *fakeKV) Txn(context.Context) clientv3.Txn { return &fakeTxn{kv: f} }

// fakeTxn is a transaction of range requests on a fakeKV.
type fakeTxn struct {
	clientv3.Txn // nil: only Then and Commit are implemented

	kv  *fakeKV
	ops []clientv3.Op
}

func (t *fakeTxn) Then(ops ...clientv3.Op) clientv3.Txn {
	t.ops = append(t.ops, ops...)
	return t
}

func (t *fakeTxn) Commit() (*clientv3.TxnResponse, error) {
	t.kv.request(t.ops)
	resp := &clientv3.TxnResponse{Header: &pb.ResponseHeader{Revision: t.kv.rev}, Succeeded: true}
	for _, op := range t.ops {
		r, err := t.kv.rangeOp(op)
		if err != nil {
			return nil, err
		}
		resp.Responses = append(resp.Responses, &pb.ResponseOp{Response: &pb.ResponseOp_ResponseRange{ResponseRange: r}})
	}
	return resp, nil
}

// fakeClient returns a Client whose requests go to kv.
func fakeClient(kv *fakeKV) *Client {
	return &Client{cli: &clientv3.Client{KV: kv}, requestTimeout: time.Minute, done: make(chan struct{})}
}

// TestList reads key sets that take several pages, alone and among many
// prefixes, and checks that List returns exactly the keys under the
// prefixes, sorted, all read at the revision of the first request, and
// that Snapshot holds the same.
func TestList(t *testing.T) {
	t.Parallel()
	kvs := map[string]string{"/bigger": "x", "noslash": "y", "/big": "z"}
	for i := range pageSize + 10 {
		kvs[fmt.Sprintf("/big/%06d", i)] = fmt.Sprint("v", i)
	}
	// 65 prefixes: two transactions. The ranges of the first are cut at
	// their share of a page and read on in pages, in between the others.
	var many []string
	for i := range txnRanges + 1 {
		p := fmt.Sprintf("/many/%03d/", i)
		many = append(many, p)
		for j := range pageSize/txnRanges + 10 {
			kvs[fmt.Sprintf("%s%04d", p, j)] = fmt.Sprint(i, ".", j)
		}
	}
	kvs["/many/000"] = "not under /many/000/"
	data := newFakeKV(kvs)
	tests := []struct {
		name     string
		prefixes []string
	}{
		{name: "pages", prefixes: []string{"/big/"}},
		{name: "plain prefix", prefixes: []string{"/big"}},
		{name: "root", prefixes: []string{"/"}},
		{name: "many prefixes", prefixes: many},
		{name: "covered and missing", prefixes: []string{"/many/007/", "/big/", "/many/", "/nothing"}},
		{name: "none", prefixes: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			kv := data.clone()
			c := fakeClient(kv)
			l, err := c.List(t.Context(), tt.prefixes)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, k := range kv.keys {
				if naive(k, tt.prefixes) {
					want = append(want, k)
				}
			}
			got := make([]string, len(l.KVs))
			for i, e := range l.KVs {
				got[i] = e.Key
				if e.Value != kvs[e.Key] {
					t.Fatalf("List: %s = %q, want %q", e.Key, e.Value, kvs[e.Key])
				}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("List(%d prefixes) = %d keys, want %d, sorted", len(tt.prefixes), len(got), len(want))
			}
			if l.Rev != uint64(kv.rev) {
				t.Errorf("List at revision %d, want %d", l.Rev, kv.rev)
			}
			if len(tt.prefixes) > 0 && len(kv.revs) < 2 {
				t.Errorf("%d requests, want several", len(kv.revs))
			}
			for i, revs := range kv.revs[1:] {
				for _, r := range revs {
					if r != kv.rev {
						t.Fatalf("request %d at revision %d, want %d, that of the first", i+2, r, kv.rev)
					}
				}
			}

			s, err := c.Snapshot(t.Context(), tt.prefixes)
			if err != nil {
				t.Fatal(err)
			}
			m := map[string]string{}
			for _, e := range l.KVs {
				m[e.Key] = e.Value
			}
			if !maps.Equal(s.KVs, m) || s.Rev != l.Rev {
				t.Errorf("Snapshot differs from List: %d keys at %d, want %d at %d", len(s.KVs), s.Rev, len(m), l.Rev)
			}
		})
	}
}

// TestListCompacted checks that List starts again when the revision it
// reads at is compacted between two pages, and gives up after a few tries.
func TestListCompacted(t *testing.T) {
	t.Parallel()
	kvs := map[string]string{}
	for i := range pageSize + 1 {
		kvs[fmt.Sprintf("/k/%06d", i)] = "v"
	}
	kv := newFakeKV(kvs)
	kv.compacted = snapshotTries - 1
	l, err := fakeClient(kv).List(t.Context(), []string{"/k/"})
	if err != nil || len(l.KVs) != len(kvs) {
		t.Fatalf("List after %d compactions = %d keys, %v; want %d", snapshotTries-1, len(l.KVs), err, len(kvs))
	}
	kv = newFakeKV(kvs)
	kv.compacted = snapshotTries
	if _, err := fakeClient(kv).List(t.Context(), []string{"/k/"}); err == nil || !strings.Contains(err.Error(), "compacted") {
		t.Errorf("List after %d compactions: %v, want the compaction error", snapshotTries, err)
	}
}

// TestAppendKVs checks the copy of a page into one shared string: keys and
// values come out whole, empty values included, and later pages append.
func TestAppendKVs(t *testing.T) {
	t.Parallel()
	page := []*mvccpb.KeyValue{
		{Key: []byte("/a"), Value: []byte("1")},
		{Key: []byte("/b"), Value: nil},
		{Key: []byte("/c"), Value: []byte("three")},
	}
	got := appendKVs([]backends.KV{{Key: "/0", Value: "zero"}}, page)
	want := []backends.KV{{Key: "/0", Value: "zero"}, {Key: "/a", Value: "1"}, {Key: "/b"}, {Key: "/c", Value: "three"}}
	if !slices.Equal(got, want) {
		t.Errorf("appendKVs = %q, want %q", got, want)
	}
	page[0].Key[1] = 'z' // the strings are copies
	if got[1].Key != "/a" {
		t.Errorf("appendKVs kept a reference to the page: key is now %q", got[1].Key)
	}
	if got := appendKVs(nil, nil); len(got) != 0 {
		t.Errorf("appendKVs(nil, nil) = %q", got)
	}
}

// TestListLargePrefixPages reads a prefix of 17 pages' worth of keys and
// checks that it takes the first page plus at most restPages more, whose
// size comes from the count of the first: etcd before 3.5 walks every key
// left in the range for each page, so pages of a fixed size would cost it
// the square of the key count.
func TestListLargePrefixPages(t *testing.T) {
	t.Parallel()
	const n = 17 * pageSize
	kvs := make(map[string]string, n)
	for i := range n {
		kvs[fmt.Sprintf("/huge/%07d", i)] = "v"
	}
	kv := newFakeKV(kvs)
	l, err := fakeClient(kv).List(t.Context(), []string{"/huge/"})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.KVs) != n {
		t.Fatalf("List = %d keys, want %d", len(l.KVs), n)
	}
	if got := len(kv.revs); got > 1+restPages {
		t.Errorf("List took %d requests, want at most %d", got, 1+restPages)
	}
	if restPage(16*pageSize) != 2*pageSize || restPage(10) != pageSize {
		t.Errorf("restPage(%d) = %d, restPage(10) = %d; want %d and %d", 16*pageSize, restPage(16*pageSize), restPage(10), 2*pageSize, pageSize)
	}
}
