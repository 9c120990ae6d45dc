package zookeeper

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/go-zookeeper/zk"
)

// parallel is the most requests a walk keeps in flight: the client library
// sends them down one connection without waiting for the answers, so that
// a walk of many znodes costs little more than the server's work.
const parallel = 64

// merge returns the prefixes that cover prefixes: sorted, without
// duplicates, and without a prefix that another one covers (by plain
// string prefix). "" is taken as "/", and a prefix that does not start with
// "/" is dropped, since no znode path matches it. No prefix gives none.
func merge(prefixes []string) []string {
	ps := make([]string, 0, len(prefixes))
	for _, p := range prefixes {
		if p == "" {
			p = "/"
		}
		if strings.HasPrefix(p, "/") {
			ps = append(ps, p)
		}
	}
	slices.Sort(ps)
	// Sorted, the prefixes that p covers come right after p.
	out := ps[:0]
	for _, p := range ps {
		if len(out) > 0 && strings.HasPrefix(p, out[len(out)-1]) {
			continue
		}
		out = append(out, p)
	}
	return slices.Clip(out)
}

// split returns the parent of the znodes that prefix p matches and the
// start of their names: "/app/db" gives "/app" and "db", "/app/" gives
// "/app" and "", "/" gives "/" and "".
func split(p string) (dir, name string) {
	i := strings.LastIndexByte(p, '/')
	dir, name = p[:i], p[i+1:]
	if dir == "" {
		dir = "/"
	}
	return dir, name
}

// join returns the path of the child name of dir.
func join(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// node is a znode read by a walk.
type node struct {
	kids []string // names of the children, sorted; none for a leaf
	leaf bool     // no children: a key
	data string   // the data of a leaf

	kidsArmed bool // a children watch is set on it
	dataArmed bool // a data watch is set on it
}

// anchor is the parent of the znodes that some prefixes match, such as
// /app for /app/db: its children are read, but it is not a key.
type anchor struct {
	names []string // starts of the matched names; "" matches every child
	kids  []string // names of the matched children, sorted
	found bool     // the znode exists

	kidsArmed  bool // a children watch is set on it
	existArmed bool // an exists (or data) watch is set on it
}

// match reports whether the child name is matched by a.
func (a *anchor) match(name string) bool {
	for _, n := range a.names {
		if strings.HasPrefix(name, n) {
			return true
		}
	}
	return false
}

// walk reads the znodes under some prefixes, with watches when watch is
// set.
type walk struct {
	c       *Client
	watch   bool
	op      string // for errors: "snapshot" or "watch"
	nodes   map[string]*node
	anchors map[string]*anchor
}

func newWalk(c *Client, watch bool) *walk {
	op := "snapshot"
	if watch {
		op = "watch"
	}
	return &walk{c: c, watch: watch, op: op, nodes: map[string]*node{}, anchors: map[string]*anchor{}}
}

// run reads the anchors of ps, a result of [merge], then every znode
// under them.
func (w *walk) run(ctx context.Context, ps []string) error {
	var dirs []string
	for _, p := range ps {
		dir, name := split(p)
		a := w.anchors[dir]
		if a == nil {
			a = &anchor{}
			w.anchors[dir] = a
			dirs = append(dirs, dir)
		}
		a.names = append(a.names, name)
	}
	var todo []string
	for _, dir := range dirs {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("zookeeper: %s: %w", w.op, err)
		}
		a := w.anchors[dir]
		if err := w.readAnchor(ctx, dir, a); err != nil {
			return err
		}
		for _, k := range a.kids {
			todo = append(todo, join(dir, k))
		}
	}
	_, _, err := w.visit(ctx, todo)
	return err
}

// readAnchor reads the children of the anchor dir that a matches, and
// arms the watches a lacks when watching: a children watch, or, while dir
// does not exist, an exists watch.
func (w *walk) readAnchor(ctx context.Context, dir string, a *anchor) error {
	conn := w.c.conn
	for range 3 { // dir may come and go between the requests
		var kids []string
		var st *zk.Stat
		err := call(ctx, w.c, func() (err error) {
			if w.watch && !a.kidsArmed {
				kids, st, _, err = conn.ChildrenW(dir)
			} else {
				kids, st, err = conn.Children(dir)
			}
			return err
		})
		switch {
		case err == nil:
			w.c.seen(st)
			if w.watch {
				a.kidsArmed = true
			}
			a.found = true
			a.kids = a.kids[:0]
			for _, k := range kids {
				if a.match(k) {
					a.kids = append(a.kids, k)
				}
			}
			slices.Sort(a.kids)
			return nil
		case !errors.Is(err, zk.ErrNoNode):
			return w.c.fail(w.op, dir, err)
		}
		a.found, a.kids = false, nil
		if !w.watch || a.existArmed {
			return nil
		}
		var found bool
		err = call(ctx, w.c, func() (err error) {
			found, st, _, err = conn.ExistsW(dir)
			return err
		})
		if err != nil {
			return w.c.fail(w.op, dir, err)
		}
		a.existArmed = true
		if !found {
			return nil
		}
		w.c.seen(st) // created meanwhile: read its children
	}
	return fmt.Errorf("zookeeper: %s: read %q: the znode keeps being created and deleted", w.op, dir)
}

// visited is what reading one znode found.
type visited struct {
	path string
	n    *node // nil when the znode is gone
	err  error
}

// visit reads the znodes at paths and every znode under them, [parallel]
// at a time, and adds them to w.nodes. It returns the paths of the leaves
// it found. A znode deleted meanwhile is left out. After an error it waits
// for the requests in flight and returns the first error, with the paths
// left to visit: those whose read failed and those not read yet.
func (w *walk) visit(ctx context.Context, paths []string) (leaves, left []string, err error) {
	queue := slices.Clone(paths)
	res := make(chan visited, parallel)
	inflight := 0
	var first error
	if err := ctx.Err(); err != nil && len(queue) > 0 {
		first = fmt.Errorf("zookeeper: %s: %w", w.op, err)
	}
	for len(queue) > 0 || inflight > 0 {
		for first == nil && len(queue) > 0 && inflight < parallel {
			p := queue[len(queue)-1]
			queue = queue[:len(queue)-1]
			inflight++
			go func() { res <- w.read(p) }()
		}
		if inflight == 0 {
			break
		}
		r := <-res
		inflight--
		if first == nil && ctx.Err() != nil { // stop: what was read is kept
			first = fmt.Errorf("zookeeper: %s: %w", w.op, ctx.Err())
		}
		if r.err != nil {
			if first == nil {
				first = r.err
			}
			left = append(left, r.path)
			continue
		}
		if r.n == nil {
			continue
		}
		w.nodes[r.path] = r.n
		if r.n.leaf {
			leaves = append(leaves, r.path)
		}
		for _, k := range r.n.kids {
			queue = append(queue, join(r.path, k))
		}
	}
	if first != nil {
		left = append(left, queue...)
	}
	return leaves, left, first
}

// read reads the znode at path: its children, and its data if it has
// none. Watching, it sets a children watch, and a data watch on a leaf;
// otherwise it reads the data first and the children only if the stat
// counts some, so that a leaf costs one request.
func (w *walk) read(path string) visited {
	conn := w.c.conn
	n := &node{}
	if !w.watch {
		data, st, err := conn.Get(path)
		if err == nil && st.NumChildren > 0 {
			w.c.seen(st)
			n.kids, st, err = conn.Children(path)
		}
		if errors.Is(err, zk.ErrNoNode) {
			return visited{path: path}
		}
		if err != nil {
			return visited{path: path, err: w.c.fail(w.op, path, err)}
		}
		w.c.seen(st)
		if len(n.kids) == 0 {
			n.kids, n.leaf, n.data = nil, true, string(data)
		}
		slices.Sort(n.kids)
		return visited{path: path, n: n}
	}
	kids, st, _, err := conn.ChildrenW(path)
	if errors.Is(err, zk.ErrNoNode) {
		return visited{path: path}
	}
	if err != nil {
		return visited{path: path, err: w.c.fail(w.op, path, err)}
	}
	w.c.seen(st)
	n.kidsArmed = true
	if len(kids) > 0 {
		slices.Sort(kids)
		n.kids = kids
		return visited{path: path, n: n}
	}
	data, st, _, err := conn.GetW(path)
	if errors.Is(err, zk.ErrNoNode) {
		return visited{path: path} // its children watch reports the delete
	}
	if err != nil {
		return visited{path: path, err: w.c.fail(w.op, path, err)}
	}
	w.c.seen(st)
	n.dataArmed, n.leaf, n.data = true, true, string(data)
	return visited{path: path, n: n}
}

// keys returns the leaves with their data.
func (w *walk) keys() map[string]string {
	kvs := make(map[string]string, len(w.nodes))
	for p, n := range w.nodes {
		if n.leaf {
			kvs[p] = n.data
		}
	}
	return kvs
}
