package etcd

import (
	"context"
	"fmt"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kvconf/kvconf/backends"
)

// pageSize is the most keys the first range request of a prefix reads
// (shared among the prefixes of one transaction). A page of small keys
// takes about 5 MiB to decode.
const pageSize = 25_000

// restPages is the most range requests that read the keys of a prefix
// left after its first page. Before 3.5, etcd walks its index over every
// key left in the range for each page, however small the page: reading
// n keys in pages of p costs it n²/2p key visits, which at 1,000,000 keys
// in pages of 25,000 took twice the time of one range read. Sized from
// the count the first page returns, the rest comes in at most restPages
// pages, so that etcd's work stays within a small multiple of n, while
// kvconf holds at most one of these pages decoded at a time.
const restPages = 8

// txnRanges is the most range requests put in one transaction: under
// etcd's default --max-txn-ops of 128.
const txnRanges = 64

// list reads ps, a result of [merge], at one revision. The prefixes go in
// transactions of up to [txnRanges] range requests, so that many small
// prefixes cost one round trip rather than one each; the first transaction
// fixes the revision and every later request reads at it. A prefix with
// more keys than its share of [pageSize] is read on in at most [restPages]
// pages (see [restPage]).
//
// etcd returns each range sorted by key, and the ranges of ps, sorted and
// none covering another, hold disjoint keys in the same order: appended in
// the order read, the keys come out sorted.
func (c *Client) list(ctx context.Context, ps []string) (backends.List, error) {
	var kvs []backends.KV
	var rev int64
	for len(ps) > 0 {
		batch := ps[:min(len(ps), txnRanges)]
		ps = ps[len(batch):]
		limit := int64(max(pageSize/len(batch), 100))
		ops := make([]clientv3.Op, len(batch))
		for i, p := range batch {
			key, end := span(p)
			opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(limit)}
			if rev != 0 {
				opts = append(opts, clientv3.WithRev(rev))
			}
			ops[i] = clientv3.OpGet(key, opts...)
		}
		tctx, cancel := context.WithTimeout(ctx, c.requestTimeout)
		resp, err := c.cli.Txn(tctx).Then(ops...).Commit()
		cancel()
		if err != nil {
			return backends.List{}, c.fail("snapshot "+quoteAll(batch), err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		if kvs == nil {
			// Each range reports how many keys it holds beyond its limit:
			// size the list once rather than growing it page by page.
			n := 0
			for _, r := range resp.Responses {
				if rr := r.GetResponseRange(); rr != nil {
					n += int(rr.Count)
				}
			}
			kvs = make([]backends.KV, 0, n)
		}
		for i, r := range resp.Responses {
			rr := r.GetResponseRange()
			if rr == nil {
				return backends.List{}, fmt.Errorf("etcd: snapshot %q: transaction answered without a range", batch[i])
			}
			kvs = appendKVs(kvs, rr.Kvs)
			// Copied: let the decoded range go while the next pages load.
			resp.Responses[i] = nil
			if rr.More && len(rr.Kvs) > 0 {
				from := string(rr.Kvs[len(rr.Kvs)-1].Key) + "\x00"
				page := restPage(rr.Count - int64(len(rr.Kvs)))
				if kvs, err = c.pages(ctx, batch[i], from, rev, page, kvs); err != nil {
					return backends.List{}, err
				}
			}
		}
	}
	return backends.List{Rev: uint64(rev), KVs: kvs}, nil
}

// appendKVs appends page, a range's keys as etcd returns them, to kvs.
// The keys and values of the page are copied into one string, which they
// share: one allocation for the page rather than two for every key. That
// string stays in memory as long as any of them does, which costs nothing
// while the page's keys are all in use, as in a snapshot, and at most the
// page's size once only some are.
func appendKVs(kvs []backends.KV, page []*mvccpb.KeyValue) []backends.KV {
	n := 0
	for _, kv := range page {
		n += len(kv.Key) + len(kv.Value)
	}
	var b strings.Builder
	b.Grow(n)
	for _, kv := range page {
		b.Write(kv.Key)
		b.Write(kv.Value)
	}
	all := b.String()
	for _, kv := range page {
		k, v := len(kv.Key), len(kv.Value)
		kvs = append(kvs, backends.KV{Key: all[:k], Value: all[k : k+v]})
		all = all[k+v:]
	}
	return kvs
}

// restPage returns the size of the pages that read left keys, those of a
// range left after its first page: at least [pageSize], and large enough
// that they take at most [restPages] pages.
func restPage(left int64) int64 {
	return max(pageSize, (left+restPages-1)/restPages)
}

// pages reads the keys of prefix p from key from on, at revision rev, in
// pages of size page, and appends them to kvs.
func (c *Client) pages(ctx context.Context, p, from string, rev, page int64, kvs []backends.KV) ([]backends.KV, error) {
	_, end := span(p)
	for {
		resp, err := c.get(ctx, from, clientv3.WithRange(end), clientv3.WithLimit(page), clientv3.WithRev(rev))
		if err != nil {
			return nil, c.fail(fmt.Sprintf("snapshot %q", p), err)
		}
		kvs = appendKVs(kvs, resp.Kvs)
		if !resp.More || len(resp.Kvs) == 0 {
			return kvs, nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}
