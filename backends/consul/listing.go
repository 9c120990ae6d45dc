package consul

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/hashicorp/consul/api"

	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/backends/consul/internal/kvlisting"
)

// A recursive KV listing is the largest answer Consul gives, and the API
// library decodes it into KVPair structs, which costs more time than
// Consul takes to build it and several times its size in memory. So
// [Client.getListing] makes the request itself, with the node's settings
// as the API library resolved them (address, path prefix, token,
// namespace, partition, basic authentication) and the query's options
// (datacenter, consistency, blocking index and wait), and hands the body
// to package kvlisting, which keeps only each pair's key and value.

// listFrom is [Client.list] with prev, a previous listing of p sorted by
// key, whose strings the pairs that did not change share.
func (c *Client) listFrom(ctx context.Context, p string, wait uint64, prev []backends.KV) ([]backends.KV, uint64, error) {
	var kvs []backends.KV
	var malformed error
	_, meta, err := fetch(ctx, c, "", wait, func(cl *api.Client, q *api.QueryOptions) (struct{}, *api.QueryMeta, error) {
		var meta *api.QueryMeta
		var err error
		kvs, meta, err = c.getListing(cl, p, q, prev)
		if errors.Is(err, kvlisting.ErrMalformed) {
			// The node answered: not a reason to try the next one.
			malformed, err = err, nil
		}
		return struct{}{}, meta, err
	})
	if err != nil {
		return nil, 0, err
	}
	if malformed != nil {
		return nil, 0, malformed
	}
	if len(kvs) == 0 && meta.ResultsFilteredByACLs {
		return nil, 0, errFiltered
	}
	if len(kvs) == 0 && c.query.Token == "" && p != "" {
		// Consul hides from the anonymous token that ACLs filtered a
		// listing; reading the prefix as a key tells denied from empty.
		if _, _, err := fetch(ctx, c, "", 0, func(cl *api.Client, q *api.QueryOptions) (*api.KVPair, *api.QueryMeta, error) {
			return cl.KV().Get(p, q)
		}); err != nil {
			return nil, 0, err
		}
	}
	return kvs, max(meta.LastIndex, 1), nil // index 0 is taken as 1
}

// getListing makes one recursive listing request of the Consul prefix p
// to the node of cl, with the options of q, and returns its pairs ("/" +
// each key, and its value, in Consul's order) and the query's metadata.
// A missing prefix (status 404) lists nothing; another status than 200 is
// an [api.StatusError], as the API library gives it.
func (c *Client) getListing(cl *api.Client, p string, q *api.QueryOptions, prev []backends.KV) ([]backends.KV, *api.QueryMeta, error) {
	cfg := c.configs[cl]
	params := url.Values{"recurse": {""}}
	set := func(k, v string, ok bool) {
		if ok {
			params.Set(k, v)
		}
	}
	dc := q.Datacenter
	if dc == "" {
		dc = cfg.Datacenter
	}
	set("dc", dc, dc != "")
	set("ns", cfg.Namespace, cfg.Namespace != "")
	set("partition", cfg.Partition, cfg.Partition != "")
	set("stale", "", q.AllowStale)
	set("consistent", "", q.RequireConsistent)
	set("index", strconv.FormatUint(q.WaitIndex, 10), q.WaitIndex != 0)
	set("wait", strconv.FormatInt(q.WaitTime.Milliseconds(), 10)+"ms", q.WaitTime != 0)
	u := url.URL{Scheme: cfg.Scheme, Host: cfg.Address, Path: cfg.PathPrefix + "/v1/kv/" + p, RawQuery: params.Encode()}
	req, err := http.NewRequestWithContext(q.Context(), http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header = cl.Headers()
	if token := cmpOr(q.Token, cfg.Token); token != "" {
		req.Header.Set("X-Consul-Token", token)
	}
	if cfg.HttpAuth != nil {
		req.SetBasicAuth(cfg.HttpAuth.Username, cfg.HttpAuth.Password)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10)) // let the connection be reused
		_ = resp.Body.Close()                                        // read already
	}()
	meta := &api.QueryMeta{ResultsFilteredByACLs: resp.Header.Get("X-Consul-Results-Filtered-By-ACLs") == "true"}
	if idx := resp.Header.Get("X-Consul-Index"); idx != "" {
		meta.LastIndex, _ = strconv.ParseUint(idx, 10, 64) // 0, taken as 1, if malformed
	}
	switch resp.StatusCode {
	case http.StatusOK:
		kvs, err := c.decoder.Decode(resp.Body, prev)
		if err != nil {
			return nil, nil, err
		}
		return kvs, meta, nil
	case http.StatusNotFound:
		return nil, meta, nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10)) // what came of it
	return nil, nil, api.StatusError{Code: resp.StatusCode, Body: strings.TrimSpace(string(body))}
}

// cmpOr returns a, or b if a is empty.
func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
