package consul

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
	"golang.org/x/sync/errgroup"

	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/backends/consul/catalog"
)

// healthConcurrency bounds the health queries that a listing of every
// service of a datacenter runs at once.
const healthConcurrency = 8

// errHidden is wrapped by errors of catalog queries whose every result
// Consul's ACLs hid.
var errHidden = errors.New("every result is hidden by ACLs: the ACL token (auth_token or CONSUL_HTTP_TOKEN) may not read them (service_prefix and node_prefix read rules)")

// catalogSource is a query of Consul's service catalog, served as the keys
// and values that package catalog defines.
type catalogSource struct {
	c *Client
	q catalog.Query
}

func (s catalogSource) name() string   { return s.q.Prefix() }
func (s catalogSource) String() string { return s.q.String() }

func (s catalogSource) read(ctx context.Context, wait uint64) ([]backends.KV, uint64, error) {
	var v []byte
	var idx uint64
	var err error
	switch s.q.Kind {
	case catalog.KindService:
		h, err := s.c.health(ctx, s.q.Datacenter, s.q.Name, wait)
		if err != nil {
			return nil, 0, err
		}
		return []backends.KV{{Key: s.q.Prefix(), Value: h.value}}, h.index, nil
	case catalog.KindServices:
		v, idx, err = s.c.services(ctx, s.q.Datacenter, wait)
	case catalog.KindNodes:
		v, idx, err = s.c.nodes(ctx, s.q.Datacenter, wait)
	case catalog.KindAllServices:
		return s.c.allServices(ctx, s.q.Datacenter, wait)
	default:
		return nil, 0, errors.New("unknown kind of catalog query")
	}
	if err != nil {
		return nil, 0, err
	}
	return []backends.KV{{Key: s.q.Prefix(), Value: string(v)}}, idx, nil
}

func (s catalogSource) index(ctx context.Context) (uint64, error) {
	if s.q.Kind == catalog.KindAllServices {
		st, err := s.c.serviceNames(ctx, s.q.Datacenter)
		if err != nil {
			return 0, err
		}
		return st.index(), nil
	}
	_, idx, err := s.read(ctx, 0)
	return idx, err
}

// serviceHealth is what [Client.health] reads of a service.
type serviceHealth struct {
	value string // the JSON of a sorted []catalog.Instance
	index uint64
	nodes []string // of its instances
}

// health returns the instances of service name in datacenter dc, of every
// status, with their index and their nodes; it is a blocking query from
// wait when wait > 0.
func (c *Client) health(ctx context.Context, dc, name string, wait uint64) (serviceHealth, error) {
	entries, meta, err := fetch(ctx, c, dc, wait, func(cl *api.Client, q *api.QueryOptions) ([]*api.ServiceEntry, *api.QueryMeta, error) {
		return cl.Health().Service(name, "", false, q)
	})
	if err != nil {
		return serviceHealth{}, err
	}
	if len(entries) == 0 && meta.ResultsFilteredByACLs {
		return serviceHealth{}, errHidden
	}
	ins := instances(entries)
	v, err := json.Marshal(ins)
	if err != nil {
		return serviceHealth{}, err
	}
	h := serviceHealth{value: string(v), index: max(meta.LastIndex, 1)} // index 0 is taken as 1
	for _, in := range ins {
		h.nodes = append(h.nodes, in.Node)
	}
	return h, nil
}

// services returns the services of datacenter dc as the JSON of a sorted
// []catalog.Service, and their index; it is a blocking query from wait
// when wait > 0.
func (c *Client) services(ctx context.Context, dc string, wait uint64) ([]byte, uint64, error) {
	svcs, meta, err := fetch(ctx, c, dc, wait, func(cl *api.Client, q *api.QueryOptions) (map[string][]string, *api.QueryMeta, error) {
		return cl.Catalog().Services(q)
	})
	if err != nil {
		return nil, 0, err
	}
	if len(svcs) == 0 && meta.ResultsFilteredByACLs {
		return nil, 0, errHidden
	}
	v, err := json.Marshal(serviceList(svcs))
	if err != nil {
		return nil, 0, err
	}
	return v, max(meta.LastIndex, 1), nil
}

// nodes returns the nodes of datacenter dc as the JSON of a sorted
// []catalog.Node, and their index; it is a blocking query from wait when
// wait > 0.
func (c *Client) nodes(ctx context.Context, dc string, wait uint64) ([]byte, uint64, error) {
	ns, meta, err := fetch(ctx, c, dc, wait, func(cl *api.Client, q *api.QueryOptions) ([]*api.Node, *api.QueryMeta, error) {
		return cl.Catalog().Nodes(q)
	})
	if err != nil {
		return nil, 0, err
	}
	if len(ns) == 0 && meta.ResultsFilteredByACLs {
		return nil, 0, errHidden
	}
	v, err := json.Marshal(nodeList(ns))
	if err != nil {
		return nil, 0, err
	}
	return v, max(meta.LastIndex, 1), nil
}

// The endpoints whose changes show in the listing of every service of a
// datacenter: the services (instances registered, deregistered or
// changed), the checks (their status) and the nodes (their addresses and
// metadata, which no change of services or checks reports).
const (
	endpointNodes = iota
	endpointChecks
	endpointServices
	endpoints
)

// endpointRead is what a query of one of the endpoints gave: its index,
// the names of the services (endpointServices) and the fingerprints of
// the checks (endpointChecks).
type endpointRead struct {
	index  uint64
	names  []string
	checks api.HealthChecks
}

// checkPrint sums up the checks of one service, or of one node itself:
// any change to them changes it, as a check's ModifyIndex grows with each
// change and a removal lowers the count.
type checkPrint struct {
	n   int
	max uint64
}

// checkPrints returns the fingerprints of checks: of the services' checks
// by service name, in lower case (Consul's health query of a service
// matches names in any case, so the instances of "redis" show those of
// "Redis" too), and of the nodes' own checks by node.
func checkPrints(checks api.HealthChecks) (services, nodes map[string]checkPrint) {
	services, nodes = map[string]checkPrint{}, map[string]checkPrint{}
	for _, ch := range checks {
		m, key := services, strings.ToLower(ch.ServiceName)
		if ch.ServiceName == "" {
			m, key = nodes, ch.Node
		}
		p := m[key]
		p.n++
		p.max = max(p.max, ch.ModifyIndex)
		m[key] = p
	}
	return services, nodes
}

// maxCatalogReuse bounds how long a listing of every service may serve a
// service's health from an earlier listing: at least this often, every
// service is read again, which heals what no index shows (a change of
// the ACL token's rights, a read answered from behind a leader change).
const maxCatalogReuse = time.Minute

// indexOf queries endpoint e of datacenter dc, with a blocking query from
// wait when wait > 0.
func (c *Client) indexOf(ctx context.Context, dc string, e int, wait uint64) (endpointRead, error) {
	var meta *api.QueryMeta
	var r endpointRead
	var err error
	switch e {
	case endpointNodes:
		_, meta, err = fetch(ctx, c, dc, wait, func(cl *api.Client, q *api.QueryOptions) ([]*api.Node, *api.QueryMeta, error) {
			return cl.Catalog().Nodes(q)
		})
	case endpointChecks:
		r.checks, meta, err = fetch(ctx, c, dc, wait, func(cl *api.Client, q *api.QueryOptions) (api.HealthChecks, *api.QueryMeta, error) {
			return cl.Health().State(api.HealthAny, q)
		})
	default:
		var svcs map[string][]string
		svcs, meta, err = fetch(ctx, c, dc, wait, func(cl *api.Client, q *api.QueryOptions) (map[string][]string, *api.QueryMeta, error) {
			return cl.Catalog().Services(q)
		})
		r.names = slices.Sorted(maps.Keys(svcs))
	}
	if err != nil {
		return endpointRead{}, err
	}
	r.index = max(meta.LastIndex, 1)
	return r, nil
}

// catalogState is what a listing of every service of a datacenter read:
// the indexes of the three endpoints, the fingerprints of the checks and
// the names of the services, and (once read) the value of each service.
type catalogState struct {
	node    int32     // the agent asked first (see Client.cur)
	full    time.Time // when every service was last read, by this listing or one before
	indexes [endpoints]uint64
	checks  map[string]checkPrint // of the services, by lower-case name
	nodeChk map[string]checkPrint // of the nodes themselves, by node
	names   []string
	healths map[string]serviceHealth // by service
}

// index is the index that a listing of every service made from s is at:
// the highest of the three. The nodes and the checks are read first and
// the services last; raft indexes only grow, so a change made after the
// services were read has a higher index than all three, and a blocking
// query from it sees the change; the health of each service, read after
// the three, holds every change made before.
func (s *catalogState) index() uint64 { return slices.Max(s.indexes[:]) }

// reusable reports whether the healths of s may serve in next: neither the
// services nor the nodes changed in between, and every service was read
// less than maxCatalogReuse ago.
func (s *catalogState) reusable(next *catalogState) bool {
	return s != nil && s.node == next.node && time.Since(s.full) < maxCatalogReuse &&
		s.indexes[endpointNodes] == next.indexes[endpointNodes] &&
		s.indexes[endpointServices] == next.indexes[endpointServices]
}

// unchanged reports whether the value of service name in s is still good
// in next, which s is reusable for: the checks of that service, and the
// own checks of the nodes its instances run on, are the same.
func (s *catalogState) unchanged(next *catalogState, name string) bool {
	lower := strings.ToLower(name)
	h, ok := s.healths[name]
	if !ok || s.checks[lower] != next.checks[lower] {
		return false
	}
	for _, n := range h.nodes {
		if s.nodeChk[n] != next.nodeChk[n] {
			return false
		}
	}
	return true
}

// serviceNames reads the nodes, the checks and the services of datacenter
// dc (see [catalogState.index]).
func (c *Client) serviceNames(ctx context.Context, dc string) (*catalogState, error) {
	s := &catalogState{node: c.cur.Load()}
	var reads [endpoints]endpointRead
	g, gctx := errgroup.WithContext(ctx)
	for _, e := range []int{endpointNodes, endpointChecks} {
		g.Go(func() error {
			var err error
			reads[e], err = c.indexOf(gctx, dc, e, 0)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var err error
	if reads[endpointServices], err = c.indexOf(ctx, dc, endpointServices, 0); err != nil {
		return nil, err
	}
	for e, r := range reads {
		s.indexes[e] = r.index
	}
	s.checks, s.nodeChk = checkPrints(reads[endpointChecks].checks)
	s.names = reads[endpointServices].names
	return s, nil
}

// allServices lists every service of datacenter dc: the key of the
// catalog.KindAllServices query, whose value is the JSON of the sorted
// names, and the key of each service with the value [Client.health]
// gives. With wait > 0, it first waits, with a blocking query from wait on
// each of the nodes, the checks and the services at once, for the first to
// answer.
//
// When only the checks of some services changed since the previous
// listing of dc, it reads the health of those services only: a check
// flapping among thousands of services costs one query, not thousands.
// Not under the stale consistency mode, and at least once every
// maxCatalogReuse it reads every service.
func (c *Client) allServices(ctx context.Context, dc string, wait uint64) ([]backends.KV, uint64, error) {
	if wait > 0 {
		if err := c.blockAny(ctx, dc, wait); err != nil {
			return nil, 0, err
		}
	}
	st, err := c.serviceNames(ctx, dc)
	if err != nil {
		return nil, 0, err
	}
	c.mu.Lock()
	prev := c.catalogs[dc]
	c.mu.Unlock()
	// A stale read may come from a server behind the one that gave the
	// fingerprints: never keep its health for later.
	reuse := prev.reusable(st) && !c.query.AllowStale
	if reuse {
		st.full = prev.full
	} else {
		st.full = time.Now()
	}
	names := st.names
	healths := make([]serviceHealth, len(names))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(healthConcurrency)
	for i, n := range names {
		if reuse && prev.unchanged(st, n) {
			healths[i] = prev.healths[n]
			continue
		}
		g.Go(func() error {
			var err error
			healths[i], err = c.health(gctx, dc, n, 0)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, 0, err
	}
	st.healths = make(map[string]serviceHealth, len(names))
	for i, n := range names {
		st.healths[n] = healths[i]
	}
	c.mu.Lock()
	c.catalogs[dc] = st
	c.mu.Unlock()
	idx := st.index()
	v, err := json.Marshal(names)
	if err != nil {
		return nil, 0, err
	}
	kvs := make([]backends.KV, 0, len(names)+1)
	kvs = append(kvs, backends.KV{Key: catalog.Query{Kind: catalog.KindAllServices, Datacenter: dc}.Prefix(), Value: string(v)})
	for i, n := range names {
		kvs = append(kvs, backends.KV{Key: catalog.Query{Kind: catalog.KindService, Datacenter: dc, Name: n}.Prefix(), Value: healths[i].value})
	}
	slices.SortFunc(kvs, func(a, b backends.KV) int { return strings.Compare(a.Key, b.Key) })
	return kvs, idx, nil
}

// blockAny runs a blocking query from wait on the nodes, the checks and
// the services of datacenter dc at once, and returns once the first has
// answered (and the others have been cancelled), with its error.
func (c *Client) blockAny(ctx context.Context, dc string, wait uint64) error {
	bctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	answers := make(chan error, endpoints)
	for e := range endpoints {
		wg.Go(func() {
			_, err := c.indexOf(bctx, dc, e, wait)
			answers <- err
		})
	}
	err := <-answers
	cancel() // the others
	wg.Wait()
	return err
}

// instances returns the instances of entries, sorted (see
// [catalog.SortInstances]): an instance's address is its node's when it
// has none, and its status is the aggregate of its checks. Tags and
// metadata are never nil, so that the same content gives the same JSON.
func instances(entries []*api.ServiceEntry) []catalog.Instance {
	out := make([]catalog.Instance, 0, len(entries))
	for _, e := range entries {
		if e == nil || e.Service == nil {
			continue
		}
		in := catalog.Instance{
			Name:    e.Service.Service,
			ID:      e.Service.ID,
			Address: e.Service.Address,
			Port:    e.Service.Port,
			Tags:    nonNil(e.Service.Tags),
			Meta:    nonNilMap(e.Service.Meta),
			Status:  e.Checks.AggregatedStatus(),
		}
		if e.Node != nil {
			in.Node = e.Node.Node
			in.NodeAddress = e.Node.Address
			in.NodeMeta = e.Node.Meta
			in.Datacenter = e.Node.Datacenter
		}
		in.NodeMeta = nonNilMap(in.NodeMeta)
		if in.Address == "" {
			in.Address = in.NodeAddress
		}
		out = append(out, in)
	}
	catalog.SortInstances(out)
	return out
}

// serviceList returns the services of svcs, the answer of
// /v1/catalog/services, sorted by name, each with its tags sorted and
// without duplicates.
func serviceList(svcs map[string][]string) []catalog.Service {
	out := make([]catalog.Service, 0, len(svcs))
	for name, tags := range svcs {
		t := nonNil(tags)
		slices.Sort(t)
		out = append(out, catalog.Service{Name: name, Tags: slices.Compact(t)})
	}
	slices.SortFunc(out, func(a, b catalog.Service) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// nodeList returns the nodes of ns, sorted by name.
func nodeList(ns []*api.Node) []catalog.Node {
	out := make([]catalog.Node, 0, len(ns))
	for _, n := range ns {
		if n == nil {
			continue
		}
		out = append(out, catalog.Node{
			Node:            n.Node,
			ID:              n.ID,
			Address:         n.Address,
			Datacenter:      n.Datacenter,
			TaggedAddresses: nonNilMap(n.TaggedAddresses),
			Meta:            nonNilMap(n.Meta),
		})
	}
	slices.SortFunc(out, func(a, b catalog.Node) int { return strings.Compare(a.Node, b.Node) })
	return out
}

// nonNil returns a copy of tags, empty rather than nil.
func nonNil(tags []string) catalog.Tags {
	return append(catalog.Tags{}, tags...)
}

// nonNilMap returns m, or an empty map if m is nil.
func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
