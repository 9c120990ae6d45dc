// Package zookeeper is the ZooKeeper backend, with confd's key semantics:
// a znode's path is its key and its data the value; each prefix is walked
// recursively; a znode with children is a directory, not a key (its data
// is not read), and a leaf with no data is a key with an empty value. It
// registers as "zookeeper".
//
// Keys match prefixes by plain string prefix, as in every kvconf backend:
// the prefix /app/db reads the children of /app whose names start with
// "db", so /app/db/host and /app/dbx/name. The prefix "/" reads the whole
// tree, ZooKeeper's own /zookeeper znodes included, as confd does.
//
// # Revisions
//
// ZooKeeper has no read at one revision across znodes. A revision of this
// backend is the highest transaction id (zxid) the client has seen: in the
// headers of the server's answers (its last committed transaction when it
// answered) and in the stats of the znodes read. It never goes back and is
// never less than 1: the "highest index seen" of package backends, not a
// point in ZooKeeper's history.
//
// # Protocol
//
// The client is package zkwire, ours: github.com/go-zookeeper/zk (v1.0.4,
// the latest) has no addWatch and no way to send a request of another
// type. The client has one session at a time (one connection) for
// Snapshot and Watch; when the connection ends, the next call connects
// again, to the next server of the list, resuming the session while it can
// still live, else with a new one.
//
// # Watching
//
// [Client.Watch] sets one persistent recursive watch (addWatch, ZooKeeper
// 3.6+) per merged prefix, on the parent of the znodes it matches (/app
// for /app/db and for /app/): prefixes with one parent, or under another
// prefix's parent, share a watch. Then it walks the prefixes, and keeps
// the znodes they match. The server notifies every creation, deletion and
// data change under the watched znodes, one notification per znode, on
// the same session as the reads and before the answer to any read made
// after the change: a created or changed leaf is read once (getData), a
// deleted znode is dropped with what was under it, and its parent turns
// into a key when it has no child left. Each call returns the keys that
// changed, as deltas; the first call for some prefixes returns the walk
// in full. The server holds one watch per merged prefix, whatever the
// number of znodes. A server older than 3.6 has no addWatch: Snapshot
// works with it, Watch does not.
//
// A watch lives as long as its connection: when the connection ends,
// Watch returns an error, and the next call connects again, sets the
// watches again and walks the prefixes again (the server does not replay
// the changes made while no connection watched), and returns the
// differences from what it returned before, as deltas. The same happens
// after the session expired, with a new session.
package zookeeper

import (
	"context"
	_ "embed" // for Sample
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/backends/zookeeper/zkwire"
	"github.com/kvconf/kvconf/internal/redact"
)

func init() {
	backends.Register("zookeeper", func() backends.Config { return new(Config) })
}

// Sample is an annotated example of the zookeeper backend's configuration,
// in TOML.
//
//go:embed sample.toml
var Sample string

// DefaultNode is the server used when the nodes option is empty.
const DefaultNode = "127.0.0.1:2181"

// DefaultSessionTimeout is the session timeout asked for when the
// session_timeout option is empty.
const DefaultSessionTimeout = 10 * time.Second

// Config holds the zookeeper backend's options, with confd's names: nodes
// comes from -node (repeatable), username and password from -username and
// -password.
type Config struct {
	// Nodes lists the servers, host:port or host (port 2181). Empty means
	// [DefaultNode].
	Nodes []string `toml:"nodes"`
	// Username and Password, when set, authenticate the session with
	// ZooKeeper's digest scheme (zkCli's addauth digest user:password).
	Username string `toml:"username"`
	Password string `toml:"password"`
	// SessionTimeout is the session timeout asked of the server, in the
	// syntax of [time.ParseDuration]; empty means [DefaultSessionTimeout].
	SessionTimeout string `toml:"session_timeout"`
	// Logger receives the ZooKeeper client's messages; nil discards them.
	Logger *slog.Logger `toml:"-"`
}

// Sample returns [Sample]; it implements [backends.Sampler].
func (c *Config) Sample() string { return Sample }

// Description returns a one-line description of the backend; it
// implements [backends.Describer].
func (c *Config) Description() string {
	return "ZooKeeper: znodes walked recursively as confd does, watched with one persistent recursive watch per prefix, as deltas"
}

// SetLogger makes l receive the ZooKeeper client's messages; it implements
// [backends.LogSetter].
func (c *Config) SetLogger(l *slog.Logger) { c.Logger = l }

// servers returns the nodes as host:port.
func (c *Config) servers() ([]string, error) {
	nodes := c.Nodes
	if len(nodes) == 0 {
		nodes = []string{DefaultNode}
	}
	out := make([]string, 0, len(nodes))
	for _, n := range nodes {
		n = strings.TrimSpace(n)
		if n == "" {
			return nil, errors.New("zookeeper: empty node in nodes (-node)")
		}
		// A node may carry a password by mistake (user:pw@host): errors
		// quote it with its userinfo masked, and never the parser's own
		// message, which quotes it whole.
		shown := redact.URL(n)
		if strings.Contains(n, "://") || strings.ContainsAny(n, "/?#@") {
			return nil, fmt.Errorf("zookeeper: node %q: want host:port (-node)", shown)
		}
		host, port, err := net.SplitHostPort(n)
		if err != nil {
			if !strings.Contains(err.Error(), "missing port") {
				return nil, fmt.Errorf("zookeeper: node %q: want host:port (-node)", shown)
			}
			host, port = strings.Trim(n, "[]"), "2181"
		}
		if host == "" || port == "" {
			return nil, fmt.Errorf("zookeeper: node %q: want host:port (-node)", shown)
		}
		out = append(out, net.JoinHostPort(host, port))
	}
	return out, nil
}

// sessionTimeout returns the session timeout.
func (c *Config) sessionTimeout() (time.Duration, error) {
	if c.SessionTimeout == "" {
		return DefaultSessionTimeout, nil
	}
	d, err := time.ParseDuration(c.SessionTimeout)
	if err != nil {
		return 0, fmt.Errorf("zookeeper: session_timeout: %w", err)
	}
	if d <= 0 {
		return 0, fmt.Errorf("zookeeper: session_timeout %s is not positive", c.SessionTimeout)
	}
	return d, nil
}

// Validate reports the first problem with the options: a malformed node, a
// user name without a password (or the reverse), or a malformed session
// timeout. It implements [backends.Validator].
func (c *Config) Validate() error {
	if _, err := c.servers(); err != nil {
		return err
	}
	if (c.Username == "") != (c.Password == "") {
		return errors.New("zookeeper: digest auth needs both -username and -password")
	}
	_, err := c.sessionTimeout()
	return err
}

// Open opens the backend; it implements [backends.Config].
func (c *Config) Open(ctx context.Context) (backends.Backend, error) {
	cl, err := New(ctx, *c)
	if err != nil {
		return nil, err
	}
	return cl, nil
}

// Client reads and watches znodes, with one session at a time (see the
// package doc). Its methods are safe for concurrent use.
type Client struct {
	servers []string
	timeout time.Duration
	auth    []zkwire.Auth
	log     *slog.Logger
	done    chan struct{}
	once    sync.Once

	dialing chan struct{} // a token: held while a session is made
	mu      sync.Mutex    // guards the fields below
	conn    *zkwire.Conn  // the session; nil before the first, or after Close
	first   int           // the server to try first
	resume  *zkwire.Session
	lostAt  time.Time // when the connection of resume ended
	zxid    int64     // the highest zxid seen, for the server's check on resume

	rev     atomic.Uint64 // the highest zxid seen; see the package doc
	resyncs atomic.Int64  // watches set again on a new connection, for tests

	watching chan struct{} // a token: held by the Watch call in progress
	state    *watchState   // the watched znodes, kept between calls of Watch
}

// New returns a client of the servers of cfg, after checking cfg (see
// [Config.Validate]). It does not connect: the first call that needs the
// server does, and reports a server that cannot be reached.
func New(ctx context.Context, cfg Config) (*Client, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("zookeeper: open: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	servers, _ := cfg.servers()
	timeout, _ := cfg.sessionTimeout()
	c := &Client{
		servers:  servers,
		timeout:  timeout,
		log:      cfg.Logger,
		done:     make(chan struct{}),
		dialing:  make(chan struct{}, 1),
		watching: make(chan struct{}, 1),
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if cfg.Username != "" {
		c.auth = []zkwire.Auth{{Scheme: "digest", Data: []byte(cfg.Username + ":" + cfg.Password)}}
	}
	return c, nil
}

// session returns the client's connection, making one when it has none
// or its connection ended: it resumes the session of the connection that
// ended while the session can still live, else it starts a new one. It
// tries the servers in turn, from the one after the server that failed.
func (c *Client) session(ctx context.Context) (*zkwire.Conn, error) {
	select {
	case c.dialing <- struct{}{}:
		defer func() { <-c.dialing }()
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.done:
		return nil, backends.ErrClosed
	}
	c.mu.Lock()
	conn := c.conn
	if conn != nil && conn.Err() == nil {
		c.mu.Unlock()
		return conn, nil
	}
	if conn != nil { // it ended: start at the next server
		c.zxid = max(c.zxid, conn.LastZxid())
		c.first = (c.first + 1) % len(c.servers)
		if !errors.Is(conn.Err(), zkwire.ErrSessionExpired) {
			s := conn.Session()
			c.resume, c.lostAt = &s, time.Now()
		}
		c.conn = nil
		c.log.Debug("zookeeper connection ended", "server", conn.Server(), "err", conn.Err())
		_ = conn.Close() // ended already: this waits for its goroutines
	}
	cfg := zkwire.Config{
		Servers:        append(slices.Clone(c.servers[c.first:]), c.servers[:c.first]...),
		SessionTimeout: c.timeout,
		Auth:           c.auth,
		Logger:         c.log,
	}
	if c.resume != nil && time.Since(c.lostAt) < c.timeout {
		cfg.Resume, cfg.LastZxid = c.resume, c.zxid
	}
	c.mu.Unlock()
	conn, err := zkwire.Dial(ctx, cfg)
	if errors.Is(err, zkwire.ErrSessionExpired) && cfg.Resume != nil {
		c.log.Debug("zookeeper session expired", "session", fmt.Sprintf("%#x", cfg.Resume.ID))
		cfg.Resume, cfg.LastZxid = nil, 0
		conn, err = zkwire.Dial(ctx, cfg)
	}
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.isClosed() {
		_ = conn.Close() // Close came first; the session is not wanted
		return nil, backends.ErrClosed
	}
	c.conn, c.resume = conn, nil
	for i, s := range c.servers {
		if s == conn.Server() {
			c.first = i
		}
	}
	return conn, nil
}

// isClosed reports whether Close was called.
func (c *Client) isClosed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// seen raises the revision to the zxids of st and of conn's answers.
func (c *Client) seen(conn *zkwire.Conn, st *zkwire.Stat) {
	r := conn.LastZxid()
	if st != nil {
		r = max(r, st.MaxZxid())
	}
	c.raise(uint64(max(r, 0)))
}

// raise raises the revision to at least r.
func (c *Client) raise(r uint64) uint64 {
	for {
		cur := c.rev.Load()
		if r <= cur {
			return cur
		}
		if c.rev.CompareAndSwap(cur, r) {
			return r
		}
	}
}

// revision returns the current revision, at least 1.
func (c *Client) revision() uint64 { return c.raise(1) }

// fail wraps err, an error of a request on path for op: as
// [backends.ErrClosed] after Close, and with the options to check when the
// server refused to let the session read the znode.
func (c *Client) fail(op, path string, err error) error {
	switch {
	case c.isClosed() || errors.Is(err, backends.ErrClosed) || errors.Is(err, zkwire.ErrClosed):
		return fmt.Errorf("zookeeper: %s: %w", op, backends.ErrClosed)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("zookeeper: %s: %w", op, err)
	case errors.Is(err, zkwire.ErrAuthFailed):
		return fmt.Errorf("zookeeper: %s: the server refused the digest credentials of -username and -password: %w", op, err)
	case errors.Is(err, zkwire.ErrNoAuth) && c.auth != nil:
		return fmt.Errorf("zookeeper: %s: read %q: %w: the digest credentials of -username and -password are not allowed to read it", op, path, err)
	case errors.Is(err, zkwire.ErrNoAuth):
		return fmt.Errorf("zookeeper: %s: read %q: %w: its ACL needs digest credentials: set -username and -password", op, path, err)
	case path == "":
		return fmt.Errorf("zookeeper: %s: %w", op, err)
	}
	return fmt.Errorf("zookeeper: %s: read %q: %w", op, path, err)
}

// Snapshot returns every key under prefixes: the leaves of the walked
// trees, with their data. It implements [backends.Backend].
func (c *Client) Snapshot(ctx context.Context, prefixes []string) (backends.Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return backends.Snapshot{}, fmt.Errorf("zookeeper: snapshot: %w", err)
	}
	if c.isClosed() {
		return backends.Snapshot{}, fmt.Errorf("zookeeper: snapshot: %w", backends.ErrClosed)
	}
	conn, err := c.session(ctx)
	if err != nil {
		return backends.Snapshot{}, c.fail("snapshot", "", err)
	}
	w := newWalk(c, conn, "snapshot")
	if err := w.run(ctx, merge(prefixes)); err != nil {
		return backends.Snapshot{}, err
	}
	return backends.Snapshot{Rev: c.revision(), KVs: w.keys()}, nil
}

// Close ends the session; a Watch in progress returns
// [backends.ErrClosed], as do later calls. It is idempotent.
func (c *Client) Close() error {
	c.once.Do(func() {
		close(c.done)
		c.mu.Lock()
		conn := c.conn
		c.conn = nil
		c.mu.Unlock()
		if conn != nil {
			_ = conn.Close() // closes the session; nothing to report
		}
	})
	return nil
}

var (
	_ backends.Backend   = (*Client)(nil)
	_ backends.Watcher   = (*Client)(nil)
	_ backends.Config    = (*Config)(nil)
	_ backends.Validator = (*Config)(nil)
	_ backends.Describer = (*Config)(nil)
	_ backends.Sampler   = (*Config)(nil)
	_ backends.LogSetter = (*Config)(nil)
)
