package consul

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/kvconf/kvconf/backends"
)

// waitTime is how long a blocking query waits for a change before Consul
// answers with the listing unchanged (the Consul API's maximum is 10m). It
// also bounds how long an index that went backwards without a failed
// request (a snapshot restored, an agent restarted between two queries)
// goes unnoticed: Consul holds a query whose index is ahead of its own
// until the wait time ends, then answers with its lower index.
const waitTime = time.Minute

// Pace of the queries of Watch on one prefix: at least minGap apart, plus
// a random share of jitter, as consul-template does.
const (
	minGap = 100 * time.Millisecond
	jitter = 25 * time.Millisecond
)

// listing is the content of a source (see [source]) as a caller holds it.
type listing struct {
	name  string        // the source's name
	index uint64        // Consul's index of the source when listed
	rev   uint64        // the revision the caller got with it; 0 if none yet
	kvs   []backends.KV // full template keys, sorted; never changed once made
}

// keep makes l the listing that [Client.Watch] compares the next listing
// of its source with.
func (c *Client) keep(l *listing) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.listings[l.name] = l
	}
}

// base returns the listing kept for the source named name if a caller at
// revision after holds it, or nil. A listing made at index i and returned
// with revision r is the content of its source at every revision from i to
// r: nothing under it changed in between.
func (c *Client) base(name string, after uint64) *listing {
	c.mu.Lock()
	defer c.mu.Unlock()
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
// Watch runs one blocking query per prefix (after merging prefixes that
// another covers), from after: Consul answers when the prefix's index
// passes after, or when the query's wait time ends, and then Watch asks
// again. A catalog prefix is watched through its endpoint: the health of
// the service, or the list of services or of nodes. Every service of a
// datacenter is watched through the nodes, the checks and the services at
// once, and read again whole when the first of them answers. Queries on
// one prefix are at least 100 ms apart, plus jitter. With several
// prefixes, the queries run at once, and the first change ends them all;
// Watch then lists every prefix again. Watch returns the changes when it
// holds the listings the caller holds (those it returned with after), and
// a full snapshot otherwise.
//
// When Consul's index goes backwards (a snapshot restore, a dev agent
// restarted), or when after is above every index seen since such a
// reset, Watch returns a full snapshot with the new store's revision,
// lower than after. After a request that reached no node, the next query
// on each prefix does not block, so that a restarted agent is noticed at
// once. An error of a query ends Watch; the caller calls it again.
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
	bases := make([]*listing, len(srcs))
	for i, s := range srcs {
		bases[i] = c.base(s.name(), after)
	}
	var w woken
	if len(srcs) == 1 {
		w, err = c.watchSource(ctx, srcs[0], after, bases[0])
	} else {
		w, err = c.watchAll(ctx, srcs, after, bases)
	}
	if err != nil {
		return backends.Update{}, err
	}
	if w.reset {
		rev, ls, err := c.snapshot(ctx, srcs)
		if err != nil {
			return backends.Update{}, err
		}
		return backends.Update{Rev: rev, Full: &backends.Snapshot{Rev: rev, KVs: toMap(ls)}}, nil
	}
	if len(srcs) == 1 {
		w.l.rev = w.rev
		c.keep(w.l)
		return update(bases, []*listing{w.l}, w.rev), nil
	}
	// Read every prefix again, as Snapshot does: the other queries were
	// cut short.
	rev, ls, err := c.snapshot(ctx, srcs)
	if err != nil {
		return backends.Update{}, err
	}
	return update(bases, ls, rev), nil
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

// woken is how a watch of a prefix ended.
type woken struct {
	reset bool     // Consul's index went backwards
	l     *listing // the new listing of the prefix, when it changed
	rev   uint64   // the revision l is the content at
}

// watchSource waits until the index of s passes after, or until a reset.
// When it holds base, the listing the caller holds, it goes on waiting
// while the listing stays the same: Consul raises the index of a prefix
// that holds no key at every write elsewhere, and that of a service at
// every change of its nodes or checks, even one that shows in no value.
func (c *Client) watchSource(ctx context.Context, s source, after uint64, base *listing) (woken, error) {
	op := "watch " + s.String()
	name := s.name()
	from := after
	for {
		if after > c.highest.Load() {
			// after comes from before a reset: the new store has not
			// come that far.
			return woken{reset: true}, nil
		}
		wait := from
		c.mu.Lock()
		if c.checked[name] != c.epoch.Load() {
			wait = 0 // a node was unreachable: check the index first
		}
		c.mu.Unlock()
		if err := c.pace(ctx, name); err != nil {
			return woken{}, fmt.Errorf("consul: %s: %w", op, err)
		}
		h0 := c.highest.Load()
		kvs, idx, err := s.read(ctx, wait)
		if err != nil {
			return woken{}, c.fail(ctx, op, err)
		}
		if c.record(name, idx) {
			return woken{reset: true}, nil
		}
		if idx > from {
			l := &listing{name: name, index: idx, kvs: kvs}
			if base != nil && slices.Equal(base.kvs, l.kvs) {
				from = idx // nothing changed under s
				continue
			}
			return woken{l: l, rev: max(h0, idx)}, nil
		}
		// The wait time ended with no change: ask again.
	}
}

// errWoken ends the other queries of watchAll once one has returned.
var errWoken = errors.New("consul: woken")

// watchAll runs [Client.watchSource] on every source of srcs at once, and
// returns how the first to end ended, once every query has returned.
func (c *Client) watchAll(ctx context.Context, srcs []source, after uint64, bases []*listing) (woken, error) {
	g, gctx := errgroup.WithContext(ctx)
	ws := make([]woken, len(srcs))
	for i, s := range srcs {
		g.Go(func() error {
			w, err := c.watchSource(gctx, s, after, bases[i])
			if err != nil {
				return err
			}
			ws[i] = w
			return errWoken
		})
	}
	err := g.Wait()
	if !errors.Is(err, errWoken) {
		return woken{}, err
	}
	var w woken
	for _, x := range ws {
		w.reset = w.reset || x.reset
		if x.l != nil {
			w.l = x.l
		}
	}
	return w, nil
}

// pace waits until the next query on the source named name may start: at
// least [minGap], plus up to [jitter], after the previous one.
func (c *Client) pace(ctx context.Context, name string) error {
	c.mu.Lock()
	now := time.Now()
	next := c.lastWait[name].Add(minGap + rand.N(jitter))
	if next.Before(now) {
		next = now
	}
	c.lastWait[name] = next
	c.mu.Unlock()
	d := time.Until(next)
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
