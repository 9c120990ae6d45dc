// Package metadata is the metadata backend: it reads keys from a JSON
// document served over HTTP, such as Rancher's metadata service
// (rancher-metadata), and follows its changes. It registers as "metadata"
// and, for confd's name of the same backend, "rancher".
//
// # Keys
//
// The document is flattened into keys as confd's rancher backend does
// ([Client.Snapshot] gives the rules): {"self": {"service": {"name": "web"}}}
// is the key /self/service/name = "web", and the items of an array are
// numbered, or named after their "name" member.
//
// # Requests
//
// Only the sub-trees that the prefixes ask for are requested, as
// rancher-metadata serves them: the keys under /self/service come from
// GET <base>/self (see [Client.Snapshot] for why the parent). A server that
// answers 404 for a sub-path that its whole document holds (a plain file
// server) is read from the root instead, for that path, from then on.
// Every request asks for Accept: application/json and carries the headers
// of [Config.Headers], whose values never appear in errors or logs.
//
// # Watching
//
// [Client.Watch] waits for a change in one of three ways, found out from
// the server or set by [Config.Mode]:
//
//   - longpoll: rancher-metadata's GET <base>/version?wait=true&value=V&maxWait=S,
//     which answers when the version of the document is no longer V (or
//     after S seconds with V);
//   - conditional: a GET of each sub-tree every poll interval with
//     If-None-Match (or If-Modified-Since) from the server's last ETag (or
//     Last-Modified), which costs a 304 when nothing changed;
//   - poll: a plain GET of each sub-tree every poll interval.
//
// The default, auto, takes longpoll when GET <base>/version answers a JSON
// string or number, and conditional otherwise. Whatever the way, the
// sub-trees are read again and compared with what the caller has: Watch
// returns only the keys that changed under its prefixes, and keeps waiting
// when none did.
package metadata

import (
	"context"
	_ "embed" // for Sample
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/internal/redact"
	"github.com/kvconf/kvconf/internal/tlsfiles"
)

func init() {
	backends.Register("metadata", factory("metadata"))
	backends.Register("rancher", factory("rancher"))
}

// factory returns the config factory of the backend registered as name.
// The name changes the sample, the description and the default node: see
// [DefaultNode] and [RancherNode].
func factory(name string) func() backends.Config {
	return func() backends.Config { return &Config{name: name} }
}

// Sample is an annotated example of the metadata backend's configuration,
// in TOML.
//
//go:embed sample.toml
var Sample string

// DefaultNode is the base URL of the metadata backend when no node is
// given: the latest API version of rancher-metadata, so that keys start
// with /self, /stacks, /services...
const DefaultNode = "http://rancher-metadata/latest"

// RancherNode is the base URL of the backend registered as "rancher" when
// no node is given: confd's, without an API version, so that confd setups
// that put the version in the prefix (-prefix /latest, or /2015-12-19)
// read the same keys. Such a base has no /version: Watch then polls.
const RancherNode = "http://rancher-metadata"

// Defaults of the durations of [Config].
const (
	DefaultRequestTimeout = 10 * time.Second
	DefaultPollInterval   = 5 * time.Second
	DefaultMaxWait        = 60 * time.Second
)

// Watch modes, the values of [Config.Mode].
const (
	ModeAuto        = "auto"
	ModeLongPoll    = "longpoll"
	ModeConditional = "conditional"
	ModePoll        = "poll"
)

// Config holds the metadata backend's options. Their TOML names are the
// keys of kvconf's configuration file, hence the metadata_ prefix of those
// that only this backend takes.
type Config struct {
	// Nodes holds the base URL, http(s)://host[:port][/path]; a bare
	// host[:port] gets http://, or https:// when a TLS option is set.
	// Empty means [DefaultNode] ([RancherNode] for "rancher"). One node
	// at most.
	Nodes []string `toml:"nodes"`
	// Headers are extra request headers, each "Name: value", such as
	// "Authorization: Bearer …". A name given twice sends both values;
	// Host sets the request's host; Accept replaces application/json.
	// The values are secrets to kvconf: never logged nor put in errors.
	Headers []string `toml:"headers"`
	// TLS holds client_cert, client_key, client_cakeys and
	// client_insecure.
	tlsfiles.TLS
	// RequestTimeout bounds each request, body included, in the syntax
	// of [time.ParseDuration]; empty means [DefaultRequestTimeout]. A long
	// poll gets MaxWait more.
	RequestTimeout string `toml:"request_timeout"`
	// Mode is how Watch waits for changes: "auto" (or empty), "longpoll",
	// "conditional" or "poll"; see the package documentation. With
	// "longpoll", a server without /version is an error.
	Mode string `toml:"metadata_mode"`
	// PollInterval is the time between two reads of the conditional and
	// poll modes; empty means [DefaultPollInterval]. kvconf's -interval
	// is another thing: the time between two full reconciliations.
	PollInterval string `toml:"metadata_poll_interval"`
	// MaxWait is the longest a long poll waits on the server, in whole
	// seconds (rancher-metadata takes up to 2m); empty means
	// [DefaultMaxWait].
	MaxWait string `toml:"metadata_max_wait"`

	name string // the registered name the config was made for
}

// Sample returns [Sample], the commented sample configuration, with the
// table named after the backend's registered name.
func (c *Config) Sample() string {
	if c.name == "rancher" {
		s := strings.Replace(Sample, "[backends.metadata]\ntype = \"metadata\"", "[backends.rancher]\ntype = \"rancher\"", 1)
		return strings.Replace(s, `nodes = ["`+DefaultNode+`"]`, `nodes = ["`+RancherNode+`"]`, 1)
	}
	return Sample
}

// Description returns a one-line description of the metadata backend.
func (c *Config) Description() string {
	d := "JSON metadata over HTTP (rancher-metadata): sub-trees flattened confd-style, watched by long poll or conditional GET"
	if c.name == "rancher" {
		d += " (confd's name; default node " + RancherNode + ")"
	}
	return d
}

// settings are the checked options of a Config.
type settings struct {
	base          *url.URL
	header        http.Header
	timeout       time.Duration
	pollInterval  time.Duration
	maxWait       time.Duration
	mode          string
	tlsConfigured bool
}

// Validate reports the first problem with the options: more than one
// node, a malformed node or a node with a query, a TLS option with an
// http node, a client certificate without its key (or the reverse), a
// malformed header, an unknown mode or a malformed duration. It reads no
// file. Errors about a header name it, never its value.
func (c *Config) Validate() error {
	_, err := c.settings()
	return err
}

func (c *Config) settings() (settings, error) {
	s := settings{tlsConfigured: c.UsesTLS()}
	if err := c.ValidateTLS(); err != nil {
		return s, fmt.Errorf("metadata: %w", err)
	}
	var err error
	if s.base, err = c.baseURL(); err != nil {
		return s, err
	}
	if s.header, err = parseHeaders(c.Headers); err != nil {
		return s, err
	}
	switch c.Mode {
	case "", ModeAuto:
		s.mode = ModeAuto
	case ModeLongPoll, ModeConditional, ModePoll:
		s.mode = c.Mode
	default:
		return s, fmt.Errorf("metadata: metadata_mode %q is not auto, longpoll, conditional or poll", c.Mode)
	}
	if s.timeout, err = duration("request_timeout", c.RequestTimeout, DefaultRequestTimeout); err != nil {
		return s, err
	}
	if s.pollInterval, err = duration("metadata_poll_interval", c.PollInterval, DefaultPollInterval); err != nil {
		return s, err
	}
	if s.maxWait, err = duration("metadata_max_wait", c.MaxWait, DefaultMaxWait); err != nil {
		return s, err
	}
	if s.maxWait%time.Second != 0 {
		return s, fmt.Errorf("metadata: metadata_max_wait %s is not a whole number of seconds", c.MaxWait)
	}
	return s, nil
}

// baseURL returns the base URL, without a trailing slash.
func (c *Config) baseURL() (*url.URL, error) {
	if len(c.Nodes) > 1 {
		return nil, fmt.Errorf("metadata: %d nodes given, the backend takes one base URL", len(c.Nodes))
	}
	node := DefaultNode
	if c.name == "rancher" {
		node = RancherNode
	}
	if len(c.Nodes) == 1 {
		node = c.Nodes[0]
	}
	if node == "" {
		return nil, errors.New("metadata: empty node")
	}
	if !strings.Contains(node, "://") {
		scheme := "http://"
		if c.UsesTLS() {
			scheme = "https://"
		}
		node = scheme + node
	}
	u, err := url.Parse(node)
	if err != nil {
		// url.Error quotes the whole URL, password included.
		return nil, fmt.Errorf("metadata: node %s: %w", redact.URL(node), redact.Error(err, redact.Secrets(node)...))
	}
	// Errors show u.Redacted(): a password in the URL stays out of them.
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("metadata: node %s: scheme is not http or https", u.Redacted())
	case u.Host == "":
		return nil, fmt.Errorf("metadata: node %s: no host", u.Redacted())
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return nil, fmt.Errorf("metadata: node %s: a base URL takes no query or fragment", u.Redacted())
	case u.Scheme == "http" && c.UsesTLS():
		return nil, fmt.Errorf("metadata: node %s: TLS options set (client_cert, client_key, client_cakeys or client_insecure) but the node uses http", u.Redacted())
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// parseHeaders parses "Name: value" lines. Errors name the header, never
// its value.
func parseHeaders(lines []string) (http.Header, error) {
	h := http.Header{}
	for i, line := range lines {
		name, value, ok := strings.Cut(line, ":")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		switch {
		case !ok:
			return nil, fmt.Errorf("metadata: headers[%d]: not \"Name: value\"", i)
		case !httpguts.ValidHeaderFieldName(name):
			// Not quoted: a malformed line may hold the value.
			return nil, fmt.Errorf("metadata: headers[%d]: invalid header name", i)
		case !httpguts.ValidHeaderFieldValue(value):
			return nil, fmt.Errorf("metadata: headers[%d]: header %s: invalid value", i, name)
		}
		h.Add(name, value)
	}
	return h, nil
}

// duration parses the option opt, def when empty.
func duration(opt, s string, def time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("metadata: %s: %w", opt, err)
	}
	if d <= 0 {
		return 0, fmt.Errorf("metadata: %s %s is not positive", opt, s)
	}
	return d, nil
}

// Open opens the metadata backend; it implements [backends.Config].
func (c *Config) Open(ctx context.Context) (backends.Backend, error) {
	cl, err := New(ctx, *c)
	if err != nil {
		return nil, err
	}
	return cl, nil
}

// Client reads and watches a metadata document. Its methods are safe for
// concurrent use; the document is read by one call at a time, while any
// number of Watch calls wait.
//
// Its revision is a counter of its own: it starts at 1 with the first
// read and grows by one each time a read finds a sub-tree different from
// what the previous read of that sub-tree found. Two snapshots with the
// same revision therefore hold the same content, and the revision does not
// move when the server's version changes with no change under the
// requested sub-trees, nor when a read fails. A new Client starts again
// at 1.
type Client struct {
	settings
	hc  *http.Client
	tr  *http.Transport
	sem chan struct{} // held by the read under way

	mu       sync.Mutex
	closed   bool
	calls    map[uint64]context.CancelCauseFunc // the calls under way, cancelled by Close
	nextCall uint64
	rev      uint64
	trees    map[string]map[string]string // the keys of each sub-tree, as last read
	answers  map[string]*answer           // the last answer to a GET of each path ("" is the root)
	viaRoot  map[string]bool              // sub-trees read from the root, the server lacking them
	version  string                       // the server's version at the last read, "" if none
	versions int                          // 1: the server has a version; -1: it has not; 0: unknown
	// versionAt is the path of the server's version: "/version", or
	// "/<api>/version" when the API version is part of the prefixes (see
	// [apiVersion]).
	versionAt string
}

// answer is a server's answer to the GET of a path, kept for conditional
// requests.
type answer struct {
	kvs          map[string]string
	etag         string
	lastModified string
}

// New returns a client for the server of cfg, after checking cfg (see
// [Config.Validate]). It reads the TLS files but sends no request: an
// unreachable server is reported by the first call that needs it. ctx
// bounds New only.
func New(ctx context.Context, cfg Config) (*Client, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("metadata: open: %w", err)
	}
	s, err := cfg.settings()
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if s.tlsConfigured {
		if tr.TLSClientConfig, err = cfg.TLSConfig(); err != nil {
			return nil, fmt.Errorf("metadata: %w", err)
		}
	}
	c := &Client{
		settings: s,
		tr:       tr,
		sem:      make(chan struct{}, 1),
		calls:    map[uint64]context.CancelCauseFunc{},
		trees:    map[string]map[string]string{},
		answers:  map[string]*answer{},
		viaRoot:  map[string]bool{},

		versionAt: "/version",
	}
	c.hc = &http.Client{Transport: tr, CheckRedirect: sameOrigin}
	return c, nil
}

// sameOrigin follows a redirect only to the same scheme, host and port:
// the extra headers may hold credentials, which Go's client would send on
// to another host (it only strips its own Authorization and Cookie).
func sameOrigin(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	if req.URL.Scheme != via[0].URL.Scheme || req.URL.Host != via[0].URL.Host {
		return http.ErrUseLastResponse
	}
	return nil
}

// begin starts a call: it returns a context that Close cancels, and the
// function that ends the call.
func (c *Client) begin(ctx context.Context, op string) (context.Context, func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("metadata: %s: %w", op, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, nil, fmt.Errorf("metadata: %s: %w", op, backends.ErrClosed)
	}
	cctx, cancel := context.WithCancelCause(ctx)
	c.nextCall++
	id := c.nextCall
	c.calls[id] = cancel
	return cctx, func() {
		c.mu.Lock()
		delete(c.calls, id)
		c.mu.Unlock()
		cancel(nil)
	}, nil
}

// fail returns err, or [backends.ErrClosed] for op when Close cut the call
// of ctx short.
func fail(ctx context.Context, op string, err error) error {
	if errors.Is(context.Cause(ctx), backends.ErrClosed) {
		return fmt.Errorf("metadata: %s: %w", op, backends.ErrClosed)
	}
	return err
}

// Snapshot returns every key under prefixes, from one GET per sub-tree:
// the path of a prefix up to its last "/", since a prefix matches keys by
// plain string prefix ("/self/serv" matches /self/service/name and
// /self/servers/0), and without the sub-trees that another one holds.
// End a prefix with "/" to read its own sub-tree only. When the server has
// a version (/version) and several sub-trees are read, Snapshot reads its
// version before and after, and starts again (twice at most) if it moved,
// so that every sub-tree comes from one version.
//
// The document, or sub-tree, is flattened as by confd's rancher backend:
//
//   - an object member m under key k is the key k+"/"+m, the name taken
//     as it is ("/" in it nests, "" gives k+"/");
//   - an array item is at k+"/"+i, i its index from 0, or at k+"/"+name
//     when the item is an object whose member "name" is a non-empty
//     string; items with the same name merge, the later one winning;
//   - a string is kept as it is, a boolean is "true" or "false", null is
//     "null", and a number keeps its JSON text;
//   - an empty object or array gives no key, and a document that is a
//     bare string, number, boolean or null is the key "/".
//
// Confd departs from these in three places, where it failed or lost
// data: it panicked on an item whose "name" was not a string, where kvconf
// numbers it (as it does an item named ""); it wrote numbers through a
// float64 ('f' format: 1e21 was "1000000000000000000000", and integers
// above 2^53 were rounded); and with the prefix "/" it gave keys that
// start with "//".
//
// A non-2xx answer (but a 404 for a sub-path, see the package
// documentation) or a body that is not one JSON value is an error naming
// the URL and the status; the keys read before are kept for the next call.
func (c *Client) Snapshot(ctx context.Context, prefixes []string) (backends.Snapshot, error) {
	ctx, end, err := c.begin(ctx, "snapshot")
	if err != nil {
		return backends.Snapshot{}, err
	}
	defer end()
	s, err := c.snapshot(ctx, prefixes)
	if err != nil {
		return backends.Snapshot{}, fail(ctx, "snapshot", err)
	}
	return s, nil
}

// snapshot reads the sub-trees of prefixes and returns their keys.
func (c *Client) snapshot(ctx context.Context, prefixes []string) (backends.Snapshot, error) {
	ds := dirs(prefixes)
	if err := c.read(ctx, ds); err != nil {
		return backends.Snapshot{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	kvs, _ := c.assemble(ds, prefixes)
	return backends.Snapshot{Rev: c.rev, KVs: kvs}, nil
}

// assemble returns the keys under prefixes of the sub-trees ds, as last
// read, and whether every one of them was read. c.mu is held.
func (c *Client) assemble(ds, prefixes []string) (map[string]string, bool) {
	kvs := map[string]string{}
	for _, d := range ds {
		t, ok := c.trees[d]
		if !ok {
			return nil, false
		}
		for k, v := range t {
			if under(k, prefixes) {
				kvs[k] = v
			}
		}
	}
	return kvs, true
}

// readTries bounds the reads of Snapshot when the server's version moves
// during one.
const readTries = 3

// read reads the sub-trees ds, one read of the client at a time, and
// records them.
func (c *Client) read(ctx context.Context, ds []string) error {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("metadata: read: %w", ctx.Err())
	}
	defer func() { <-c.sem }()
	for try := 1; ; try++ {
		version, trees, err := c.fetch(ctx, ds)
		if err != nil {
			c.mu.Lock()
			c.versions = 0 // find out again: the server may have changed
			c.mu.Unlock()
			return err
		}
		if version != "" && len(trees) > 1 && try < readTries {
			after, ok, err := c.getVersion(ctx, "")
			if err != nil {
				return err
			}
			if ok && after != version {
				continue
			}
		}
		c.record(version, trees)
		return nil
	}
}

// record stores the sub-trees read at the server's version, and moves the
// revision if one of them changed.
func (c *Client) record(version string, trees map[string]map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	changed := false
	for d, t := range trees {
		if old, ok := c.trees[d]; ok && !maps.Equal(old, t) {
			changed = true
		}
		c.trees[d] = t
	}
	if changed || c.rev == 0 {
		c.rev++
	}
	c.version = version
}

// fetch reads the server's version, when it has one, and the sub-trees ds.
func (c *Client) fetch(ctx context.Context, ds []string) (string, map[string]map[string]string, error) {
	version, err := c.detect(ctx, ds)
	if err != nil {
		return "", nil, err
	}
	trees := make(map[string]map[string]string, len(ds))
	var fromRoot []string // sub-trees to take from the root
	for _, d := range ds {
		c.mu.Lock()
		via := c.viaRoot[d]
		c.mu.Unlock()
		if via || d == "" {
			fromRoot = append(fromRoot, d)
			continue
		}
		kvs, err := c.get(ctx, d)
		if errors.Is(err, errNotFound) {
			fromRoot = append(fromRoot, d)
			continue
		}
		if err != nil {
			return "", nil, err
		}
		trees[d] = kvs
	}
	if len(fromRoot) == 0 {
		return version, trees, nil
	}
	root, err := c.get(ctx, "")
	if err != nil {
		return "", nil, err
	}
	for _, d := range fromRoot {
		if d == "" {
			trees[d] = root
			continue
		}
		t := map[string]string{}
		for k, v := range root {
			if inside(k, d) {
				t[k] = v
			}
		}
		if len(t) > 0 {
			// The server answered 404 for a sub-tree its document has:
			// it does not serve sub-trees, at least not this one.
			c.mu.Lock()
			c.viaRoot[d] = true
			c.mu.Unlock()
		}
		trees[d] = t
	}
	return version, trees, nil
}

// detect returns the server's version, or "" if the server has none or
// the mode does not use it, and notes whether the server has one and
// where. It asks where the version was last found, then the other
// places: /version, and <api>/version when the sub-trees ds all lie under
// a rancher-metadata API version <api> (confd's -prefix /2015-12-19 with
// the node at the server's root, whose /version is 404).
func (c *Client) detect(ctx context.Context, ds []string) (string, error) {
	c.mu.Lock()
	known, at := c.versions, c.versionAt
	c.mu.Unlock()
	if c.mode == ModeConditional || c.mode == ModePoll || c.mode == ModeAuto && known < 0 {
		return "", nil
	}
	places := []string{at}
	if !slices.Contains(places, "/version") {
		places = append(places, "/version")
	}
	if api := apiVersion(ds); api != "" && !slices.Contains(places, api+"/version") {
		places = append(places, api+"/version")
	}
	for _, p := range places {
		version, ok, err := c.getVersionAt(ctx, p, "")
		if err != nil {
			return "", err
		}
		if ok {
			c.mu.Lock()
			c.versions, c.versionAt = 1, p
			c.mu.Unlock()
			return version, nil
		}
	}
	if c.mode == ModeLongPoll {
		return "", fmt.Errorf("metadata: GET %s: the server has no version (metadata_mode longpoll)", c.redacted(at, ""))
	}
	c.mu.Lock()
	c.versions = -1
	c.mu.Unlock()
	return "", nil
}

// apiVersion returns the rancher-metadata API version under which every
// sub-tree of ds lies, such as "/2015-12-19" or "/latest", or "" if they
// do not all lie under one.
func apiVersion(ds []string) string {
	var api string
	for _, d := range ds {
		seg := d
		if i := strings.IndexByte(d[min(1, len(d)):], '/'); i >= 0 {
			seg = d[:i+1]
		}
		if !apiVersionRE.MatchString(seg) || api != "" && seg != api {
			return ""
		}
		api = seg
	}
	return api
}

// apiVersionRE matches the API versions of rancher-metadata's paths.
var apiVersionRE = regexp.MustCompile(`^/(latest|[0-9]{4}-[0-9]{2}-[0-9]{2})$`)

// Close closes the client: calls under way return [backends.ErrClosed],
// as do later calls. It is idempotent.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	calls := slices.Collect(maps.Values(c.calls))
	c.calls = nil
	c.mu.Unlock()
	for _, cancel := range calls {
		cancel(backends.ErrClosed)
	}
	c.tr.CloseIdleConnections()
	return nil
}

var (
	_ backends.Backend   = (*Client)(nil)
	_ backends.Watcher   = (*Client)(nil)
	_ backends.Config    = (*Config)(nil)
	_ backends.Validator = (*Config)(nil)
	_ backends.Describer = (*Config)(nil)
	_ backends.Sampler   = (*Config)(nil)
)
