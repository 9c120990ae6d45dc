package consul

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http/httptrace"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/backends/consul/catalog"
	"github.com/kvconf/kvconf/internal/backoff"
)

// waitTime is how long a blocking query waits for a change before Consul
// answers with the listing unchanged (the Consul API's maximum is 10m).
const waitTime = time.Minute

// Pace of the queries of one group of a watch: at least minGap apart,
// plus a random share of jitter, as consul-template does.
const (
	minGap = 100 * time.Millisecond
	jitter = 25 * time.Millisecond
)

// maxQueries bounds the blocking queries that the watch of one set of
// prefixes keeps open at once, whatever the number of prefixes: Consul
// counts every connection of a client against its per-client limit
// (limits.http_max_conns_per_client, 200 by default), and a query it
// still holds counts until its wait ends even once the client has gone.
// Twelve queries, plus the odd listing beside them, stay well under it,
// and the measurements in bench/README.md show no gain from more.
const maxQueries = 12

// maxServiceQueries is how many services of one datacenter a watch
// follows with one health query each; with more, it follows the
// datacenter's nodes, checks and services (three queries) and reads the
// health of the services whose checks changed, as a watch of every
// service does.
const maxServiceQueries = 3

// retry paces the queries of a group after a failure: an agent that is
// down, or that refused a connection over its limit (HTTP 429).
var retry = backoff.Policy{Min: 250 * time.Millisecond, Max: 5 * time.Second}

// listing is the content of a source (see [source]) as a caller holds it.
type listing struct {
	name  string        // the source's name
	index uint64        // Consul's index of the source when listed
	rev   uint64        // the revision the caller got with it; 0 if none yet
	kvs   []backends.KV // full template keys, sorted; never changed once made
}

// keep makes l the listing that [Client.Watch] compares the next listing
// of its source with. The caller holds c.mu.
func (c *Client) keepLocked(l *listing) {
	if !c.closed {
		c.listings[l.name] = l
		c.sizes[l.name] = len(l.kvs)
	}
}

// keep is keepLocked for a caller that does not hold c.mu.
func (c *Client) keep(l *listing) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.keepLocked(l)
}

// baseLocked returns the listing kept for the source named name if a
// caller at revision after holds it, or nil. A listing made at index i and
// returned with revision r is the content of its source at every revision
// from i to r: nothing under it changed in between. The caller holds c.mu.
func (c *Client) baseLocked(name string, after uint64) *listing {
	if l := c.listings[name]; l != nil && l.index <= after && after <= l.rev {
		return l
	}
	return nil
}

// Watch waits until a key under prefixes changes after revision after,
// then returns the keys that changed, or a full snapshot. With after == 0
// it returns at once with the current revision: the index of the first
// prefix or the highest index seen, whichever is higher.
//
// The prefixes (after merging those that another covers) are watched by
// a session of blocking queries that outlives each call: the next call
// with the same prefixes finds its queries still waiting, each with its
// own index, so that a change under one prefix never cuts short the
// queries of the others. The session holds at most [maxQueries] queries
// whatever the number of prefixes: key/value prefixes are grouped under
// common string prefixes (see [groups]), each group listed by one query
// and its listing split among its prefixes; a catalog prefix is watched
// through its endpoint (the health of the service, the list of services
// or of nodes), and every service of a datacenter, or more than
// [maxServiceQueries] of them, through the nodes, the checks and the
// services, then read again. Queries of one group are at least 100 ms
// apart, plus jitter. Watch compares the newest listing of each prefix
// with the one the caller holds (the one it returned with after) and
// returns the changes, or a full snapshot when it holds none.
//
// When Consul's index goes backwards (a snapshot restore, a dev agent
// restarted), or when after is above every index seen since such a
// reset, Watch returns a full snapshot with the new store's revision,
// lower than after. A query that fails (an agent down, over its
// connection limit) makes Watch return its error while it fails; the
// session retries it with backoff, and its next query after a request
// that reached no node, or on a new connection, does not block, so that a
// restarted agent is noticed at once.
func (c *Client) Watch(ctx context.Context, prefixes []string, after uint64) (backends.Update, error) {
	if err := c.check(ctx, "watch"); err != nil {
		return backends.Update{}, err
	}
	srcs, err := c.sources(prefixes)
	if err != nil {
		return backends.Update{}, fmt.Errorf("consul: watch: %w", err)
	}
	if after == 0 {
		var s source = kvSource{c: c}
		if len(srcs) > 0 {
			s = srcs[0]
		}
		rev, err := c.current(ctx, s)
		if err != nil {
			return backends.Update{}, c.fail(ctx, "watch "+s.String(), err)
		}
		return backends.Update{Rev: rev}, nil
	}
	if len(srcs) == 0 {
		// Nothing changes under no prefix.
		<-ctx.Done()
		return backends.Update{}, fmt.Errorf("consul: watch: %w", ctx.Err())
	}
	s := c.session(srcs, after)
	if s == nil {
		return backends.Update{}, fmt.Errorf("consul: watch: %w", backends.ErrClosed)
	}
	defer c.release(s)
	for {
		s.mu.Lock()
		wake := s.wake
		u, done, err := c.collect(s, after)
		s.mu.Unlock()
		if errors.Is(err, errReset) {
			// Read the new store whole, as Snapshot does.
			rev, ls, err := c.snapshot(ctx, srcs)
			if err != nil {
				return backends.Update{}, err
			}
			// The new store's listings, until the groups read newer ones.
			s.mu.Lock()
			for _, l := range ls {
				s.latest[l.name] = &listing{name: l.name, index: l.index, kvs: l.kvs}
			}
			s.mu.Unlock()
			return backends.Update{Rev: rev, Full: &backends.Snapshot{Rev: rev, KVs: toMap(ls)}}, nil
		}
		if err != nil {
			return backends.Update{}, c.fail(ctx, "watch", err)
		}
		if done {
			return u, nil
		}
		select {
		case <-ctx.Done():
			return backends.Update{}, c.fail(ctx, "watch", ctx.Err())
		case <-wake:
		}
	}
}

// errReset is returned by [Client.collect] when Consul's index went
// backwards: the caller reads the new store whole.
var errReset = errors.New("consul: index reset")

// collect returns what Watch returns to a caller at revision after, from
// the newest listings of s, and whether it is ready: false while no
// listing differs from the caller's. It returns [errReset], having
// forgotten every index and listing, when Consul's index went backwards
// (or after is above every index seen since it did). The caller holds
// s.mu.
func (c *Client) collect(s *session, after uint64) (backends.Update, bool, error) {
	for _, g := range s.groups {
		if g.err == nil {
			continue
		}
		if s.reported {
			// Reported once: now Watch waits for the groups to recover,
			// while they retry with backoff, so that the caller (which
			// backs off too) does not add its own delays to a recovery.
			return backends.Update{}, false, nil
		}
		s.reported = true
		return backends.Update{}, false, g.err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return backends.Update{}, false, backends.ErrClosed
	}
	if s.reset || after > c.highest.Load() {
		s.reset = false
		clear(c.indexes)
		clear(c.listings)
		c.highest.Store(0)
		return backends.Update{}, false, errReset
	}
	ls := make([]*listing, len(s.srcs))
	bases := make([]*listing, len(s.srcs))
	full := false
	for i, src := range s.srcs {
		name := src.name()
		ls[i] = s.latest[name]
		bases[i] = c.baseLocked(name, after)
		if ls[i] == nil && bases[i] == nil {
			return backends.Update{}, false, nil // not read yet
		}
		if ls[i] == nil || bases[i] != nil && ls[i].index < bases[i].index {
			// The group has not caught up with the caller's listing, read
			// later (by Snapshot): keep the caller's.
			ls[i] = bases[i]
		}
		full = full || bases[i] == nil
	}
	if full {
		rev := c.highest.Load()
		for _, l := range ls {
			rev = max(rev, l.index)
		}
		for _, l := range ls {
			c.keepLocked(&listing{name: l.name, index: l.index, rev: rev, kvs: l.kvs})
		}
		return backends.Update{Rev: rev, Full: &backends.Snapshot{Rev: rev, KVs: toMap(ls)}}, true, nil
	}
	u := update(bases, ls, 0)
	if len(u.Changes) == 0 {
		return backends.Update{}, false, nil
	}
	rev := max(after, c.highest.Load())
	for _, l := range ls {
		rev = max(rev, l.index)
	}
	if rev <= after {
		// The caller's revision came from a source further ahead than
		// the listings that changed (Consul's indexes are per endpoint):
		// the changes are new to the caller all the same, and an update
		// always moves past after.
		rev = c.seen(after + 1)
	}
	for i, l := range ls {
		idx := l.index
		if l == bases[i] || slices.Equal(l.kvs, bases[i].kvs) {
			idx = bases[i].index
		}
		c.keepLocked(&listing{name: l.name, index: min(idx, rev), rev: rev, kvs: l.kvs})
	}
	u.Rev = rev
	return u, true, nil
}

// update returns the update from the listings bases, those the caller
// holds (nil where Watch holds none), to ls, the new listings of the
// same prefixes, read for revision rev: the changes, or a full snapshot
// when a base is missing.
func update(bases, ls []*listing, rev uint64) backends.Update {
	if slices.Contains(bases, nil) {
		return backends.Update{Rev: rev, Full: &backends.Snapshot{Rev: rev, KVs: toMap(ls)}}
	}
	var changes []backends.Change
	for i, l := range ls {
		changes = diff(changes, bases[i].kvs, l.kvs)
	}
	// Each listing's changes are sorted, and those of key/value prefixes
	// come in order; those of catalog queries may interleave.
	byKey := func(a, b backends.Change) int { return strings.Compare(a.Key, b.Key) }
	if !slices.IsSortedFunc(changes, byKey) {
		slices.SortFunc(changes, byKey)
	}
	return backends.Update{Rev: rev, Changes: changes}
}

// diff appends to changes the changes from old to cur, both sorted by
// key, in order.
func diff(changes []backends.Change, old, cur []backends.KV) []backends.Change {
	i, j := 0, 0
	for i < len(old) || j < len(cur) {
		c := 1 // old[i] is missing from cur
		switch {
		case i == len(old):
			c = -1
		case j < len(cur):
			c = strings.Compare(cur[j].Key, old[i].Key)
		}
		switch {
		case c < 0: // cur[j] is new
			changes = append(changes, backends.Change{Key: cur[j].Key, Value: cur[j].Value})
			j++
		case c > 0:
			changes = append(changes, backends.Change{Key: old[i].Key, Deleted: true})
			i++
		default:
			if cur[j].Value != old[i].Value {
				changes = append(changes, backends.Change{Key: cur[j].Key, Value: cur[j].Value})
			}
			i++
			j++
		}
	}
	return changes
}

// session is the watch of one set of sources: its groups' queries run
// until the client closes, or until a watch of other prefixes replaces
// the session while no call waits on it.
type session struct {
	key    string   // the sources' names, joined
	srcs   []source // in the order of Client.sources
	groups []*group
	cancel context.CancelFunc
	active int // Watch calls on the session; under Client.mu

	mu     sync.Mutex
	wake   chan struct{}       // closed, and replaced, at each news
	latest map[string]*listing // by source name: its newest listing
	reset  bool                // an index went backwards since the last full update
	// reported is set once Watch has returned a failure of a group, and
	// cleared once no group fails.
	reported bool
}

// group is one query of a session, or three for a datacenter's catalog
// (see [Client.catalogGroup]), and the sources it serves.
type group struct {
	label string // for errors
	// read reads the group, a blocking query from index wait when
	// wait > 0, and returns each source's listing by name, and the index.
	read func(ctx context.Context, wait uint64) (map[string][]backends.KV, uint64, error)
	// triggers, when set, are blocking queries whose answers make the
	// group read again (without blocking); read is then never blocking.
	triggers []func(ctx context.Context, wait uint64) (uint64, error)
	err      error // the last failure, nil once a query succeeds; under session.mu
}

// sessionKey returns the key of the session of srcs.
func sessionKey(srcs []source) string {
	names := make([]string, len(srcs))
	for i, s := range srcs {
		names[i] = s.name()
	}
	return strings.Join(names, "\x00")
}

// session returns the running session of srcs, or starts one, its
// queries blocking from after where the caller holds every listing, and
// counts a call on it (see [Client.release]). It stops the sessions of
// other prefixes that no call waits on. It returns nil once the client is
// closed.
func (c *Client) session(srcs []source, after uint64) *session {
	key := sessionKey(srcs)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	if s := c.sessions[key]; s != nil {
		s.active++
		return s
	}
	for k, s := range c.sessions {
		if s.active == 0 {
			s.cancel()
			delete(c.sessions, k) // its queries end on their own; Close waits for them
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &session{key: key, srcs: srcs, cancel: cancel, active: 1,
		wake: make(chan struct{}), latest: map[string]*listing{}}
	// Seed: where the caller holds every listing of a group, its queries
	// block from after at once.
	held := map[string]bool{}
	for _, src := range srcs {
		if l := c.baseLocked(src.name(), after); l != nil {
			held[src.name()] = true
			s.latest[src.name()] = l
		}
	}
	plan := c.plan(srcs)
	labels := make([]string, len(plan))
	for i, g := range plan {
		s.groups = append(s.groups, g.group) // before any runs: publish reads them
		labels[i] = g.label
	}
	c.log.Debug("consul watch planned", "sources", len(srcs), "groups", len(plan), "labels", labels)
	for _, g := range plan {
		from := after
		for _, name := range g.names {
			if !held[name] {
				from = 0
			}
		}
		c.running.Add(1)
		go func() {
			defer c.running.Done()
			c.run(ctx, s, g.group, from)
		}()
	}
	c.sessions[key] = s
	return s
}

// withFreshConn returns ctx for a query, and, when the query is blocking,
// cancels it if it would go out on a new connection, setting *fresh: a
// new connection may reach an agent restarted since the last query, whose
// index is lower, and a blocking query from the old index would wait its
// whole wait time there before the reset shows. The query has not been
// sent yet, so Consul holds nothing for it.
func withFreshConn(ctx context.Context, blocking bool, fresh *atomic.Bool) (context.Context, context.CancelFunc) {
	if !blocking {
		return ctx, func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) {
			if !info.Reused {
				fresh.Store(true)
				cancel()
			}
		},
	}), cancel
}

// release ends a call on s.
func (c *Client) release(s *session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s.active--
}

// planned is a group with the names of the sources it serves.
type planned struct {
	*group
	names []string
}

// plan cuts srcs into groups, at most [maxQueries] queries in all.
func (c *Client) plan(srcs []source) []planned {
	var out []planned
	var kv []kvSource
	services := map[string][]catalogSource{} // by datacenter
	var dcs []string
	queries := 0
	for _, s := range srcs {
		switch s := s.(type) {
		case kvSource:
			kv = append(kv, s)
		case catalogSource:
			switch s.q.Kind {
			case catalog.KindService:
				if services[s.q.Datacenter] == nil {
					dcs = append(dcs, s.q.Datacenter)
				}
				services[s.q.Datacenter] = append(services[s.q.Datacenter], s)
			case catalog.KindAllServices:
				out = append(out, c.catalogGroup(s.q.Datacenter, []source{s}))
				queries += endpoints
			default:
				out = append(out, c.single(s))
				queries++
			}
		}
	}
	for _, dc := range dcs {
		ss := services[dc]
		if len(ss) <= maxServiceQueries {
			for _, s := range ss {
				out = append(out, c.single(s))
				queries++
			}
			continue
		}
		members := make([]source, len(ss))
		for i, s := range ss {
			members[i] = s
		}
		out = append(out, c.catalogGroup(dc, members))
		queries += endpoints
	}
	if len(kv) == 0 {
		return out
	}
	ps := make([]string, len(kv))
	weights := make([]int, len(kv))
	for i, s := range kv {
		ps[i] = s.p
		weights[i] = 1 + c.sizes[s.name()]
	}
	for _, g := range groups(ps, weights, max(1, maxQueries-queries)) {
		out = append(out, c.kvGroup(g))
	}
	return out
}

// single returns the group of one source, read by its own blocking query.
func (c *Client) single(s source) planned {
	name := s.name()
	return planned{
		group: &group{label: s.String(), read: func(ctx context.Context, wait uint64) (map[string][]backends.KV, uint64, error) {
			kvs, idx, err := s.read(ctx, wait)
			if err != nil {
				return nil, 0, err
			}
			return map[string][]backends.KV{name: kvs}, idx, nil
		}},
		names: []string{name},
	}
}

// probedMin is the weight (see [groups]) from which a group of key/value
// prefixes is read in parts (see [Client.probedGroup]) rather than by one
// listing. Consul takes about 1.4 µs per key to list a prefix, and about
// 0.3 µs per key plus a quarter of a millisecond per request to answer a
// listing of keys one level deep: parts pay off from about 2,000 keys
// (bench/consul.sh, section 4, shows the difference).
const probedMin = 2000

// kvGroup returns the group of the key/value prefixes of g (in Consul
// form, sorted, none covering another), all under g.prefix: one recursive
// listing of the prefix, split among them; or, for a heavy group whose
// members fall under several children of its prefix, a group read in
// parts (see [Client.probedGroup]).
func (c *Client) kvGroup(g cut) planned {
	names := make([]string, len(g.members))
	for i, p := range g.members {
		names[i] = kvSource{p: p}.name()
	}
	if kids := children(g.members, len(g.prefix)); g.weight >= probedMin && len(kids) > 1 {
		return c.probedGroup(g.prefix, g.members, names, kids)
	}
	var prev []backends.KV // the group's last listing, whose strings the next one shares
	read := func(ctx context.Context, wait uint64) (map[string][]backends.KV, uint64, error) {
		raw, idx, err := c.listFrom(ctx, g.prefix, wait, prev)
		if err != nil {
			return nil, 0, err
		}
		prev = raw
		return split(raw, g.members, names), idx, nil
	}
	return planned{group: &group{label: fmt.Sprintf("%q", "/"+g.prefix), read: read}, names: names}
}

// part is one child of the prefix of a group read in parts: members (and
// their source names) under prefix, with the index and the raw listing of
// prefix as last read.
type part struct {
	prefix         string
	members, names []string
	index          uint64 // 0 until listed
	raw            []backends.KV
}

// probedGroup returns a group of the key/value prefixes members (names[i]
// is the source name of members[i]) under prefix, too heavy for one
// listing on each change: its blocking query asks only for prefix's index
// (see [Client.keysIndex]); when it moves, the group asks each child of
// prefix (kids, runs of members, see [children]) for its index the same
// way, and lists again only the children whose index moved. A change to
// one key thus costs a few short answers and the listing of one child,
// not the listing of every key under prefix.
func (c *Client) probedGroup(prefix string, members, names []string, kids [][2]int) planned {
	parts := make([]*part, len(kids))
	for i, k := range kids {
		ms := members[k[0]:k[1]]
		parts[i] = &part{prefix: lcp(ms), members: ms, names: names[k[0]:k[1]]}
	}
	type read struct {
		index uint64
		raw   []backends.KV
	}
	g := &group{label: fmt.Sprintf("%q (in %d parts)", "/"+prefix, len(parts))}
	g.triggers = []func(ctx context.Context, wait uint64) (uint64, error){
		func(ctx context.Context, wait uint64) (uint64, error) { return c.keysIndex(ctx, prefix, wait) },
	}
	g.read = func(ctx context.Context, _ uint64) (map[string][]backends.KV, uint64, error) {
		// The parts change only once every part was read: a failure
		// leaves them as they were, to be read again.
		news := make([]*read, len(parts))
		var top uint64
		for i, p := range parts {
			if p.index != 0 {
				idx, err := c.keysIndex(ctx, p.prefix, 0)
				if err != nil {
					return nil, 0, err
				}
				if idx == p.index {
					top = max(top, idx)
					continue
				}
			}
			raw, idx, err := c.listFrom(ctx, p.prefix, 0, p.raw)
			if err != nil {
				return nil, 0, err
			}
			news[i] = &read{index: idx, raw: raw}
			top = max(top, idx)
		}
		out := map[string][]backends.KV{}
		for i, r := range news {
			if r == nil {
				continue
			}
			p := parts[i]
			p.index, p.raw = r.index, r.raw
			maps.Copy(out, split(r.raw, p.members, p.names))
		}
		return out, top, nil
	}
	return planned{group: g, names: names}
}

// split returns the pairs of each of members (Consul prefixes) in kvs, a
// listing of a prefix that covers them all, by names[i] for members[i].
// Consul lists keys sorted, so each member's keys are usually one run of
// kvs, found by binary search; otherwise split copies them out one by
// one. Either way it checks the order of kvs once, not once per member:
// a group's listing holds thousands of keys for hundreds of members.
func split(kvs []backends.KV, members, names []string) map[string][]backends.KV {
	sorted := slices.IsSortedFunc(kvs, func(a, b backends.KV) int { return strings.Compare(a.Key, b.Key) })
	out := make(map[string][]backends.KV, len(members))
	for i, m := range members {
		out[names[i]] = pairs(m, clip(kvs, "/"+m, sorted))
	}
	return out
}

// clip returns the pairs of kvs, in Consul's order, whose key starts with
// p: a run of kvs when the keys are sorted, and otherwise a copy.
func clip(kvs []backends.KV, p string, sorted bool) []backends.KV {
	if sorted {
		byKey := func(kv backends.KV, k string) int { return strings.Compare(kv.Key, k) }
		lo, _ := slices.BinarySearchFunc(kvs, p, byKey)
		hi := lo
		for hi < len(kvs) && strings.HasPrefix(kvs[hi].Key, p) {
			hi++
		}
		return kvs[lo:hi:hi]
	}
	var out []backends.KV
	for _, kv := range kvs {
		if strings.HasPrefix(kv.Key, p) {
			out = append(out, kv)
		}
	}
	return out
}

// catalogGroup returns the group of catalog sources members of datacenter
// dc: every service of dc, or some services of it. Blocking queries on
// the nodes, the checks and the services of dc, each from its own index,
// make it read every service (see [Client.allServices], which reads again
// only the services whose checks changed) and keep the keys of members.
func (c *Client) catalogGroup(dc string, members []source) planned {
	names := make([]string, len(members))
	want := map[string]bool{}
	all := false
	for i, s := range members {
		names[i] = s.name()
		want[s.name()] = true
		if s.(catalogSource).q.Kind == catalog.KindAllServices {
			all = true
		}
	}
	g := &group{label: fmt.Sprintf("catalog of datacenter %q", dc)}
	g.read = func(ctx context.Context, _ uint64) (map[string][]backends.KV, uint64, error) {
		kvs, idx, err := c.allServices(ctx, dc, 0)
		if err != nil {
			return nil, 0, err
		}
		if all {
			return map[string][]backends.KV{names[0]: kvs}, idx, nil
		}
		out := make(map[string][]backends.KV, len(names))
		for _, n := range names {
			out[n] = []backends.KV{}
		}
		for _, kv := range kvs {
			if want[kv.Key] {
				out[kv.Key] = []backends.KV{kv}
			}
		}
		return out, idx, nil
	}
	for e := range endpoints {
		g.triggers = append(g.triggers, func(ctx context.Context, wait uint64) (uint64, error) {
			r, err := c.indexOf(ctx, dc, e, wait)
			return r.index, err
		})
	}
	return planned{group: g, names: names}
}

// run runs the queries of g until ctx is done: the first read from index
// from (without blocking if from is 0), then one blocking query after the
// other, each from the index of the last, and publishes each listing in s.
func (c *Client) run(ctx context.Context, s *session, g *group, from uint64) {
	if len(g.triggers) > 0 {
		c.runTriggered(ctx, s, g, from)
		return
	}
	var ls map[string][]backends.KV
	read := func(ctx context.Context, wait uint64) (i uint64, err error) {
		ls, i, err = g.read(ctx, wait)
		return i, err
	}
	c.follow(ctx, s, g, from, read, func(i, prev uint64, blocked bool) {
		reset := prev > 0 && i < prev
		if i != prev || !blocked || reset {
			s.publish(g, ls, i, reset)
		} else {
			s.publish(g, nil, i, false) // clears a failure
		}
	})
}

// follow runs query as a chain of blocking queries until ctx is done: the
// first from index from (without blocking if from is 0), each later one
// from the index of the last answer, paced, and without blocking after a
// failure, after a node was unreachable or when the query went out on a
// new connection (maybe to an agent restarted since, whose index may have
// gone back).
// Failures are reported to s for g and retried with backoff. answered is
// called with each answer's index, the index before it, and whether the
// query blocked.
func (c *Client) follow(ctx context.Context, s *session, g *group, from uint64,
	query func(ctx context.Context, wait uint64) (uint64, error), answered func(i, prev uint64, blocked bool)) {
	idx := from
	var last time.Time
	epoch := c.epoch.Load()
	// The next query must not block. The first one goes out without
	// blocking too: it usually needs a new connection, and a blocking
	// query on a new connection is dropped (see [withFreshConn]), a
	// connection opened for nothing that the agent may still count.
	recheck := true
	first := true // no answer yet
	for fails := 0; ctx.Err() == nil; {
		wait := idx
		if recheck || c.epoch.Load() != epoch {
			wait = 0 // a node was unreachable: check the index first
		}
		if err := pace(ctx, &last); err != nil {
			return
		}
		epoch = c.epoch.Load()
		var fresh atomic.Bool
		qctx, cancel := withFreshConn(ctx, wait > 0, &fresh)
		i, err := query(qctx, wait)
		cancel()
		if fresh.Load() && ctx.Err() == nil {
			// The query went out on a new connection, maybe to an agent
			// restarted since the last: ask again without blocking.
			recheck = true
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			fails++
			c.failed(s, g, err)
			// Whatever failed, the index may be stale: an agent that
			// restarts answers "No cluster leader" (HTTP 500) on the
			// connection it just accepted, whose next query would then
			// block from the old agent's index, above the new one's.
			recheck = true
			if backoff.Sleep(ctx, retry.Delay(fails)) != nil {
				return
			}
			continue
		}
		fails, recheck = 0, false
		c.seen(i)
		if first {
			// from is the caller's revision, the highest index of all it
			// read, which this query's own index may well be below
			// without a reset.
			answered(i, 0, wait > 0)
		} else {
			answered(i, idx, wait > 0)
		}
		first, idx = false, i
	}
}

// runTriggered runs the trigger queries of g, each from its own index,
// and reads g again (without blocking) each time one of them answers with
// a new index, then publishes the listing in s.
func (c *Client) runTriggered(ctx context.Context, s *session, g *group, from uint64) {
	kick := make(chan struct{}, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, t := range g.triggers {
		wg.Go(func() {
			c.follow(ctx, s, g, from, t, func(i, prev uint64, _ bool) {
				if i == prev {
					return
				}
				if prev > 0 && i < prev {
					s.mu.Lock()
					s.reset = true
					s.mu.Unlock()
				}
				select {
				case kick <- struct{}{}:
				default:
				}
			})
		})
	}
	if from == 0 {
		kick <- struct{}{}
	}
	var last time.Time
	var idx uint64
	for fails := 0; ; {
		select {
		case <-ctx.Done():
			return
		case <-kick:
		}
		if pace(ctx, &last) != nil {
			return
		}
		ls, i, err := g.read(ctx, 0)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			fails++
			c.failed(s, g, err)
			select {
			case kick <- struct{}{}: // read again after the backoff
			default:
			}
			if backoff.Sleep(ctx, retry.Delay(fails)) != nil {
				return
			}
			continue
		}
		fails = 0
		c.seen(i)
		reset := idx > 0 && i < idx
		idx = i
		s.publish(g, ls, i, reset)
	}
}

// publish makes ls (by source name, read at index idx) the newest
// listings of s, clears g's failure, notes a reset, and wakes the calls
// that wait on s.
func (s *session) publish(g *group, ls map[string][]backends.KV, idx uint64, reset bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	news := g.err != nil || reset || len(ls) > 0
	g.err = nil
	if !slices.ContainsFunc(s.groups, func(g *group) bool { return g.err != nil }) {
		s.reported = false
	}
	s.reset = s.reset || reset
	for name, kvs := range ls {
		s.latest[name] = &listing{name: name, index: max(idx, 1), kvs: kvs}
	}
	if news {
		close(s.wake)
		s.wake = make(chan struct{})
	}
}

// failed notes err, a failure of a query of g, and wakes the calls that
// wait on s, so that they return it. The first refusal of a connection
// over the agent's limit is logged with what to change.
func (c *Client) failed(s *session, g *group, err error) {
	if tooMany(err) {
		c.limitOnce.Do(func() {
			c.log.Warn("consul agent refused a connection over its per-client limit; raise limits.http_max_conns_per_client in the agent's configuration, or run fewer clients from this address",
				"limit", "limits.http_max_conns_per_client", "queries", maxQueries, "query", g.label)
		})
		err = fmt.Errorf("%s: too many connections from this address (HTTP 429: the agent's limits.http_max_conns_per_client): %w", g.label, err)
	} else {
		err = fmt.Errorf("%s: %w", g.label, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g.err = err
	close(s.wake)
	s.wake = make(chan struct{})
}

// pace waits until the next query may start: at least [minGap], plus up
// to [jitter], after the previous one, whose start *last holds; then it
// sets *last to now.
func pace(ctx context.Context, last *time.Time) error {
	next := last.Add(minGap + rand.N(jitter))
	if err := backoff.Sleep(ctx, time.Until(next)); err != nil && ctx.Err() != nil {
		return err
	}
	*last = time.Now()
	return nil
}
