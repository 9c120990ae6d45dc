// Package consul is the Consul backend: it reads keys from Consul's KV
// store, and the service catalog, through the HTTP API, and watches them
// with blocking queries. It registers as "consul".
//
// Template keys are Consul keys with a leading "/", as in confd: the
// template key /app/db/host is the Consul key app/db/host. A folder (a
// Consul key that ends in "/", such as app/dir/) shows as /app/dir with its
// value, usually "", as confd shows it, unless a key app/dir exists.
//
// # Service catalog
//
// A prefix that starts with "consul:" is a query of the service catalog,
// served under the keys, and as the JSON values, that package
// [github.com/kvconf/kvconf/backends/consul/catalog] defines: the
// instances of a service, of every health status (/v1/health/service),
// every service of a datacenter (each service's instances plus the list of
// names), the services with their tags (/v1/catalog/services) and the
// nodes (/v1/catalog/nodes). Values are sorted, so that the same catalog
// gives the same bytes. Catalog prefixes are never merged with key/value
// prefixes: "/" covers every key/value key, not the catalog. They take
// part in snapshots and watches as key/value prefixes do, and share their
// revisions: Consul's raft index is the same for both.
//
// # Revisions
//
// Revisions are Consul's raft indexes (X-Consul-Index). A snapshot's
// revision is the highest index the client has seen, so that revisions
// never go backwards from one call to the next whatever the prefixes; it
// falls only when Consul's index does, after a restore or when a dev agent
// restarts, and then [Client.Watch] returns a full snapshot.
//
// # Listings
//
// A key/value prefix is read with one recursive listing, which kvconf
// decodes as it arrives (package
// github.com/kvconf/kvconf/backends/consul/internal/kvlisting), keeping the
// key and the value of each pair only.
// Consul lists keys sorted, so the keys usually come out sorted with no
// sort: [Client.List] hands them over as a list ([backends.Lister]), and
// [Client.Snapshot] as a map.
//
// # Watching
//
// [Client.Watch] keeps a session of blocking queries running between
// calls, at most [maxQueries] of them per set of prefixes whatever their
// number: key/value prefixes are grouped under common string prefixes (a
// trie over the prefixes cut into groups of similar weight), each group
// listed by one blocking query whose listing is split among its prefixes;
// each query keeps its own index, so that a change under one prefix never
// cuts short the queries of the others (the agent keeps a cancelled query,
// and its connection, until its wait ends, which counts against its
// per-client limit). Watch compares the newest listing of each prefix
// with the one it returned last and hands the caller the keys that
// changed, or a full snapshot when it holds no listing at the caller's
// revision. The pairs of a new listing that the last one holds share its
// strings, so that the client and the caller hold one copy of them.
// Queries of one group are at least 100 ms apart, plus up to 25 ms of
// jitter; a failing query is retried with backoff, and Watch returns its
// error meanwhile. An agent's refusal over its connection limit (HTTP
// 429) is logged once, naming limits.http_max_conns_per_client.
//
// # Environment
//
// [New] reads two variables of the Consul CLI: CONSUL_HTTP_ADDR is the
// node when neither the nodes option nor DNS SRV gives one, and
// CONSUL_HTTP_TOKEN is the ACL token when auth_token is empty. When the
// options leave them unset, Consul's API library also reads
// CONSUL_HTTP_TOKEN_FILE, CONSUL_NAMESPACE and CONSUL_PARTITION; it reads
// none of its TLS variables, which the client_* options replace.
package consul

import (
	"context"
	_ "embed" // for Sample
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/backends/consul/internal/kvlisting"
	"github.com/kvconf/kvconf/internal/redact"
	"github.com/kvconf/kvconf/internal/tlsfiles"
)

func init() {
	backends.Register("consul", func() backends.Config { return new(Config) })
}

// Sample is an annotated example of the Consul backend's configuration, in
// TOML.
//
//go:embed sample.toml
var Sample string

// DefaultNode is the node used when neither the nodes option, DNS SRV nor
// CONSUL_HTTP_ADDR gives one.
const DefaultNode = "127.0.0.1:8500"

// DefaultRequestTimeout is the default of [Config.RequestTimeout].
const DefaultRequestTimeout = 30 * time.Second

// Consistency modes of [Config.Consistency].
const (
	ConsistencyDefault    = "default"
	ConsistencyStale      = "stale"
	ConsistencyConsistent = "consistent"
)

// Config holds the Consul backend's options, with confd's names where
// confd has them.
type Config struct {
	// Nodes lists the HTTP addresses of Consul agents: host, host:port,
	// http://host:port or https://host:port. They are tried in order: a
	// request that cannot reach one goes to the next. Empty means
	// CONSUL_HTTP_ADDR, or else [DefaultNode], unless SRVRecord or
	// SRVDomain is set; nodes and DNS SRV do not go together.
	Nodes []string `toml:"nodes"`
	// SRVDomain is a domain whose SRV record _consul._tcp.SRVDomain gives
	// the nodes (confd's lookup).
	SRVDomain string `toml:"srv_domain"`
	// SRVRecord is the SRV record that gives the nodes; it wins over
	// SRVDomain.
	SRVRecord string `toml:"srv_record"`
	// Scheme, http or https, is the scheme of nodes found by DNS SRV and
	// of nodes written without one. Empty means https when a TLS option is
	// set, and http otherwise.
	Scheme string `toml:"scheme"`
	// TLS holds client_cert, client_key, client_cakeys and
	// client_insecure.
	tlsfiles.TLS
	// AuthToken is the ACL token sent with every request. Empty means
	// CONSUL_HTTP_TOKEN.
	AuthToken string `toml:"auth_token"`
	// Datacenter is the datacenter to read from; empty means the agent's.
	Datacenter string `toml:"datacenter"`
	// Consistency is the consistency mode of reads: "default" (or empty),
	// "stale" (any server answers, maybe behind the leader) or
	// "consistent" (the leader checks it still leads first).
	Consistency string `toml:"consistency"`
	// BasicAuth sends Username and Password as HTTP basic authentication,
	// for a proxy in front of Consul. Without it, they are not used.
	BasicAuth bool   `toml:"basic_auth"`
	Username  string `toml:"username"`
	Password  string `toml:"password"`
	// RequestTimeout bounds each request that does not wait for changes,
	// in the syntax of [time.ParseDuration]; empty means
	// [DefaultRequestTimeout]. A blocking query of Watch may take its wait
	// time (1 minute) on top of it.
	RequestTimeout string `toml:"request_timeout"`

	log *slog.Logger // see SetLogger
}

// SetLogger sets the logger of the client that Open returns; it
// implements [backends.LogSetter]. The client logs only what the caller
// cannot see in an error: that the agent refused connections over its
// limit, once.
func (c *Config) SetLogger(l *slog.Logger) { c.log = l }

// Sample returns [Sample], the commented sample configuration.
func (c *Config) Sample() string { return Sample }

// Description returns a one-line description of the Consul backend.
func (c *Config) Description() string {
	return "Consul KV and service catalog over HTTP: prefixes listed, watched by blocking queries as deltas"
}

// requestTimeout returns the request timeout.
func (c *Config) requestTimeout() (time.Duration, error) {
	if c.RequestTimeout == "" {
		return DefaultRequestTimeout, nil
	}
	d, err := time.ParseDuration(c.RequestTimeout)
	if err != nil {
		return 0, fmt.Errorf("consul: request_timeout: %w", err)
	}
	if d <= 0 {
		return 0, fmt.Errorf("consul: request_timeout %s is not positive", c.RequestTimeout)
	}
	return d, nil
}

// Validate reports the first problem with the options: a malformed node,
// nodes together with DNS SRV, http nodes with TLS options, an unknown
// scheme or consistency mode, a client certificate without its key (or the
// reverse), basic_auth without a user name or password, or a malformed
// timeout. It reads no file, no environment variable and does no lookup.
func (c *Config) Validate() error {
	if c.Scheme != "" && c.Scheme != "http" && c.Scheme != "https" {
		return fmt.Errorf("consul: scheme %q is not http or https", c.Scheme)
	}
	switch c.Consistency {
	case "", ConsistencyDefault, ConsistencyStale, ConsistencyConsistent:
	default:
		return fmt.Errorf("consul: consistency %q is not default, stale or consistent", c.Consistency)
	}
	if err := c.ValidateTLS(); err != nil {
		return fmt.Errorf("consul: %w", err)
	}
	if len(c.Nodes) > 0 && (c.SRVDomain != "" || c.SRVRecord != "") {
		return errors.New("consul: nodes and DNS SRV (srv_domain, srv_record) both given: use one")
	}
	if c.SRVRecord == "" && c.SRVDomain == "" {
		if len(c.Nodes) > 0 {
			if _, err := c.nodes(""); err != nil {
				return err
			}
		}
	} else if c.Scheme == "http" && c.UsesTLS() {
		return errors.New("consul: TLS options set (client_cert, client_key, client_cakeys or client_insecure) but scheme is http")
	}
	if c.BasicAuth && c.Username == "" {
		return errors.New("consul: basic_auth needs a username")
	}
	if c.BasicAuth && c.Password == "" {
		return errors.New("consul: basic_auth needs a password")
	}
	_, err := c.requestTimeout()
	return err
}

// Open opens the Consul backend; it implements [backends.Config].
func (c *Config) Open(ctx context.Context) (backends.Backend, error) {
	cl, err := New(ctx, *c)
	if err != nil {
		return nil, err
	}
	return cl, nil
}

// Client reads and watches keys in Consul's KV store and its service
// catalog. Its methods are safe for concurrent use.
type Client struct {
	clients        []*api.Client               // one per node, in order
	configs        map[*api.Client]*api.Config // of each client, as the API library completed it
	decoder        kvlisting.Decoder
	http           *http.Client
	query          api.QueryOptions // template of every query's options
	secrets        []string         // token and password, kept out of errors
	requestTimeout time.Duration

	cur     atomic.Int32  // index in clients of the node to ask first
	highest atomic.Uint64 // the highest index seen since the last reset
	epoch   atomic.Uint64 // count of requests that reached no node

	mu       sync.Mutex
	closed   bool
	calls    map[uint64]context.CancelFunc // requests in progress, cancelled by Close
	nextCall uint64
	// By source name (see [source]): a key/value prefix in template form,
	// "/app/db", or a catalog prefix, "consul:nodes//".
	listings map[string]*listing // the last listing returned
	indexes  map[string]uint64   // its index at its last listing
	sizes    map[string]int      // the keys of its last listing, which weigh its group in a watch (see [groups])
	sessions map[string]*session // the watches running, by key (see [sessionKey])
	running  sync.WaitGroup      // the goroutines of the sessions
	log      *slog.Logger
	// limitOnce logs the first refusal over the agent's connection limit.
	limitOnce sync.Once
	refused   atomic.Uint64 // requests the agent refused over its limit (HTTP 429)
	// By datacenter: the last listing of every service (see
	// [Client.allServices]).
	catalogs map[string]*catalogState
}

// New returns a client for the Consul agents of cfg, after checking cfg
// (see [Config.Validate]). It reads CONSUL_HTTP_ADDR and CONSUL_HTTP_TOKEN
// as the package documentation says, looks up the nodes by DNS SRV if
// asked to and reads the TLS files, but it does not contact Consul: an
// unreachable agent is reported by the first call that needs it. ctx
// bounds New only.
func New(ctx context.Context, cfg Config) (*Client, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("consul: open: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	timeout, err := cfg.requestTimeout()
	if err != nil {
		return nil, err
	}
	var addrs []address
	if cfg.SRVRecord != "" || cfg.SRVDomain != "" {
		addrs, err = cfg.discover(ctx, net.DefaultResolver.LookupSRV)
	} else {
		addrs, err = cfg.nodes(os.Getenv("CONSUL_HTTP_ADDR"))
	}
	if err != nil {
		return nil, err
	}
	tc, err := cfg.TLSConfig()
	if err != nil {
		return nil, fmt.Errorf("consul: %w", err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	tr.MaxIdleConnsPerHost = 64 // one blocking query per prefix
	// Consul is usually the local agent: compressing a 19 MB listing of
	// 100,000 keys doubles the time Consul takes to answer, and costs
	// kvconf the time to inflate it.
	tr.DisableCompression = true
	hc := &http.Client{Transport: tr}

	token := cfg.AuthToken
	if token == "" {
		token = os.Getenv("CONSUL_HTTP_TOKEN")
	}
	if cfg.log == nil {
		cfg.log = slog.New(slog.DiscardHandler)
	}
	c := &Client{
		http:           hc,
		requestTimeout: timeout,
		calls:          map[uint64]context.CancelFunc{},
		listings:       map[string]*listing{},
		indexes:        map[string]uint64{},
		sizes:          map[string]int{},
		sessions:       map[string]*session{},
		configs:        map[*api.Client]*api.Config{},
		log:            cfg.log,
		catalogs:       map[string]*catalogState{},
		secrets:        append(redact.Basic(cfg.Username, cfg.Password), token),
	}
	c.query = api.QueryOptions{
		Datacenter:        cfg.Datacenter,
		Token:             token,
		AllowStale:        cfg.Consistency == ConsistencyStale,
		RequireConsistent: cfg.Consistency == ConsistencyConsistent,
	}
	for _, a := range addrs {
		acfg := &api.Config{
			Address:    a.host,
			Scheme:     a.scheme,
			Datacenter: cfg.Datacenter,
			Token:      token,
			HttpClient: hc,
		}
		if cfg.BasicAuth {
			acfg.HttpAuth = &api.HttpBasicAuth{Username: cfg.Username, Password: cfg.Password}
		}
		cl, err := api.NewClient(acfg)
		if err != nil {
			return nil, fmt.Errorf("consul: node %s: %w", a, err)
		}
		c.clients = append(c.clients, cl)
		c.configs[cl] = acfg
	}
	return c, nil
}

// Close cancels the requests in progress, stops the queries of watches
// and waits for them, and closes idle connections; calls in progress and
// later ones return [backends.ErrClosed]. It is idempotent.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	for _, cancel := range c.calls {
		cancel()
	}
	sessions := c.sessions
	c.sessions = nil
	c.listings = nil
	c.mu.Unlock()
	for _, s := range sessions {
		s.cancel()
		s.mu.Lock()
		close(s.wake) // the calls waiting on it return ErrClosed
		s.wake = make(chan struct{})
		s.mu.Unlock()
	}
	c.running.Wait()
	c.http.CloseIdleConnections()
	return nil
}

// isClosed reports whether Close was called.
func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// begin returns a context for one request: ctx, bounded by timeout and
// cancelled by Close. The caller calls end when the request is over.
func (c *Client) begin(ctx context.Context, timeout time.Duration) (rctx context.Context, end func()) {
	rctx, cancel := context.WithTimeout(ctx, timeout)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		cancel()
		return rctx, func() {}
	}
	id := c.nextCall
	c.nextCall++
	c.calls[id] = cancel
	return rctx, func() {
		c.mu.Lock()
		delete(c.calls, id)
		c.mu.Unlock()
		cancel()
	}
}

// check returns the error of a call starting with ctx: ctx's or
// [backends.ErrClosed].
func (c *Client) check(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("consul: %s: %w", op, err)
	}
	if c.isClosed() {
		return fmt.Errorf("consul: %s: %w", op, backends.ErrClosed)
	}
	return nil
}

// fail wraps err, from an operation op, as ctx's error when ctx is done,
// as [backends.ErrClosed] when the client was closed, and otherwise with a
// hint when Consul refused the ACL token. The token and password are
// masked: an error quotes the answer's body, which a proxy may fill with
// the request's headers.
func (c *Client) fail(ctx context.Context, op string, err error) error {
	if c.isClosed() {
		return fmt.Errorf("consul: %s: %w", op, backends.ErrClosed)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("consul: %s: %w", op, ctx.Err())
	}
	if se, ok := errors.AsType[api.StatusError](err); ok && se.Code == http.StatusForbidden {
		return redact.Error(fmt.Errorf("consul: %s: permission denied: the ACL token (auth_token or CONSUL_HTTP_TOKEN) may not read it: %w", op, err), c.secrets...)
	}
	return redact.Error(fmt.Errorf("consul: %s: %w", op, err), c.secrets...)
}

// errFiltered is wrapped by errors of listings that Consul's ACLs emptied.
var errFiltered = errors.New("every key is hidden by ACLs: the ACL token (auth_token or CONSUL_HTTP_TOKEN) may not read them")

// list lists the Consul prefix p, as a blocking query from index wait
// when wait > 0 (see [fetch]): "/" + each key and its value, in Consul's
// order (see [Client.getListing]).
func (c *Client) list(ctx context.Context, p string, wait uint64) ([]backends.KV, uint64, error) {
	var prev []backends.KV
	c.mu.Lock()
	if l := c.listings[kvSource{p: p}.name()]; l != nil {
		prev = l.kvs
	}
	c.mu.Unlock()
	return c.listFrom(ctx, p, wait, prev)
}

// each calls f with the API client of each node in turn, from the last
// one that answered, until one answers (even with an error status).
func (c *Client) each(ctx context.Context, f func(*api.Client) error) error {
	start := int(c.cur.Load())
	var errs []error
	for i := range c.clients {
		n := (start + i) % len(c.clients)
		err := f(c.clients[n])
		if err == nil {
			c.cur.Store(int32(n))
			return nil
		}
		if _, status := errors.AsType[api.StatusError](err); status || ctx.Err() != nil {
			return err // the node answered, or the caller gave up
		}
		c.epoch.Add(1)
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// seen records idx as seen and returns the highest index seen so far.
func (c *Client) seen(idx uint64) uint64 {
	for {
		h := c.highest.Load()
		if idx <= h || c.highest.CompareAndSwap(h, idx) {
			return max(h, idx)
		}
	}
}

// Snapshot returns every key under prefixes: one listing per prefix, in
// order, after merging prefixes that another covers (key/value prefixes
// first, then catalog prefixes). Its revision is the highest index seen
// before the listings, or the first listing's index if higher: every
// change after it is seen by a watch from it, even one made while the
// other prefixes were listed. Each listing is bounded by the request
// timeout. A listing whose prefix is non-empty but wholly hidden by ACLs
// is an error, as is a catalog query whose every result is.
func (c *Client) Snapshot(ctx context.Context, prefixes []string) (backends.Snapshot, error) {
	rev, ls, err := c.read(ctx, prefixes)
	if err != nil {
		return backends.Snapshot{}, err
	}
	return backends.Snapshot{Rev: rev, KVs: toMap(ls)}, nil
}

// List returns what [Client.Snapshot] does, as a list sorted by key. It
// implements [backends.Lister].
func (c *Client) List(ctx context.Context, prefixes []string) (backends.List, error) {
	rev, ls, err := c.read(ctx, prefixes)
	if err != nil {
		return backends.List{}, err
	}
	return backends.List{Rev: rev, KVs: join(ls)}, nil
}

// read reads prefixes, as [Client.Snapshot] says, and returns the
// revision and the listings.
func (c *Client) read(ctx context.Context, prefixes []string) (uint64, []*listing, error) {
	if err := c.check(ctx, "snapshot"); err != nil {
		return 0, nil, err
	}
	srcs, err := c.sources(prefixes)
	if err != nil {
		return 0, nil, fmt.Errorf("consul: snapshot: %w", err)
	}
	if len(srcs) == 0 {
		rev, err := c.current(ctx, kvSource{c: c})
		if err != nil {
			return 0, nil, c.fail(ctx, "snapshot", err)
		}
		return rev, nil, nil
	}
	return c.snapshot(ctx, srcs)
}

// snapshot reads srcs, a result of [Client.sources] (see
// [Client.Snapshot]), keeps the listings that hold the content at the
// snapshot's revision for [Client.Watch], and returns the revision and the
// listings, in the order of srcs. When a source's index went backwards (a
// reset), it starts again once, from the indexes of the new store.
func (c *Client) snapshot(ctx context.Context, srcs []source) (uint64, []*listing, error) {
	for try := 1; ; try++ {
		h0 := c.highest.Load()
		var rev uint64
		ls := make([]*listing, len(srcs))
		reset := false
		for i, s := range srcs {
			kvs, idx, err := s.read(ctx, 0)
			if err != nil {
				return 0, nil, c.fail(ctx, "snapshot "+s.String(), err)
			}
			reset = c.record(s.name(), idx, len(kvs)) || reset
			if i == 0 {
				rev = max(h0, idx)
			}
			ls[i] = &listing{name: s.name(), index: idx, kvs: kvs}
		}
		if reset && try == 1 {
			continue
		}
		for _, l := range ls {
			if l.index <= rev {
				// Nothing changed under the prefix between rev and its
				// listing: a caller at rev holds l.
				l.rev = rev
				c.keep(l)
			}
		}
		return rev, ls, nil
	}
}

// toMap returns the pairs of ls in a map.
func toMap(ls []*listing) map[string]string {
	n := 0
	for _, l := range ls {
		n += len(l.kvs)
	}
	kvs := make(map[string]string, n)
	for _, l := range ls {
		for _, kv := range l.kvs {
			kvs[kv.Key] = kv.Value
		}
	}
	return kvs
}

// join returns the pairs of ls in a list sorted by key; of pairs with the
// same key, that of the last listing wins, as in [toMap]. The list of a
// single listing is that listing's (lists are read-only, see
// [backends.Lister]); of several, a new one. Key/value
// prefixes, sorted and none covering another, list disjoint keys in the
// order of the prefixes, and catalog keys ("consul:…") sort after them,
// so the listings, each sorted, usually come out sorted once put end to
// end; when they do not (catalog queries whose keys interleave), join
// sorts them.
func join(ls []*listing) []backends.KV {
	if len(ls) == 1 {
		return ls[0].kvs
	}
	n := 0
	for _, l := range ls {
		n += len(l.kvs)
	}
	kvs := make([]backends.KV, 0, n)
	sorted := true
	for _, l := range ls {
		if len(kvs) > 0 && len(l.kvs) > 0 && kvs[len(kvs)-1].Key >= l.kvs[0].Key {
			sorted = false
		}
		kvs = append(kvs, l.kvs...)
	}
	if sorted {
		return kvs
	}
	slices.SortStableFunc(kvs, func(a, b backends.KV) int { return strings.Compare(a.Key, b.Key) })
	out := kvs[:0]
	for i, kv := range kvs {
		if i+1 < len(kvs) && kvs[i+1].Key == kv.Key {
			continue // the next one is of a later listing
		}
		out = append(out, kv)
	}
	return slices.Clip(out)
}

// record notes idx, the index of the source named name (see [source]) at a
// listing just made. If it is lower than at the last listing of the
// source, Consul's index went backwards (a snapshot restore, a dev agent
// restarted, tombstones reaped): record forgets every index and listing,
// as Consul's blocking query rules say, and reports a reset. Key/value
// prefixes and catalog queries share Consul's raft index, so a reset seen
// on one is a reset of all.
//
// size is the number of keys of the listing, or -1 if unknown.
func (c *Client) record(name string, idx uint64, size int) (reset bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	prev, had := c.indexes[name]
	if had && idx < prev {
		clear(c.indexes)
		clear(c.listings)
		c.highest.Store(0)
		reset = true
	}
	c.indexes[name] = idx
	if size >= 0 {
		c.sizes[name] = size
	}
	c.seen(idx)
	return reset
}

// current returns the current index of s (see [source.index]), or the
// highest index seen if higher.
func (c *Client) current(ctx context.Context, s source) (uint64, error) {
	idx, err := s.index(ctx)
	if err != nil {
		return 0, err
	}
	c.record(s.name(), idx, -1)
	return max(c.highest.Load(), idx), nil
}

var (
	_ backends.Backend   = (*Client)(nil)
	_ backends.Lister    = (*Client)(nil)
	_ backends.Watcher   = (*Client)(nil)
	_ backends.Config    = (*Config)(nil)
	_ backends.Validator = (*Config)(nil)
	_ backends.Describer = (*Config)(nil)
	_ backends.Sampler   = (*Config)(nil)
	_ backends.LogSetter = (*Config)(nil)
)
