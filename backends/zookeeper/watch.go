package zookeeper

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/go-zookeeper/zk"

	"github.com/kvconf/kvconf/backends"
)

// errNoSession reports that the client has no session with a server: it
// lost its connection and has not made a new one yet.
var errNoSession = errors.New("no connection to a ZooKeeper server")

// fired says which watches of a znode fired.
type fired uint8

const (
	firedKids fired = 1 << iota // its children watch
	firedData                   // its data or exists watch
)

// tree is the state of Watch: the znodes under some prefixes with their
// watches, and the events not handled yet.
type tree struct {
	ps      []string // result of merge
	w       *walk
	session int64 // the session whose watches w armed
	expired bool  // the session expired: walk again

	pending map[string]fired  // znodes to read again, with the watches that fired
	todo    []string          // new znodes to visit
	changes []backends.Change // found and not returned yet
}

// busy reports whether t has work left for refresh.
func (t *tree) busy() bool {
	return len(t.pending) > 0 || len(t.todo) > 0 || len(t.changes) > 0
}

// Watch implements [backends.Watcher]. It blocks until a key under
// prefixes changed after revision after, then returns the changes, or,
// on its first call for these prefixes and after a session expired, the
// full snapshot of the walk that armed the watches (see the package doc).
// With after == 0 it returns the current revision at once.
//
// The client keeps one set of watched prefixes: a call with other
// prefixes walks them anew. Calls at the same time wait for each other.
// While the client has no connection to a server, Watch returns an error
// at once; once it has one again, it goes on where it was.
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
	t := c.tree
	if t == nil || !slices.Equal(t.ps, ps) {
		return c.rebuild(ctx, ps, after)
	}
	for {
		for _, ev := range c.takeEvents() {
			t.note(ev)
		}
		if c.isClosed() {
			return backends.Update{}, fmt.Errorf("zookeeper: watch: %w", backends.ErrClosed)
		}
		if c.conn.State() != zk.StateHasSession {
			return backends.Update{}, fmt.Errorf("zookeeper: watch %q: %w", prefixes, errNoSession)
		}
		if t.expired || c.conn.SessionID() != t.session {
			return c.rebuild(ctx, ps, after)
		}
		if t.busy() {
			if err := t.refresh(ctx); err != nil {
				return backends.Update{}, err
			}
			if len(t.changes) > 0 {
				changes := t.changes
				t.changes = nil
				rev := c.raise(max(c.rev.Load(), after+1))
				return backends.Update{Rev: rev, Changes: changes}, nil
			}
		}
		select {
		case <-ctx.Done():
			return backends.Update{}, fmt.Errorf("zookeeper: watch %q: %w", prefixes, ctx.Err())
		case <-c.done:
			return backends.Update{}, fmt.Errorf("zookeeper: watch: %w", backends.ErrClosed)
		case <-c.kick:
		}
	}
}

// rebuild walks ps with watches, keeps the result for the next calls, and
// returns it as a full update. Events reported before the walk are
// dropped, since the walk reads what they report; those reported during
// the walk are kept for the next call.
func (c *Client) rebuild(ctx context.Context, ps []string, after uint64) (backends.Update, error) {
	c.tree = nil
	c.takeEvents()
	// Not checked for a session: the walk's requests wait for one, or
	// fail once the client has tried every server.
	t := &tree{ps: ps, w: newWalk(c, true), pending: map[string]fired{}}
	if err := t.w.run(ctx, ps); err != nil {
		return backends.Update{}, err
	}
	// After the walk, whose requests may have waited for the session: a
	// session that expired during the walk left its event for the next
	// call.
	t.session = c.conn.SessionID()
	c.tree = t
	rev := c.raise(max(c.revision(), after))
	return backends.Update{Rev: rev, Full: &backends.Snapshot{Rev: rev, KVs: t.w.keys()}}, nil
}

// note records what the event ev reports: a fired watch of a znode of t,
// or the end of the session.
func (t *tree) note(ev zk.Event) {
	var f fired
	switch ev.Type {
	case zk.EventSession:
		if ev.State == zk.StateExpired {
			t.expired = true
		}
		return
	case zk.EventNodeCreated, zk.EventNodeDataChanged:
		f = firedData
	case zk.EventNodeChildrenChanged:
		f = firedKids
	case zk.EventNodeDeleted:
		// Every watch of the znode fired. It is read again rather than
		// dropped: it may exist again already, a new znode whose parent's
		// children, read before this event was handled, still named it.
		f = firedKids | firedData
	default:
		return
	}
	if t.w.nodes[ev.Path] == nil && t.w.anchors[ev.Path] == nil {
		return // a watch of another walk, or of a znode since dropped
	}
	t.pending[ev.Path] |= f
}

// refresh reads again the znodes whose watches fired, arms those watches
// again, visits the new znodes, and adds what changed under the prefixes
// to t.changes. After an error, what is left stays in t.pending and
// t.todo, and what changed in t.changes, for the next call: on the same
// session, no change is lost and no watch is armed twice.
func (t *tree) refresh(ctx context.Context) error {
	paths := make([]string, 0, len(t.pending))
	for p := range t.pending {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("zookeeper: watch: %w", err)
		}
		f := t.pending[p]
		delete(t.pending, p)
		var err error
		if a := t.w.anchors[p]; a != nil {
			err = t.refreshAnchor(ctx, p, a, f)
		} else if n := t.w.nodes[p]; n != nil {
			err = t.refreshNode(p, n, f)
		}
		if err != nil {
			return err
		}
	}
	leaves, left, err := t.w.visit(ctx, t.todo)
	t.todo = left
	for _, p := range leaves {
		t.changes = append(t.changes, backends.Change{Key: p, Value: t.w.nodes[p].data})
	}
	return err
}

// refreshAnchor reads again the children of the anchor dir, and adds the
// new ones to t.todo. After an error it is pending again.
func (t *tree) refreshAnchor(ctx context.Context, dir string, a *anchor, f fired) error {
	if f&firedKids != 0 {
		a.kidsArmed = false
	}
	if f&firedData != 0 {
		a.existArmed = false
	}
	if a.kidsArmed { // only its data changed, or it was created while read
		return nil
	}
	old := slices.Clone(a.kids)
	if err := t.w.readAnchor(ctx, dir, a); err != nil {
		a.kids = old
		t.pending[dir] |= firedKids // what is not armed is read again
		return err
	}
	t.diff(dir, old, a.kids)
	return nil
}

// refreshNode reads again the znode at path, after its watches f fired,
// and adds its new children to t.todo. After an error it is pending
// again, for the watches it did not arm again.
func (t *tree) refreshNode(path string, n *node, f fired) error {
	conn := t.w.c.conn
	if f&firedKids != 0 {
		n.kidsArmed = false
	}
	if f&firedData != 0 {
		n.dataArmed = false
	}
	if !n.kidsArmed {
		kids, st, _, err := conn.ChildrenW(path)
		if errors.Is(err, zk.ErrNoNode) {
			t.drop(path)
			return nil
		}
		if err != nil {
			t.pending[path] |= f
			return t.w.c.fail("watch", path, err)
		}
		t.w.c.seen(st)
		n.kidsArmed = true
		slices.Sort(kids)
		old := n.kids
		n.kids = kids
		t.diff(path, old, kids)
	}
	switch {
	case len(n.kids) > 0 && n.leaf: // a key no more: a directory
		n.leaf, n.data = false, ""
		t.changes = append(t.changes, backends.Change{Key: path, Deleted: true})
	case len(n.kids) == 0 && (!n.leaf || f&firedData != 0):
		var data []byte
		var st *zk.Stat
		var err error
		if n.dataArmed {
			data, st, err = conn.Get(path)
		} else {
			data, st, _, err = conn.GetW(path)
		}
		if errors.Is(err, zk.ErrNoNode) {
			t.drop(path)
			return nil
		}
		if err != nil {
			t.pending[path] |= firedData
			return t.w.c.fail("watch", path, err)
		}
		t.w.c.seen(st)
		n.dataArmed = true
		if !n.leaf || n.data != string(data) {
			n.leaf, n.data = true, string(data)
			t.changes = append(t.changes, backends.Change{Key: path, Value: n.data})
		}
	}
	return nil
}

// diff compares the children old and kids of dir, both sorted: it drops
// the znodes of the children gone and adds the new ones to t.todo.
func (t *tree) diff(dir string, old, kids []string) {
	i, j := 0, 0
	for i < len(old) || j < len(kids) {
		switch {
		case j == len(kids) || i < len(old) && old[i] < kids[j]:
			t.remove(join(dir, old[i]))
			i++
		case i == len(old) || kids[j] < old[i]:
			t.todo = append(t.todo, join(dir, kids[j]))
			j++
		default:
			if t.w.nodes[join(dir, kids[j])] == nil { // dropped, then created again
				t.todo = append(t.todo, join(dir, kids[j]))
			}
			i++
			j++
		}
	}
}

// drop removes the znode at path, which was deleted, and its children
// from the tree, and its name from its parent's children, so that a znode
// created again at path is seen as new.
func (t *tree) drop(path string) {
	t.remove(path)
	dir, name := split(path)
	if p := t.w.nodes[dir]; p != nil {
		if i, ok := slices.BinarySearch(p.kids, name); ok {
			p.kids = slices.Delete(p.kids, i, i+1)
		}
	} else if a := t.w.anchors[dir]; a != nil {
		if i, ok := slices.BinarySearch(a.kids, name); ok {
			a.kids = slices.Delete(a.kids, i, i+1)
		}
	}
}

// remove removes the znode at path and every znode under it from the
// tree, with a delete for each key.
func (t *tree) remove(path string) {
	n := t.w.nodes[path]
	if n == nil {
		return
	}
	delete(t.w.nodes, path)
	if n.leaf {
		t.changes = append(t.changes, backends.Change{Key: path, Deleted: true})
	}
	for _, k := range n.kids {
		t.remove(join(path, k))
	}
}
