package consul

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/hashicorp/consul/api"

	"github.com/kvconf/kvconf/backends"
)

// source is what one prefix of [Client.Snapshot] and [Client.Watch] reads:
// a key/value prefix ([kvSource]) or a catalog query ([catalogSource]).
type source interface {
	// name is the source's prefix in template form ("/app/db",
	// "consul:nodes//"). It keys the client's maps: a key/value prefix
	// starts with "/" and a catalog prefix with "consul:", so they never
	// collide.
	name() string
	// String describes the source in errors.
	String() string
	// read lists the source's keys and values, sorted by key, each key
	// once, with the index they are at (at least 1), as a blocking query
	// from index wait when wait > 0: it answers once the index passes
	// wait, or when the wait time ends.
	read(ctx context.Context, wait uint64) ([]backends.KV, uint64, error)
	// index returns the current index of the source, as read would, as
	// cheaply as the source can.
	index(ctx context.Context) (uint64, error)
}

// sources returns the sources that cover prefixes (see [partition]).
func (c *Client) sources(prefixes []string) ([]source, error) {
	kv, queries, err := partition(prefixes)
	if err != nil {
		return nil, err
	}
	srcs := make([]source, 0, len(kv)+len(queries))
	for _, p := range kv {
		srcs = append(srcs, kvSource{c: c, p: p})
	}
	for _, q := range queries {
		srcs = append(srcs, catalogSource{c: c, q: q})
	}
	return srcs, nil
}

// fetch makes one read request, f, on the nodes in turn (see
// [Client.each]), with the client's query options for datacenter dc (""
// for the configured one), as a blocking query from index wait when
// wait > 0. The request is bounded by the request timeout, plus the wait
// time of a blocking query.
func fetch[T any](ctx context.Context, c *Client, dc string, wait uint64,
	f func(*api.Client, *api.QueryOptions) (T, *api.QueryMeta, error),
) (T, *api.QueryMeta, error) {
	timeout := c.requestTimeout
	q := c.query // a copy
	if dc != "" {
		q.Datacenter = dc
	}
	if wait > 0 {
		q.WaitIndex, q.WaitTime = wait, waitTime
		timeout += waitTime + waitTime/16 // Consul adds up to wait/16 of jitter
	}
	rctx, end := c.begin(ctx, timeout)
	defer end()
	qo := q.WithContext(rctx)
	var res T
	var meta *api.QueryMeta
	err := c.each(rctx, func(cl *api.Client) error {
		var err error
		res, meta, err = f(cl, qo)
		if tooMany(err) {
			c.refused.Add(1)
		}
		return err
	})
	if err != nil {
		var zero T
		return zero, nil, err
	}
	if meta == nil {
		meta = &api.QueryMeta{}
	}
	return res, meta, nil
}

// tooMany reports whether err is the agent's refusal of a connection over
// its per-client limit (HTTP 429).
func tooMany(err error) bool {
	se, ok := errors.AsType[api.StatusError](err)
	return ok && se.Code == http.StatusTooManyRequests
}

// Refused returns how many requests the agent refused over its limit of
// connections per client (HTTP 429) since the client opened. It
// implements [backends.Refuser].
func (c *Client) Refused() uint64 { return c.refused.Load() }

// kvSource is a key/value prefix.
type kvSource struct {
	c *Client
	p string // Consul prefix
}

func (s kvSource) name() string   { return "/" + s.p }
func (s kvSource) String() string { return strconv.Quote("/" + s.p) }

func (s kvSource) read(ctx context.Context, wait uint64) ([]backends.KV, uint64, error) {
	kvs, idx, err := s.c.list(ctx, s.p, wait)
	if err != nil {
		return nil, 0, err
	}
	return pairs(s.p, kvs), idx, nil
}

// index returns the index of the prefix from a listing of its keys one
// level deep.
func (s kvSource) index(ctx context.Context) (uint64, error) {
	return s.c.keysIndex(ctx, s.p, 0)
}

// keysIndex returns the index of the Consul prefix p (the highest index of
// a change under it) from a listing of its keys one level deep, a
// blocking query from index wait when wait > 0: Consul scans every key
// under p but answers with few of them, so it costs much less than a
// listing of p.
func (c *Client) keysIndex(ctx context.Context, p string, wait uint64) (uint64, error) {
	_, meta, err := fetch(ctx, c, "", wait, func(cl *api.Client, q *api.QueryOptions) ([]string, *api.QueryMeta, error) {
		return cl.KV().Keys(p, "/", q)
	})
	if err != nil {
		return 0, err
	}
	return max(meta.LastIndex, 1), nil // index 0 is taken as 1
}
