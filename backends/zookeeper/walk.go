package zookeeper

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/kvconf/kvconf/backends/zookeeper/zkwire"
)

// parallel is the most requests a walk keeps in flight: zkwire sends them
// down one connection without waiting for the answers, so that a walk of
// many znodes costs little more than the server's work (256 in flight read
// 10,000 znodes no faster).
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
}

// walk reads the znodes under some prefixes, on one connection.
type walk struct {
	c     *Client
	conn  *zkwire.Conn
	op    string // for errors: "snapshot" or "watch"
	nodes map[string]*node
}

func newWalk(c *Client, conn *zkwire.Conn, op string) *walk {
	return &walk{c: c, conn: conn, op: op, nodes: map[string]*node{}}
}

// run reads the parents of ps, a result of [merge], then every znode
// under them that ps match. The parents themselves are not keys.
func (w *walk) run(ctx context.Context, ps []string) error {
	names := map[string][]string{} // parent → starts of matched names
	var dirs []string
	for _, p := range ps {
		dir, name := split(p)
		if _, ok := names[dir]; !ok {
			dirs = append(dirs, dir)
		}
		names[dir] = append(names[dir], name)
	}
	var todo []string
	for _, dir := range dirs {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("zookeeper: %s: %w", w.op, err)
		}
		kids, st, err := w.conn.Children(ctx, dir)
		if errors.Is(err, zkwire.ErrNoNode) {
			continue
		}
		if err != nil {
			return w.c.fail(w.op, dir, err)
		}
		w.c.seen(w.conn, &st)
		for _, k := range kids {
			for _, n := range names[dir] {
				if strings.HasPrefix(k, n) {
					todo = append(todo, join(dir, k))
					break
				}
			}
		}
	}
	return w.visit(ctx, todo)
}

// visited is what reading one znode found.
type visited struct {
	path string
	n    *node // nil when the znode is gone
	err  error
}

// visit reads the znodes at paths and every znode under them, [parallel]
// at a time, and adds them to w.nodes. A znode deleted meanwhile is left
// out. After an error it waits for the requests in flight and returns the
// first error.
func (w *walk) visit(ctx context.Context, paths []string) error {
	queue := slices.Clone(paths)
	res := make(chan visited, parallel)
	inflight := 0
	var first error
	for len(queue) > 0 || inflight > 0 {
		for first == nil && len(queue) > 0 && inflight < parallel {
			p := queue[len(queue)-1]
			queue = queue[:len(queue)-1]
			inflight++
			go func() { res <- w.read(ctx, p) }()
		}
		if inflight == 0 {
			break
		}
		r := <-res
		inflight--
		if r.err != nil {
			if first == nil {
				first = r.err
			}
			continue
		}
		if r.n == nil {
			continue
		}
		w.nodes[r.path] = r.n
		for _, k := range r.n.kids {
			queue = append(queue, join(r.path, k))
		}
	}
	return first
}

// read reads the znode at path: its data first, then, only if the stat
// counts some, its children, so that a leaf costs one request.
func (w *walk) read(ctx context.Context, path string) visited {
	n := &node{}
	data, st, err := w.conn.Get(ctx, path)
	if err == nil && st.NumChildren > 0 {
		w.c.seen(w.conn, &st)
		n.kids, st, err = w.conn.Children(ctx, path)
	}
	if errors.Is(err, zkwire.ErrNoNode) {
		return visited{path: path}
	}
	if err != nil {
		return visited{path: path, err: w.c.fail(w.op, path, err)}
	}
	w.c.seen(w.conn, &st)
	if len(n.kids) == 0 {
		n.kids, n.leaf, n.data = nil, true, string(data)
	}
	slices.Sort(n.kids)
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
