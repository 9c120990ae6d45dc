// Command kvconf-backend-redis is kvconf's Redis backend, as confd has it:
// an out-of-process plugin (docs/plugins.md) served by package sdk, that
// kvconf finds by its name for -backend redis:
//
//	kvconf -backend redis -node 127.0.0.1:6379/2 -password ... -separator :
//
// It speaks RESP to Redis over TCP (or a Unix socket) with the Go standard
// library only.
//
// # Keys
//
// With the default separator "/", a kvconf key is the Redis key of the same
// name: /app/db/host is the Redis key "/app/db/host", as confd stores it.
// With -separator ":", /app/db/host is the Redis key "app:db:host" (the
// leading slash dropped, each slash a colon), again as confd does. A
// string key is one kvconf key; each field F of a hash key H is the kvconf
// key H/F; keys of other types are skipped. A prefix matches by plain
// string prefix, read with SCAN (MATCH on the prefix, its glob characters
// escaped, followed by "*"), never KEYS; the prefix "/" matches every key.
//
// # Options
//
//   - nodes (-node): host:port[/db] of Redis, or the path of its Unix
//     socket; several are tried in order; the database index is the
//     number after the last slash, as in confd, default 0. Default
//     127.0.0.1:6379.
//   - password (-password), username (-username, Redis 6 ACL users):
//     sent with AUTH.
//   - separator (-separator): what stands for "/" in Redis keys, default
//     "/".
//   - timeout: bound of each connection attempt and command, in the syntax
//     of Go's time.ParseDuration, default 5s.
//   - address and db: the older spelling of a single node and its
//     database.
//
// # Revisions and watching
//
// Redis has no revision, so the plugin keeps a counter, starting at 1, and
// what it last read of every key. Each read compares what it found with
// what it knew and bumps the counter once if anything differs, noting the
// changes (the last 1024 revisions of them are kept). A watch subscribes to
// the keyspace notifications of its prefixes (PSUBSCRIBE
// __keyspace@DB__:PREFIX*) and reads again, each time, only the keys
// notified; it needs notify-keyspace-events with K and A (or K, g, $ and
// h) on the server, and fails with an error saying so when they are off.
// When the subscription breaks (a restart of Redis), the watch fails; the
// next one subscribes again and reads its prefixes in full, so that
// nothing that changed meanwhile is missed.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/backends/plugin/sdk"
)

// keep is how many revisions of changes the plugin keeps for watches.
const keep = 1024

func main() { sdk.Serve(newRedis()) }

// node is one Redis server to connect to.
type node struct {
	network, addr string
	db            int
}

type config struct {
	nodes              []node
	username, password string
	separator          string
	timeout            time.Duration
}

// entry is the changes of one revision.
type entry struct {
	rev     uint64
	changes []backends.Change
}

// redis is the backend.
type redis struct {
	cfgMu sync.Mutex
	cfg   config

	connMu sync.Mutex
	conn   *conn // nil until needed, and after an error
	db     int   // the database of conn's node

	mu      sync.Mutex
	rev     uint64
	byRedis map[string]map[string]string // what each Redis key was read as: kvconf keys and values
	log     []entry                      // the changes of the last revisions, oldest first
	sub     *subscriber                  // nil until a watch, and after it broke
	dirty   map[string]bool              // Redis keys notified and not read again yet
	wake    chan struct{}                // closed (and replaced) when dirty gets a key
}

func newRedis() *redis {
	return &redis{
		cfg:     defaultConfig(),
		rev:     1,
		byRedis: map[string]map[string]string{},
		dirty:   map[string]bool{},
		wake:    make(chan struct{}),
	}
}

func defaultConfig() config {
	return config{nodes: []node{{network: "tcp", addr: "127.0.0.1:6379"}}, separator: "/", timeout: 5 * time.Second}
}

// Description is the line "kvconf plugins" shows.
func (r *redis) Description() string {
	return "Redis, as confd reads it (strings and hashes, -separator, node host:port/db); watch by keyspace notifications"
}

// Options declares the options, by key.
func (r *redis) Options() []sdk.Option {
	return []sdk.Option{
		{Key: "nodes", Usage: "host:port[/db] or Unix socket path of Redis, tried in order (default 127.0.0.1:6379)"},
		{Key: "password", Usage: "password sent with AUTH"},
		{Key: "username", Usage: "ACL user name sent with AUTH (Redis 6 and later)"},
		{Key: "separator", Usage: "what stands for / in Redis keys (default /)"},
		{Key: "timeout", Usage: "bound of each connection attempt and command (default 5s)"},
		{Key: "address", Usage: "host:port of Redis (the older spelling of nodes)"},
		{Key: "db", Usage: "database index (the older spelling of nodes' /db)"},
	}
}

// Configure takes the options.
func (r *redis) Configure(_ context.Context, opts map[string]string) error {
	cfg := defaultConfig()
	var address, db string
	for k, v := range opts {
		var err error
		switch k {
		case "nodes":
			cfg.nodes = nil
			for _, s := range strings.Split(v, ",") {
				if s = strings.TrimSpace(s); s != "" {
					cfg.nodes = append(cfg.nodes, parseNode(s))
				}
			}
			if len(cfg.nodes) == 0 {
				err = errors.New("no node")
			}
		case "address":
			address = v
		case "db":
			db = v
		case "username":
			cfg.username = v
		case "password":
			cfg.password = v
		case "separator":
			if v != "" {
				cfg.separator = v
			}
		case "timeout":
			cfg.timeout, err = time.ParseDuration(v)
			if err == nil && cfg.timeout <= 0 {
				err = fmt.Errorf("%s is not positive", v)
			}
		default:
			err = errors.New("unknown option (known: nodes, password, username, separator, timeout, address, db)")
		}
		if err != nil {
			return fmt.Errorf("option %s: %w", k, err)
		}
	}
	if address != "" {
		cfg.nodes = []node{parseNode(address)}
	}
	if db != "" {
		n, err := strconv.Atoi(db)
		if err != nil || n < 0 {
			return fmt.Errorf("option db: %q is not a database index", db)
		}
		for i := range cfg.nodes {
			cfg.nodes[i].db = n
		}
	}
	r.cfgMu.Lock()
	r.cfg = cfg
	r.cfgMu.Unlock()
	return nil
}

// parseNode parses host:port[/db] or a Unix socket path[/db].
func parseNode(s string) node {
	n := node{network: "tcp", addr: s}
	if i := strings.LastIndexByte(s, '/'); i > 0 {
		if db, err := strconv.Atoi(s[i+1:]); err == nil && db >= 0 {
			n.addr, n.db = s[:i], db
		}
	}
	if strings.HasPrefix(n.addr, "/") || strings.HasPrefix(n.addr, ".") {
		n.network = "unix"
	} else if fi, err := os.Stat(n.addr); err == nil && fi.Mode()&os.ModeSocket != 0 {
		n.network = "unix"
	}
	return n
}

func (r *redis) config() config {
	r.cfgMu.Lock()
	defer r.cfgMu.Unlock()
	return r.cfg
}

// Close closes the connections.
func (r *redis) Close() error {
	r.connMu.Lock()
	if r.conn != nil {
		r.conn.close()
		r.conn = nil
	}
	r.connMu.Unlock()
	r.mu.Lock()
	s := r.sub
	r.sub = nil
	r.mu.Unlock()
	if s != nil {
		s.stop()
	}
	return nil
}

// connect dials the nodes in order and returns the first connection.
func connect(ctx context.Context, cfg config) (*conn, node, error) {
	var errs []error
	for _, n := range cfg.nodes {
		c, err := dial(ctx, cfg, n)
		if err == nil {
			return c, n, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, node{}, errors.Join(errs...)
}

// command runs f on the command connection, dialling it first if needed;
// a failure drops the connection. A connection kept from before that
// fails other than with an error reply (Redis restarted meanwhile, say)
// is replaced by a new one, once, and f runs again.
func (r *redis) command(ctx context.Context, f func(c *conn) error) error {
	r.connMu.Lock()
	defer r.connMu.Unlock()
	for attempt := 0; ; attempt++ {
		reused := r.conn != nil
		if !reused {
			c, n, err := connect(ctx, r.config())
			if err != nil {
				return err
			}
			r.conn, r.db = c, n.db
		}
		c := r.conn
		stop := context.AfterFunc(ctx, func() { _ = c.nc.SetDeadline(time.Now()) })
		err := f(c)
		stop()
		if err == nil {
			return nil
		}
		c.close()
		r.conn = nil
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var re redisError
		if !reused || attempt > 0 || errors.As(err, &re) {
			return noAuth(c.nc.RemoteAddr().String(), err)
		}
	}
}

// Snapshot reads every key under prefixes.
func (r *redis) Snapshot(ctx context.Context, prefixes []string) (backends.Snapshot, error) {
	rev, kvs, err := r.readAll(ctx, prefixes)
	if err != nil {
		return backends.Snapshot{}, err
	}
	return backends.Snapshot{Rev: rev, KVs: kvs}, nil
}

// redisKey is the Redis key of a kvconf key (or prefix).
func redisKey(sep, key string) string {
	if sep == "/" {
		return key
	}
	return strings.ReplaceAll(strings.TrimPrefix(key, "/"), "/", sep)
}

// kvKey is the kvconf key of a Redis key.
func kvKey(sep, key string) string {
	if sep != "/" {
		key = strings.ReplaceAll(key, sep, "/")
	}
	if !strings.HasPrefix(key, "/") {
		key = "/" + key
	}
	return key
}

// glob returns the MATCH pattern of the Redis keys under prefix.
func glob(sep, prefix string) string {
	if prefix == "/" || prefix == "" {
		return "*"
	}
	var b strings.Builder
	for _, c := range redisKey(sep, prefix) {
		if strings.ContainsRune(`*?[]\`, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String() + "*"
}

// matches reports whether the Redis key rk is under one of prefixes.
func matches(sep, rk string, prefixes []string) bool {
	for _, p := range prefixes {
		if p == "/" || p == "" || strings.HasPrefix(rk, redisKey(sep, p)) {
			return true
		}
	}
	return false
}

// readAll reads every key under prefixes, notes what changed since the
// last read, and returns the revision and the keys.
func (r *redis) readAll(ctx context.Context, prefixes []string) (uint64, map[string]string, error) {
	sep := r.config().separator
	var found map[string]map[string]string
	err := r.command(ctx, func(c *conn) error {
		var err error
		found, err = scanAll(ctx, c, sep, prefixes)
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var chs []backends.Change
	for rk, kvs := range found {
		chs = append(chs, backends.Diff(r.byRedis[rk], kvs)...)
		r.byRedis[rk] = kvs
	}
	for rk, old := range r.byRedis {
		if _, ok := found[rk]; !ok && matches(sep, rk, prefixes) {
			chs = append(chs, backends.Diff(old, nil)...)
			delete(r.byRedis, rk)
		}
	}
	r.note(chs)
	kvs := map[string]string{}
	for _, m := range found {
		for k, v := range m {
			kvs[k] = v
		}
	}
	return r.rev, kvs, nil
}

// note records chs as a new revision, if there are any; mu is held.
func (r *redis) note(chs []backends.Change) {
	if len(chs) == 0 {
		return
	}
	r.rev++
	r.log = append(r.log, entry{rev: r.rev, changes: chs})
	if len(r.log) > keep {
		r.log = append([]entry(nil), r.log[len(r.log)-keep:]...)
	}
}

// since returns the changes under prefixes after revision after, or false
// when they are no longer kept; mu is held.
func (r *redis) since(after uint64, prefixes []string) ([]backends.Change, bool) {
	if after > r.rev || (after < r.rev && (len(r.log) == 0 || after+1 < r.log[0].rev)) {
		return nil, false
	}
	var chs []backends.Change
	for _, e := range r.log {
		if e.rev <= after {
			continue
		}
		for _, c := range e.changes {
			if under(c.Key, prefixes) {
				chs = append(chs, c)
			}
		}
	}
	return chs, true
}

// under reports whether key is under one of prefixes; "/" holds every key.
func under(key string, prefixes []string) bool {
	for _, p := range prefixes {
		if p == "/" || strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// scanAll scans the Redis keys under prefixes and reads them.
func scanAll(ctx context.Context, c *conn, sep string, prefixes []string) (map[string]map[string]string, error) {
	seen := map[string]bool{}
	var keys []string
	for _, p := range prefixes {
		cursor := "0"
		for {
			v, err := c.do(ctx, "SCAN", cursor, "MATCH", glob(sep, p), "COUNT", "1000")
			if err != nil {
				return nil, fmt.Errorf("redis: scan %q: %w", p, err)
			}
			a, ok := v.([]any)
			if !ok || len(a) != 2 {
				return nil, fmt.Errorf("redis: scan %q: unexpected reply", p)
			}
			batch, _ := a[1].([]any)
			for _, k := range batch {
				if s, ok := k.(string); ok && !seen[s] {
					seen[s] = true
					keys = append(keys, s)
				}
			}
			if cursor, _ = a[0].(string); cursor == "0" || cursor == "" {
				break
			}
		}
	}
	return readKeys(ctx, c, sep, keys)
}

// readKeys reads the Redis keys: strings with MGET, 512 at a time, then
// the others by their type (hashes with HGETALL; other types are left
// out). A key that does not exist maps to an empty map.
func readKeys(ctx context.Context, c *conn, sep string, keys []string) (map[string]map[string]string, error) {
	out := make(map[string]map[string]string, len(keys))
	var other []string
	for len(keys) > 0 {
		batch := keys[:min(len(keys), 512)]
		keys = keys[len(batch):]
		v, err := c.do(ctx, append([]string{"MGET"}, batch...)...)
		if err != nil {
			return nil, fmt.Errorf("redis: mget: %w", err)
		}
		vals, ok := v.([]any)
		if !ok || len(vals) != len(batch) {
			return nil, errors.New("redis: mget: unexpected reply")
		}
		for i, val := range vals {
			if s, ok := val.(string); ok {
				out[batch[i]] = map[string]string{kvKey(sep, batch[i]): s}
			} else {
				other = append(other, batch[i]) // not a string, or gone
			}
		}
	}
	for _, k := range other {
		t, err := c.do(ctx, "TYPE", k)
		if err != nil {
			return nil, fmt.Errorf("redis: type %q: %w", k, err)
		}
		if t != "hash" {
			if t != "none" {
				out[k] = map[string]string{}
			}
			continue
		}
		v, err := c.do(ctx, "HGETALL", k)
		if err != nil {
			return nil, fmt.Errorf("redis: hgetall %q: %w", k, err)
		}
		a, _ := v.([]any)
		m := map[string]string{}
		for i := 0; i+1 < len(a); i += 2 {
			f, _ := a[i].(string)
			val, _ := a[i+1].(string)
			m[kvKey(sep, k+"/"+f)] = val
		}
		out[k] = m
	}
	return out, nil
}

var (
	_ sdk.Backend        = (*redis)(nil)
	_ sdk.Optioner       = (*redis)(nil)
	_ backends.Watcher   = (*redis)(nil)
	_ backends.Describer = (*redis)(nil)
)
