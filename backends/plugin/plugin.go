// Package plugin is the plugin backend: it runs an out-of-process backend,
// an executable that speaks kvconf's backend protocol over its stdin and
// stdout, and reads and watches keys through it. It registers as "plugin".
//
// # The protocol
//
// The protocol is named [Protocol] and is at version [Version]; docs/plugins.md
// is its reference, and package sdk holds its wire types (which this
// package uses) and Serve, the plugin side for plugins written in Go. In short: kvconf starts the command and writes JSON
// requests to its stdin, one a line; the plugin writes JSON responses to its
// stdout, one a line; its stderr is kvconf's. The plugin first greets with
// {"protocol":"kvconf-backend","version":1}, and kvconf refuses any other
// protocol or version. kvconf then sends the options in a configure request,
// and after that snapshot, watch and cancel requests. Requests carry an id
// that their response repeats, and several may be in flight: a watch blocks
// until something changed, and a cancel request ends it early.
//
// # Restarts and revisions
//
// When the plugin dies, the requests it had not answered return an error
// wrapping [ErrPluginExited], and the next call starts it again, after
// restart_backoff (doubled at each failure in a row, ±20%, up to
// [MaxRestartBackoff]). A plugin's revisions need not survive a restart:
// kvconf adds to the revisions of each new process the highest revision it
// returned before, so that revisions only grow, and answers a watch from a
// revision of an earlier process with a full snapshot.
package plugin

import (
	"context"
	_ "embed" // for Sample
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/backends/plugin/sdk"
	"github.com/kvconf/kvconf/internal/redact"
)

func init() {
	backends.Register("plugin", func() backends.Config { return new(Config) })
}

// Sample is an annotated example of the plugin backend's configuration, in
// TOML.
//
//go:embed sample.toml
var Sample string

// Protocol and Version name the protocol that kvconf speaks with plugins;
// a plugin greets with them.
const (
	Protocol = sdk.Protocol
	Version  = sdk.Version
)

// Defaults of the durations of [Config], and the longest wait between two
// restarts.
const (
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultRestartBackoff   = time.Second
	DefaultStopTimeout      = 5 * time.Second
	MaxRestartBackoff       = 30 * time.Second
)

// ErrPluginExited is wrapped by the errors of requests that the plugin
// could not answer because its process died (or was stopped for breaking
// the protocol). The next call starts the plugin again.
var ErrPluginExited = errors.New("plugin: plugin exited")

// Config holds the plugin backend's options.
type Config struct {
	// Command is the plugin's program and its arguments. A program name
	// without a slash is looked up in PATH.
	Command []string `toml:"command"`
	// Options are sent to the plugin in its configure request, every time
	// it starts; which options exist is up to the plugin.
	Options map[string]string `toml:"options"`
	// HandshakeTimeout bounds the start of the plugin: its greeting and
	// its answer to configure, in the syntax of [time.ParseDuration];
	// empty means [DefaultHandshakeTimeout].
	HandshakeTimeout string `toml:"handshake_timeout"`
	// RestartBackoff is the wait before restarting a plugin that died,
	// doubled at each failure in a row (±20%) up to [MaxRestartBackoff]; empty
	// means [DefaultRestartBackoff].
	RestartBackoff string `toml:"restart_backoff"`
	// StopTimeout is how long the plugin has to exit once its stdin is
	// closed before it is killed; empty means [DefaultStopTimeout].
	StopTimeout string `toml:"stop_timeout"`
	// Stderr receives the plugin's standard error; nil means kvconf's.
	Stderr io.Writer `toml:"-"`
}

// Sample returns [Sample], the commented sample configuration.
func (c *Config) Sample() string { return Sample }

// Description returns a one-line description of the plugin backend.
func (c *Config) Description() string {
	return "out-of-process backend: a program speaking the kvconf-backend protocol (version 1) over stdin/stdout"
}

// durations returns the handshake timeout, the restart backoff and the
// stop timeout.
func (c *Config) durations() (handshake, backoff, stop time.Duration, err error) {
	parse := func(opt, s string, def time.Duration) (time.Duration, error) {
		if s == "" {
			return def, nil
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("plugin: %s: %w", opt, err)
		}
		if d <= 0 {
			return 0, fmt.Errorf("plugin: %s %s is not positive", opt, s)
		}
		return d, nil
	}
	if handshake, err = parse("handshake_timeout", c.HandshakeTimeout, DefaultHandshakeTimeout); err != nil {
		return 0, 0, 0, err
	}
	if backoff, err = parse("restart_backoff", c.RestartBackoff, DefaultRestartBackoff); err != nil {
		return 0, 0, 0, err
	}
	if stop, err = parse("stop_timeout", c.StopTimeout, DefaultStopTimeout); err != nil {
		return 0, 0, 0, err
	}
	return handshake, backoff, stop, nil
}

// Validate reports the first problem with the options: no command, an
// empty program name or a malformed duration. It does not look for the
// program.
func (c *Config) Validate() error {
	if len(c.Command) == 0 {
		return errors.New("plugin: command is empty: give the plugin's program and its arguments")
	}
	if c.Command[0] == "" {
		return errors.New("plugin: command starts with an empty program name")
	}
	_, _, _, err := c.durations()
	return err
}

// Open starts the plugin; it implements [backends.Config].
func (c *Config) Open(ctx context.Context) (backends.Backend, error) {
	cl, err := New(ctx, *c)
	if err != nil {
		return nil, err
	}
	return cl, nil
}

// Client reads and watches keys through a plugin process. Its methods are
// safe for concurrent use.
type Client struct {
	argv      []string
	options   map[string]string
	secrets   []string // in options, kept out of errors
	stderr    io.Writer
	handshake time.Duration
	backoff   time.Duration
	stop      time.Duration

	done     chan struct{} // closed by Close
	startSem chan struct{} // holds a token while a process starts
	nextID   atomic.Uint64
	wg       sync.WaitGroup // the goroutines of every process

	mu       sync.Mutex
	closed   bool
	p        *proc     // the running process, or nil
	high     uint64    // the highest revision returned so far
	fails    int       // failures in a row since the last answer
	lastExit time.Time // when the last process died or failed to start
}

// New starts the plugin of cfg, after checking cfg (see
// [Config.Validate]): it waits for the plugin's greeting and its answer to
// the configure request, within the handshake timeout and ctx. ctx bounds
// New only; the plugin runs until [Client.Close].
func New(ctx context.Context, cfg Config) (*Client, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("plugin: open: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	handshake, backoff, stop, _ := cfg.durations()
	c := &Client{
		argv:      append([]string(nil), cfg.Command...),
		options:   cfg.Options,
		secrets:   redact.Options(cfg.Options),
		stderr:    cfg.Stderr,
		handshake: handshake,
		backoff:   backoff,
		stop:      stop,
		done:      make(chan struct{}),
		startSem:  make(chan struct{}, 1),
	}
	if c.stderr == nil {
		c.stderr = os.Stderr
	}
	if c.options == nil {
		c.options = map[string]string{}
	}
	if _, err := c.running(ctx); err != nil {
		_ = c.Close() // nothing runs: it only waits for the goroutines
		return nil, err
	}
	return c, nil
}

// name is how messages name the plugin: its program.
func (c *Client) name() string { return c.argv[0] }

// fail wraps err for op, masking the secrets of the options, which the
// plugin's error messages may quote.
func (c *Client) fail(op string, err error) error {
	return redact.Error(fmt.Errorf("plugin %s: %s: %w", c.name(), op, err), c.secrets...)
}

// Snapshot returns every key under prefixes, as the plugin read them.
func (c *Client) Snapshot(ctx context.Context, prefixes []string) (backends.Snapshot, error) {
	if err := c.check(ctx); err != nil {
		return backends.Snapshot{}, c.fail("snapshot", err)
	}
	p, err := c.running(ctx)
	if err != nil {
		return backends.Snapshot{}, err
	}
	return c.snapshot(ctx, p, prefixes)
}

func (c *Client) snapshot(ctx context.Context, p *proc, prefixes []string) (backends.Snapshot, error) {
	r, err := c.roundTrip(ctx, p, sdk.Request{Method: sdk.MethodSnapshot, Prefixes: nonNil(prefixes)})
	if err != nil {
		return backends.Snapshot{}, c.fail("snapshot", err)
	}
	if r.Rev == 0 {
		return backends.Snapshot{}, c.fail("snapshot", errRevZero)
	}
	kvs := r.KVs
	if kvs == nil {
		kvs = map[string]string{}
	}
	return backends.Snapshot{Rev: c.answered(p, r.Rev), KVs: kvs}, nil
}

// Watch implements [backends.Watcher]: it sends a watch request and
// returns the plugin's answer, changes or a full snapshot. With after == 0
// it returns the current revision. A revision of an earlier process of
// the plugin (before a restart) is answered with a full snapshot. A plugin
// that cannot watch answers "unsupported", and Watch returns an error
// wrapping [errors.ErrUnsupported]. When ctx ends, Watch sends a cancel
// request for the watch and returns at once.
func (c *Client) Watch(ctx context.Context, prefixes []string, after uint64) (backends.Update, error) {
	if err := c.check(ctx); err != nil {
		return backends.Update{}, c.fail("watch", err)
	}
	p, err := c.running(ctx)
	if err != nil {
		return backends.Update{}, err
	}
	if after != 0 && after <= p.base { // from an earlier process
		s, err := c.snapshot(ctx, p, prefixes)
		if err != nil {
			return backends.Update{}, err
		}
		return backends.Update{Rev: s.Rev, Full: &s}, nil
	}
	var rel uint64
	if after != 0 {
		rel = after - p.base
	}
	r, err := c.roundTrip(ctx, p, sdk.Request{Method: sdk.MethodWatch, Prefixes: nonNil(prefixes), After: rel})
	if err != nil {
		return backends.Update{}, c.fail("watch", err)
	}
	if r.Rev == 0 {
		return backends.Update{}, c.fail("watch", errRevZero)
	}
	u := backends.Update{Rev: c.answered(p, r.Rev)}
	switch {
	case r.Full != nil:
		u.Full = &backends.Snapshot{Rev: u.Rev, KVs: r.Full}
	case len(r.Changes) > 0:
		u.Changes = make([]backends.Change, len(r.Changes))
		for i, ch := range r.Changes {
			u.Changes[i] = backends.Change{Key: ch.Key, Value: ch.Value, Deleted: ch.Deleted}
			if ch.Deleted {
				u.Changes[i].Value = ""
			}
		}
	}
	return u, nil
}

// check returns the error of a call made after Close or with a context
// that is done.
func (c *Client) check(ctx context.Context) error {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return backends.ErrClosed
	}
	return ctx.Err()
}

// answered turns rev, a revision of process p, into one of the client,
// and notes that p answered.
func (c *Client) answered(p *proc, rev uint64) uint64 {
	rev += p.base
	c.mu.Lock()
	defer c.mu.Unlock()
	c.high = max(c.high, rev)
	c.fails = 0
	return rev
}

// Close stops the plugin: it closes the plugin's stdin, waits up to
// stop_timeout for it to exit and kills it then. Calls in progress return
// [backends.ErrClosed], as do later ones. Close returns once every
// goroutine of the client has exited. It is idempotent.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	close(c.done)
	p := c.p
	c.p = nil
	c.mu.Unlock()
	if p != nil {
		p.stop(c.stop)
	}
	c.wg.Wait()
	return nil
}

// nonNil returns ps, or an empty slice for nil, so that it encodes as [].
func nonNil(ps []string) []string {
	if ps == nil {
		return []string{}
	}
	return ps
}

var (
	_ backends.Backend   = (*Client)(nil)
	_ backends.Watcher   = (*Client)(nil)
	_ backends.Config    = (*Config)(nil)
	_ backends.Validator = (*Config)(nil)
	_ backends.Describer = (*Config)(nil)
	_ backends.Sampler   = (*Config)(nil)
)
