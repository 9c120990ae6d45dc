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
// ZooKeeper has no read at one revision across znodes, and the client
// library does not show the transaction id (zxid) of its answers. A
// revision of this backend is the highest zxid the client has seen in the
// stats of the znodes it read (their creation, data and children zxids),
// never less than 1 and never going back: the "highest index seen" of
// package backends, not a point in ZooKeeper's history.
//
// # Watching
//
// ZooKeeper 3.6 added persistent recursive watches (addWatch), which would
// watch a whole prefix with one request. The client used here,
// github.com/go-zookeeper/zk (v1.0.4, the latest), has no addWatch, and it
// gives no hook to send a request of another type: its request function
// and its connection are unexported, and its read loop drops answers to
// requests it did not make. So [Client.Watch] watches as confd does, with
// ZooKeeper's one-shot watches on the znodes it walks: a children watch on
// every znode and on the parent of each prefix, a data watch on every leaf,
// an exists watch on a missing parent. Unlike confd, it re-arms only the
// watch that fired and re-reads only the znode it fired on, so a change
// costs one or two requests, whatever the number of keys, and is returned
// as a delta. The walk that arms the watches is also a fresh snapshot,
// which Watch returns whole on its first call for some prefixes and after
// a session expired.
//
// When the connection drops, Watch returns an error until the client has a
// session again. A session that survived (the client reconnected within the
// session timeout) keeps its watches: the client library sets them again
// with the last zxid it saw, and the server fires those whose znode changed
// meanwhile, so nothing is missed and nothing is read again. A re-read cut
// short by the drop is done by the next call, which also returns what the
// reads before it found. A session that expired lost its watches: Watch
// walks the prefixes again and returns the fresh snapshot.
//
// Each watched znode holds one or two watches on the server, and as many
// small channels in the client library, until they fire.
package zookeeper

import (
	"context"
	_ "embed" // for Sample
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/kvconf/kvconf/backends"
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
	return "ZooKeeper: znodes walked recursively as confd does, watched per znode as deltas"
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

// Client reads and watches znodes. Its methods are safe for concurrent use.
type Client struct {
	conn *zk.Conn
	auth bool // digest credentials were given
	done chan struct{}
	once sync.Once

	rev atomic.Uint64 // the highest zxid seen; see the package doc

	// events is what the client library reported, for Watch.
	evMu   sync.Mutex
	events []zk.Event
	kick   chan struct{} // has a value when events is not empty

	watching chan struct{} // a token: held by the Watch call in progress
	tree     *tree         // the watched znodes, kept between calls of Watch
}

// New connects to the servers of cfg, after checking cfg (see
// [Config.Validate]). Without credentials it does not wait for the
// connection: an unreachable server is reported by the first call that
// needs it. With credentials it adds them to the session, which waits for a
// server; ctx bounds New only.
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
		auth:     cfg.Username != "",
		done:     make(chan struct{}),
		kick:     make(chan struct{}, 1),
		watching: make(chan struct{}, 1),
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	conn, _, err := zk.Connect(servers, timeout,
		zk.WithLogger(logger{log}), zk.WithLogInfo(false), zk.WithEventCallback(c.event))
	if err != nil {
		return nil, fmt.Errorf("zookeeper: open: %w", err)
	}
	c.conn = conn
	if c.auth {
		err := call(ctx, c, func() error {
			return conn.AddAuth("digest", []byte(cfg.Username+":"+cfg.Password))
		})
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("zookeeper: open: digest auth (-username, -password): %w", err)
		}
	}
	return c, nil
}

// call runs f, a request of the client library, which takes no context,
// and returns its error, or ctx's when ctx is done first; f goes on then
// until the library answers it, as it does within the session timeout.
func call(ctx context.Context, c *Client, f func() error) error {
	errc := make(chan error, 1)
	go func() { errc <- f() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-c.done:
		return backends.ErrClosed
	}
}

// event receives the client library's events, from its read loop: it must
// not block. Node events and session states go to Watch; EventNotWatching,
// sent for every watch when a session expires, is left out, since the
// session's state says the same once.
func (c *Client) event(ev zk.Event) {
	if ev.Type == zk.EventNotWatching {
		return
	}
	if ev.Type == zk.EventSession && ev.State != zk.StateExpired &&
		ev.State != zk.StateDisconnected && ev.State != zk.StateHasSession {
		return
	}
	c.evMu.Lock()
	c.events = append(c.events, ev)
	c.evMu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// takeEvents returns the events reported since the last call.
func (c *Client) takeEvents() []zk.Event {
	c.evMu.Lock()
	defer c.evMu.Unlock()
	evs := c.events
	c.events = nil
	return evs
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

// seen raises the revision to the zxids of st.
func (c *Client) seen(st *zk.Stat) {
	if st == nil {
		return
	}
	c.raise(uint64(max(st.Czxid, st.Mzxid, st.Pzxid, 0)))
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
	case c.isClosed() || errors.Is(err, backends.ErrClosed):
		return fmt.Errorf("zookeeper: %s: %w", op, backends.ErrClosed)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("zookeeper: %s: %w", op, err)
	case errors.Is(err, zk.ErrNoAuth) && c.auth:
		return fmt.Errorf("zookeeper: %s: read %q: %w: the digest credentials of -username and -password are not allowed to read it", op, path, err)
	case errors.Is(err, zk.ErrNoAuth):
		return fmt.Errorf("zookeeper: %s: read %q: %w: its ACL needs digest credentials: set -username and -password", op, path, err)
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
	w := newWalk(c, false)
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
		c.conn.Close()
	})
	return nil
}

// logger passes the client library's messages to slog, at debug level,
// with a constant message.
type logger struct{ l *slog.Logger }

func (l logger) Printf(format string, args ...any) {
	l.l.Debug("zookeeper client", "msg", fmt.Sprintf(format, args...))
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
