package zookeeper

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/backends/zookeeper/zkwire"
)

// roots returns the znodes to watch for ps, a result of [merge]: the
// parents of the znodes each prefix matches ("/app" for "/app/db" and for
// "/app/"), without those under another one, since a recursive watch
// covers its whole subtree. Two prefixes with one parent share a watch.
func roots(ps []string) []string {
	var dirs []string
	for _, p := range ps {
		dir, _ := split(p)
		dirs = append(dirs, dir)
	}
	slices.Sort(dirs)
	dirs = slices.Compact(dirs)
	// Sorted, a znode comes after the znodes it is under, though not
	// always right after them: /a, /a-b, /a/c.
	var out []string
	for _, d := range dirs {
		if !slices.ContainsFunc(out, func(r string) bool { return under(d, r) }) {
			out = append(out, d)
		}
	}
	return out
}

// under reports whether the znode p is r or under it.
func under(p, r string) bool {
	return r == "/" || p == r || strings.HasPrefix(p, r+"/")
}

// wnode is a znode the watch keeps: one that some prefix matches.
type wnode struct {
	kids  map[string]struct{} // names of the children; none for a leaf
	data  string              // the data of a leaf, once read
	known bool                // data is the data read since it became a leaf
}

// watchState is the state of Watch: the znodes the prefixes match, kept
// up to date by the notifications of the persistent recursive watches of
// one connection, and the keys the caller has.
type watchState struct {
	ps    []string // result of merge
	roots []string // result of roots(ps): one watch each
	conn  *zkwire.Conn
	nodes map[string]*wnode
	keys  map[string]string // as last returned to the caller

	touched map[string]struct{} // znodes whose key may differ from keys
	dirty   map[string]struct{} // leaves whose data to read
}

// match reports whether some prefix of s matches the znode p.
func (s *watchState) match(p string) bool {
	for _, q := range s.ps {
		if strings.HasPrefix(p, q) {
			return true
		}
	}
	return false
}

// Watch implements [backends.Watcher]. It blocks until a key under
// prefixes changed after revision after, then returns the changes, or,
// on its first call for these prefixes, the full snapshot that the watch
// starts from (see the package doc). With after == 0 it returns the
// current revision at once.
//
// The client keeps one set of watched prefixes: a call with other
// prefixes starts anew. Calls at the same time wait for each other. When
// the connection ends, Watch returns an error; the next call connects
// again (resuming the session while it lives), sets the watches again and
// reads the prefixes again, and returns what changed meanwhile as deltas.
func (c *Client) Watch(ctx context.Context, prefixes []string, after uint64) (backends.Update, error) {
	if err := ctx.Err(); err != nil {
		return backends.Update{}, fmt.Errorf("zookeeper: watch: %w", err)
	}
	if c.isClosed() {
		return backends.Update{}, fmt.Errorf("zookeeper: watch: %w", backends.ErrClosed)
	}
	if after == 0 {
		return backends.Update{Rev: c.revision()}, nil
	}
	select {
	case c.watching <- struct{}{}:
		defer func() { <-c.watching }()
	case <-ctx.Done():
		return backends.Update{}, fmt.Errorf("zookeeper: watch: %w", ctx.Err())
	case <-c.done:
		return backends.Update{}, fmt.Errorf("zookeeper: watch: %w", backends.ErrClosed)
	}
	ps := merge(prefixes)
	if len(ps) == 0 { // nothing can change
		select {
		case <-ctx.Done():
			return backends.Update{}, fmt.Errorf("zookeeper: watch: %w", ctx.Err())
		case <-c.done:
			return backends.Update{}, fmt.Errorf("zookeeper: watch: %w", backends.ErrClosed)
		}
	}
	conn, err := c.session(ctx)
	if err != nil {
		return backends.Update{}, c.fail("watch", "", err)
	}
	s := c.state
	if s == nil || !slices.Equal(s.ps, ps) {
		// New prefixes: the walk is returned in full.
		s, err = c.start(ctx, conn, s, ps)
		if err != nil {
			return backends.Update{}, err
		}
		c.state = s
		rev := c.raise(max(c.revision(), after))
		return backends.Update{Rev: rev, Full: &backends.Snapshot{Rev: rev, KVs: maps.Clone(s.keys)}}, nil
	}
	if s.conn != conn {
		// A new connection has no watches, and the notifications of the
		// changes made meanwhile are lost: the walk of the new watches
		// is compared with what the caller has.
		ns, err := c.start(ctx, conn, s, ps)
		if err != nil {
			return backends.Update{}, err
		}
		c.resyncs.Add(1)
		ns.keys = s.keys
		for p := range ns.nodes {
			ns.touched[p] = struct{}{}
		}
		for p := range s.keys {
			ns.touched[p] = struct{}{}
		}
		s = ns
		c.state = s
	}
	for {
		s.apply(conn.Events())
		if err := c.readDirty(ctx, s); err != nil {
			return backends.Update{}, err
		}
		if changes := s.reconcile(); len(changes) > 0 {
			c.seen(conn, nil)
			rev := c.raise(max(c.rev.Load(), after+1))
			return backends.Update{Rev: rev, Changes: changes}, nil
		}
		select {
		case <-ctx.Done():
			return backends.Update{}, fmt.Errorf("zookeeper: watch %q: %w", prefixes, ctx.Err())
		case <-c.done:
			return backends.Update{}, fmt.Errorf("zookeeper: watch: %w", backends.ErrClosed)
		case <-conn.Done():
			return backends.Update{}, c.fail("watch", "", conn.Err())
		case <-conn.Notify():
		}
	}
}

// start sets a persistent recursive watch on each root of ps on conn,
// removing those of old that ps does not need when old used conn, then
// walks ps. Notifications queued before the watches were set are
// dropped: the walk reads what they report. Those that come after are
// applied by the next calls: they may repeat what the walk read, which
// is harmless, since each says what a znode is now, and data is read
// again.
func (c *Client) start(ctx context.Context, conn *zkwire.Conn, old *watchState, ps []string) (*watchState, error) {
	rs := roots(ps)
	conn.Events()
	if old != nil && old.conn == conn {
		for _, r := range old.roots {
			if !slices.Contains(rs, r) {
				if err := conn.RemoveWatches(ctx, r); err != nil {
					return nil, c.fail("watch", r, err)
				}
			}
		}
	}
	for _, r := range rs {
		if err := conn.AddWatch(ctx, r, zkwire.PersistentRecursive); err != nil {
			if errors.Is(err, zkwire.ErrUnimplemented) {
				return nil, fmt.Errorf("zookeeper: watch %q: addWatch needs ZooKeeper 3.6 or later: %w", r, err)
			}
			return nil, c.fail("watch", r, err)
		}
	}
	w := newWalk(c, conn, "watch")
	if err := w.run(ctx, ps); err != nil {
		return nil, err
	}
	s := &watchState{
		ps: ps, roots: rs, conn: conn,
		nodes:   make(map[string]*wnode, len(w.nodes)),
		keys:    w.keys(),
		touched: map[string]struct{}{},
		dirty:   map[string]struct{}{},
	}
	for p, n := range w.nodes {
		wn := &wnode{data: n.data, known: n.leaf}
		if len(n.kids) > 0 {
			wn.kids = make(map[string]struct{}, len(n.kids))
			for _, k := range n.kids {
				wn.kids[k] = struct{}{}
			}
		}
		s.nodes[p] = wn
	}
	return s, nil
}

// apply updates the znodes of s with the notifications evs, in order.
func (s *watchState) apply(evs []zkwire.Event) {
	for _, ev := range evs {
		switch ev.Type {
		case zkwire.EventNodeCreated:
			s.add(ev.Path)
		case zkwire.EventNodeDeleted:
			s.remove(ev.Path)
		case zkwire.EventNodeDataChanged:
			n := s.nodes[ev.Path]
			if n == nil {
				s.add(ev.Path) // not seen yet: it exists now
			} else if len(n.kids) == 0 {
				s.dirty[ev.Path] = struct{}{}
			}
		}
	}
}

// add records that the znode p exists, with its parents that a prefix
// matches, and that its data is to be read.
func (s *watchState) add(p string) {
	if !s.match(p) {
		return
	}
	if s.nodes[p] == nil {
		s.nodes[p] = &wnode{}
	}
	if n := s.nodes[p]; len(n.kids) == 0 {
		s.dirty[p] = struct{}{}
		s.touched[p] = struct{}{}
	}
	for {
		dir, name := split(p)
		if dir == "/" || !s.match(dir) { // the root is never a key: it holds /zookeeper
			return
		}
		parent := s.nodes[dir]
		created := parent == nil
		if created {
			parent = &wnode{}
			s.nodes[dir] = parent
		}
		if len(parent.kids) == 0 { // a key no more: a directory
			parent.kids = map[string]struct{}{}
			parent.known, parent.data = false, ""
			delete(s.dirty, dir)
			s.touched[dir] = struct{}{}
		}
		parent.kids[name] = struct{}{}
		if !created {
			return
		}
		p = dir
	}
}

// remove records that the znode p is gone, with every znode under it;
// its parent may turn into a key, whose data is to be read.
func (s *watchState) remove(p string) {
	s.drop(p)
	dir, name := split(p)
	parent := s.nodes[dir]
	if dir == p || parent == nil {
		return
	}
	delete(parent.kids, name)
	if len(parent.kids) == 0 { // a directory no more: a key
		parent.kids = nil
		s.dirty[dir] = struct{}{}
		s.touched[dir] = struct{}{}
	}
}

// drop forgets the znode p and every znode under it.
func (s *watchState) drop(p string) {
	n := s.nodes[p]
	if n == nil {
		return
	}
	delete(s.nodes, p)
	delete(s.dirty, p)
	s.touched[p] = struct{}{}
	for k := range n.kids {
		s.drop(join(p, k))
	}
}

// readDirty reads the data of the dirty leaves, [parallel] at a time. A
// leaf that is gone, or has children, was changed after the notifications
// applied: the notifications of those changes are queued already (the
// server sends them before the answer), and the next [watchState.apply]
// takes them. After an error, what was not read stays dirty.
func (c *Client) readDirty(ctx context.Context, s *watchState) error {
	if len(s.dirty) == 0 {
		return nil
	}
	type read struct {
		path string
		data []byte
		st   zkwire.Stat
		err  error
	}
	paths := make([]string, 0, len(s.dirty))
	for p := range s.dirty {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	res := make(chan read, parallel)
	sem := make(chan struct{}, parallel)
	go func() {
		for _, p := range paths {
			sem <- struct{}{}
			go func() {
				data, st, err := s.conn.Get(ctx, p)
				res <- read{path: p, data: data, st: st, err: err}
				<-sem
			}()
		}
	}()
	var first error
	for range paths {
		r := <-res
		switch {
		case errors.Is(r.err, zkwire.ErrNoNode):
			delete(s.dirty, r.path)
		case r.err != nil:
			if first == nil {
				first = c.fail("watch", r.path, r.err)
			}
		default:
			delete(s.dirty, r.path)
			c.seen(s.conn, &r.st)
			if n := s.nodes[r.path]; n != nil && len(n.kids) == 0 && r.st.NumChildren == 0 {
				n.data, n.known = string(r.data), true
				s.touched[r.path] = struct{}{}
			}
		}
	}
	return first
}

// reconcile returns the changes that bring the caller's keys to those of
// the znodes of s, for the znodes touched since the last call, and
// records them as the caller's. A new leaf whose data is not read yet
// stays touched.
func (s *watchState) reconcile() []backends.Change {
	var changes []backends.Change
	for p := range s.touched {
		n := s.nodes[p]
		if n != nil && len(n.kids) == 0 && !n.known {
			continue // its data comes with a later read
		}
		delete(s.touched, p)
		old, had := s.keys[p]
		if n != nil && len(n.kids) == 0 && s.match(p) {
			if !had || old != n.data {
				s.keys[p] = n.data
				changes = append(changes, backends.Change{Key: p, Value: n.data})
			}
		} else if had {
			delete(s.keys, p)
			changes = append(changes, backends.Change{Key: p, Deleted: true})
		}
	}
	slices.SortFunc(changes, func(a, b backends.Change) int { return strings.Compare(a.Key, b.Key) })
	return changes
}
