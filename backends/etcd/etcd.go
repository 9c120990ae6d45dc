// Package etcd is the etcd backend: it reads keys from etcd through the v3
// API, and watches them. It registers as "etcd" and, for confd's name of
// the same backend, "etcdv3".
//
// [Client.Snapshot] reads every prefix at one revision, a page at a time.
// [Client.Watch] keeps one etcd watch open between calls and returns the
// changes of each revision as a delta, or a full snapshot after a
// compaction. Keys are matched by plain string prefix, as by confd; the
// prefix "/" matches every key.
//
// # Nodes
//
// The nodes come from the nodes option (default [DefaultNode]), written as
// host, host:port or scheme://host:port, or from DNS SRV records. The
// srv_record option names the record to look up. The srv_domain option D
// looks up, in this order, the first of these records that has any node:
//
//   - _etcd-client-ssl._tcp.D, only when the scheme is https;
//   - _etcd-client._tcp.D, etcd's own name, that of etcd --discovery-srv
//     and etcdctl --discovery-srv;
//   - _etcd._tcp.D, confd's name (confd looked up _BACKEND._tcp.D).
//
// Nodes found by SRV, and nodes written without a scheme, take the scheme
// option; left empty it is https when a TLS option is set and http
// otherwise. The etcd client uses the credentials of the first node for
// every node, so the nodes may not mix http and https.
package etcd

import (
	"context"
	_ "embed" // for Sample
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/internal/tlsfiles"
)

func init() {
	backends.Register("etcd", factory("etcd"))
	backends.Register("etcdv3", factory("etcdv3"))
}

// factory returns the config factory of the backend registered as name;
// the name only changes the config's sample and description.
func factory(name string) func() backends.Config {
	return func() backends.Config { return &Config{name: name} }
}

// Sample is an annotated example of the etcd backend's configuration, in
// TOML.
//
//go:embed sample.toml
var Sample string

// DefaultNode is the node used when neither nodes nor DNS SRV is given,
// with the scheme of nodes written without one: http://127.0.0.1:2379
// unless the scheme option or a TLS option says https.
const DefaultNode = "127.0.0.1:2379"

// Defaults of [Config.DialTimeout] and [Config.RequestTimeout].
const (
	DefaultDialTimeout    = 5 * time.Second
	DefaultRequestTimeout = 30 * time.Second
)

// keepAliveTime is how long a connection with a watch may stay silent
// before the client checks it with a keepalive probe, so that a watch on a
// connection that died quietly fails over instead of waiting forever. The
// probe's answer is waited for within the dial timeout.
const keepAliveTime = 30 * time.Second

// snapshotTries bounds the attempts of Snapshot when the revision it reads
// at is compacted away between two pages.
const snapshotTries = 5

// Config holds the etcd backend's options, with confd's names.
type Config struct {
	// Nodes lists the etcd client URLs: host, host:port, http://host:port
	// or https://host:port. Empty means [DefaultNode], unless SRVRecord or
	// SRVDomain is set; nodes and DNS SRV do not go together.
	Nodes []string `toml:"nodes"`
	// SRVDomain is a domain whose SRV records give the nodes; the package
	// documentation lists the records looked up.
	SRVDomain string `toml:"srv_domain"`
	// SRVRecord is the SRV record that gives the nodes, such as
	// _etcd-client._tcp.example.com. It wins over SRVDomain.
	SRVRecord string `toml:"srv_record"`
	// Scheme, http or https, is the scheme of nodes found by DNS SRV and
	// of nodes written without one. Empty means https when a TLS option is
	// set, and http otherwise.
	Scheme string `toml:"scheme"`
	// TLS holds client_cert, client_key, client_cakeys and
	// client_insecure.
	tlsfiles.TLS
	// BasicAuth authenticates as Username with Password (etcd's user
	// authentication). Without it, Username and Password are not used.
	BasicAuth bool   `toml:"basic_auth"`
	Username  string `toml:"username"`
	Password  string `toml:"password"`
	// DialTimeout bounds the authentication at [New], in the syntax of
	// [time.ParseDuration]; empty means [DefaultDialTimeout]. It also
	// bounds the answer to a keepalive probe of a watch connection, and
	// how long a read waits for a connection: a read that finds none
	// ready within it fails with an [UnreachableError] that names the
	// endpoints and the cause, such as "connection refused".
	DialTimeout string `toml:"dial_timeout"`
	// RequestTimeout bounds each read request (one page of a snapshot),
	// in the syntax of [time.ParseDuration]; empty means
	// [DefaultRequestTimeout]. Watch waits for changes without limit.
	RequestTimeout string `toml:"request_timeout"`
	// Logger receives the etcd client's messages; nil discards them.
	Logger *slog.Logger `toml:"-"`

	name string // the registered name the config was made for
}

// Sample returns [Sample], the commented sample configuration, with the
// table named after the backend's registered name.
func (c *Config) Sample() string {
	if c.name != "" && c.name != "etcd" {
		return strings.Replace(Sample, "[backends.etcd]\ntype = \"etcd\"", "[backends."+c.name+"]\ntype = \""+c.name+"\"", 1)
	}
	return Sample
}

// Description returns a one-line description of the etcd backend.
func (c *Config) Description() string {
	d := "etcd v3 API: every prefix read at one revision, watched as deltas"
	if c.name != "" && c.name != "etcd" {
		d += " (another name for etcd)"
	}
	return d
}

// durations returns the dial and request timeouts.
func (c *Config) durations() (dial, request time.Duration, err error) {
	parse := func(opt, s string, def time.Duration) (time.Duration, error) {
		if s == "" {
			return def, nil
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("etcd: %s: %w", opt, err)
		}
		if d <= 0 {
			return 0, fmt.Errorf("etcd: %s %s is not positive", opt, s)
		}
		return d, nil
	}
	if dial, err = parse("dial_timeout", c.DialTimeout, DefaultDialTimeout); err != nil {
		return 0, 0, err
	}
	if request, err = parse("request_timeout", c.RequestTimeout, DefaultRequestTimeout); err != nil {
		return 0, 0, err
	}
	return dial, request, nil
}

// SetLogger makes l receive the etcd client's messages; it implements
// [backends.LogSetter].
func (c *Config) SetLogger(l *slog.Logger) { c.Logger = l }

// Validate reports the first problem with the options: a malformed node,
// nodes together with DNS SRV, nodes that mix http and https or use http
// with TLS options, an unknown scheme, a client certificate without its
// key (or the reverse), basic_auth without a user name or password, or a
// malformed timeout. It reads no file and does no lookup.
func (c *Config) Validate() error {
	if c.Scheme != "" && c.Scheme != "http" && c.Scheme != "https" {
		return fmt.Errorf("etcd: scheme %q is not http or https", c.Scheme)
	}
	if err := c.ValidateTLS(); err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	if len(c.Nodes) > 0 && (c.SRVDomain != "" || c.SRVRecord != "") {
		return errors.New("etcd: nodes and DNS SRV (srv_domain, srv_record) both given: use one")
	}
	if c.SRVRecord == "" && c.SRVDomain == "" {
		eps, err := c.nodes()
		if err != nil {
			return err
		}
		if err := c.checkSchemes(eps); err != nil {
			return err
		}
	} else if c.Scheme == "http" && c.UsesTLS() {
		return errors.New("etcd: TLS options set (client_cert, client_key, client_cakeys or client_insecure) but scheme is http")
	}
	if c.BasicAuth && c.Username == "" {
		return errors.New("etcd: basic_auth needs a username")
	}
	if c.BasicAuth && c.Password == "" {
		return errors.New("etcd: basic_auth needs a password")
	}
	_, _, err := c.durations()
	return err
}

// Open opens the etcd backend; it implements [backends.Config].
func (c *Config) Open(ctx context.Context) (backends.Backend, error) {
	cl, err := New(ctx, *c)
	if err != nil {
		return nil, err
	}
	return cl, nil
}

// Client reads and watches keys in etcd. Its methods are safe for
// concurrent use.
//
// Its revisions are etcd's: the revision of the whole store, which grows
// with every change to any key.
type Client struct {
	cli            *clientv3.Client
	link           *link // the connection's dial errors and ready wait
	requestTimeout time.Duration
	stop           context.CancelFunc // cancels the etcd client's context
	done           chan struct{}      // closed by Close

	mu     sync.Mutex
	stream *stream // the watch kept between calls of Watch, or nil
}

// New returns a client for the etcd cluster of cfg, after checking cfg
// (see [Config.Validate]). It looks up the nodes by DNS SRV if asked to,
// reads the TLS files and, with basic_auth, authenticates (within the dial
// timeout), but it does not wait for a connection otherwise: an
// unreachable cluster is reported by the first call that needs it, within
// the dial timeout. After a lost connection the client tries again at
// least every 2 s (gRPC's default backoff grows to 2 minutes). ctx bounds
// New only.
func New(ctx context.Context, cfg Config) (*Client, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("etcd: open: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	dial, request, err := cfg.durations()
	if err != nil {
		return nil, err
	}
	eps, err := cfg.endpoints(ctx, net.DefaultResolver.LookupSRV)
	if err != nil {
		return nil, err
	}
	if err := cfg.checkSchemes(eps); err != nil {
		return nil, err
	}
	tc, err := cfg.TLSConfig()
	if err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	ccfg := clientv3.Config{
		Endpoints:            eps,
		DialTimeout:          dial,
		DialKeepAliveTime:    keepAliveTime,
		DialKeepAliveTimeout: dial,
		TLS:                  tc,
		Logger:               zapLogger(cfg.Logger),
	}
	l := &link{endpoints: eps, wait: dial}
	ccfg.DialOptions = l.dialOptions()
	if cfg.BasicAuth {
		ccfg.Username, ccfg.Password = cfg.Username, cfg.Password
	}
	// The client lives until Close, beyond ctx; ctx only cuts New short.
	base, stop := context.WithCancel(context.Background())
	ccfg.Context = base
	unhook := context.AfterFunc(ctx, stop)
	cli, err := clientv3.New(ccfg)
	if !unhook() {
		if cli != nil {
			_ = cli.Close() // its error is ctx's
		}
		stop()
		return nil, fmt.Errorf("etcd: open: %w", ctx.Err())
	}
	if err != nil {
		stop()
		return nil, fmt.Errorf("etcd: open: %w", err)
	}
	return &Client{cli: cli, link: l, requestTimeout: request, stop: stop, done: make(chan struct{})}, nil
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

// fail wraps err for op, as [backends.ErrClosed] when the client was
// closed meanwhile.
func (c *Client) fail(op string, err error) error {
	if c.isClosed() {
		return fmt.Errorf("etcd: %s: %w", op, backends.ErrClosed)
	}
	return fmt.Errorf("etcd: %s: %w", op, err)
}

// get runs one range request within the request timeout.
func (c *Client) get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, c.requestTimeout)
	defer cancel()
	return c.cli.Get(ctx, key, opts...)
}

// rev returns the current revision of the store, from the header of a
// count-only request on one key: the first of ps, the prefixes the caller
// reads, since a user that may read them may read it.
func (c *Client) rev(ctx context.Context, ps []string) (uint64, error) {
	key := "/"
	if len(ps) > 0 {
		key, _ = span(ps[0])
	}
	resp, err := c.get(ctx, key, clientv3.WithCountOnly())
	if err != nil {
		return 0, err
	}
	return uint64(resp.Header.Revision), nil
}

// Snapshot returns every key under prefixes, read at one revision, as
// [Client.List] does, in a map.
func (c *Client) Snapshot(ctx context.Context, prefixes []string) (backends.Snapshot, error) {
	l, err := c.List(ctx, prefixes)
	if err != nil {
		return backends.Snapshot{}, err
	}
	kvs := make(map[string]string, len(l.KVs))
	for _, kv := range l.KVs {
		kvs[kv.Key] = kv.Value
	}
	return backends.Snapshot{Rev: l.Rev, KVs: kvs}, nil
}

// List returns every key under prefixes, sorted by key, read at one
// revision: the first request takes the current revision and every later
// one asks for it, so that the list never holds half of a transaction.
// Prefixes that another prefix covers are not read twice. Each prefix is
// read a page of [pageSize] keys at a time, within the request timeout
// each. If the revision is compacted before the last page, List starts
// again at a new one (a few times at most). It implements
// [backends.Lister].
func (c *Client) List(ctx context.Context, prefixes []string) (backends.List, error) {
	if err := ctx.Err(); err != nil {
		return backends.List{}, fmt.Errorf("etcd: snapshot: %w", err)
	}
	if c.isClosed() {
		return backends.List{}, fmt.Errorf("etcd: snapshot: %w", backends.ErrClosed)
	}
	ps := merge(prefixes)
	if len(ps) == 0 {
		rev, err := c.rev(ctx, nil)
		if err != nil {
			return backends.List{}, c.fail("snapshot", err)
		}
		return backends.List{Rev: rev}, nil
	}
	for try := 1; ; try++ {
		l, err := c.list(ctx, ps)
		if errors.Is(err, rpctypes.ErrCompacted) && try < snapshotTries {
			continue
		}
		return l, err
	}
}

// quoteAll quotes each prefix and joins them with commas: "/a", "/b".
func quoteAll(ps []string) string {
	q := make([]string, len(ps))
	for i, p := range ps {
		q[i] = strconv.Quote(p)
	}
	return strings.Join(q, ", ")
}

// Close closes the client and its watch; a Watch in progress returns
// [backends.ErrClosed], as do later calls. It is idempotent.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.isClosed() {
		c.mu.Unlock()
		return nil
	}
	close(c.done)
	s := c.stream
	c.stream = nil
	c.mu.Unlock()
	if s != nil {
		s.close()
	}
	err := c.cli.Close()
	c.stop()
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("etcd: close: %w", err)
	}
	return nil
}

var (
	_ backends.Backend   = (*Client)(nil)
	_ backends.Lister    = (*Client)(nil)
	_ backends.Watcher   = (*Client)(nil)
	_ backends.LogSetter = (*Config)(nil)
	_ backends.Config    = (*Config)(nil)
	_ backends.Validator = (*Config)(nil)
	_ backends.Describer = (*Config)(nil)
	_ backends.Sampler   = (*Config)(nil)
)
