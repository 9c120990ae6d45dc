package haproxy

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kvconf/kvconf/appliers"
	"github.com/kvconf/kvconf/internal/backoff"
)

func init() {
	appliers.Register("haproxy-runtime", func() appliers.Config { return new(Config) })
}

//go:embed sample.toml
var sample string

// Default timeouts.
const (
	defaultTimeout      = 5 * time.Second
	defaultDrainTimeout = 10 * time.Second
	defaultCheckTimeout = 10 * time.Second
)

// Config is the [template.apply] table of the haproxy-runtime applier.
type Config struct {
	// Socket is the stats socket, at level admin: a unix socket path or
	// host:port.
	Socket string `toml:"socket"`
	// Timeout bounds each Runtime API command, as a Go duration; empty
	// means 5s.
	Timeout string `toml:"timeout"`
	// DrainTimeout bounds how long a removed (or replaced) server may keep sessions
	// before the applier gives up and falls back to a reload; empty
	// means 10s.
	DrainTimeout string `toml:"drain_timeout"`
	// CheckTimeout bounds how long a server that goes in service waits for
	// its health check to pass before the applier gives up and falls back
	// to a reload; empty means 10s. It should exceed the server's rise
	// times its inter.
	CheckTimeout string `toml:"check_timeout"`
}

// Sample returns a sample apply table.
func (c *Config) Sample() string { return sample }

// Validate checks the options.
func (c *Config) Validate() error {
	_, err := c.New()
	return err
}

// New returns the applier.
func (c *Config) New() (appliers.Applier, error) {
	if strings.TrimSpace(c.Socket) == "" {
		return nil, &appliers.OptionError{Key: "socket", Err: errors.New("missing")}
	}
	timeout, err := duration(c.Timeout, defaultTimeout, "timeout")
	if err != nil {
		return nil, err
	}
	drain, err := duration(c.DrainTimeout, defaultDrainTimeout, "drain_timeout")
	if err != nil {
		return nil, err
	}
	check, err := duration(c.CheckTimeout, defaultCheckTimeout, "check_timeout")
	if err != nil {
		return nil, err
	}
	return &Applier{client: newClient(c.Socket, timeout), socket: c.Socket, drain: drain, check: check}, nil
}

// duration parses a positive duration option, def when empty.
func duration(s string, def time.Duration, key string) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, &appliers.OptionError{Key: key, Err: fmt.Errorf("%q is not a positive duration", s)}
	}
	return d, nil
}

// Applier applies server changes of haproxy.cfg through the Runtime API.
type Applier struct {
	client *client
	socket string
	drain  time.Duration
	check  time.Duration
}

// Apply applies c when only servers of backends changed; see the package
// documentation.
func (a *Applier) Apply(ctx context.Context, c appliers.Change, env appliers.Env) error {
	if c.Old == nil {
		return fmt.Errorf("haproxy: %w: no previous configuration to compare with", appliers.ErrUnsupported)
	}
	old, err := parse(c.Old)
	if err != nil {
		return fmt.Errorf("haproxy: %w: previous configuration: %w", appliers.ErrUnsupported, err)
	}
	cur, err := parse(c.New)
	if err != nil {
		return fmt.Errorf("haproxy: %w: new configuration: %w", appliers.ErrUnsupported, err)
	}
	p, err := diff(old, cur)
	if err != nil {
		return fmt.Errorf("haproxy: %w", err)
	}
	var waits []*wait
	for _, o := range p.ops {
		if o.kind == opRemove && len(waits) > 0 {
			// The servers coming in service first, so that the backend
			// never has fewer than it will, and a replaced server back
			// in service before the next one leaves it.
			if err := a.settle(ctx, waits, env); err != nil {
				return err
			}
			waits = nil
		}
		start := time.Now()
		w, err := a.run(ctx, o)
		if err != nil {
			return err
		}
		if w != nil {
			waits = append(waits, w)
		}
		switch {
		case o.kind == opRemove && o.cmd != "":
			env.Logger.Debug("server replaced", "backend", o.backend, "server", o.server, "elapsed", time.Since(start))
		case o.kind == opRemove:
			env.Logger.Debug("server removed", "backend", o.backend, "server", o.server, "elapsed", time.Since(start))
		}
	}
	if err := a.settle(ctx, waits, env); err != nil {
		return err
	}
	if err := a.verify(ctx, p); err != nil {
		return err
	}
	env.Logger.Debug("runtime api applied", "socket", a.socket, "commands", len(p.ops))
	return nil
}

// run sends the commands of o. When o puts a server in service after its
// health check, run returns the wait for it; [Applier.settle] ends it.
func (a *Applier) run(ctx context.Context, o op) (*wait, error) {
	if o.kind == opRemove {
		if o.cover {
			if err := a.cover(ctx, o); err != nil {
				return nil, err
			}
		}
		if err := a.remove(ctx, o); err != nil || o.cmd == "" {
			return nil, err
		}
		// A replacement: the server comes back with its new options.
	}
	for _, cmd := range o.before {
		if err := a.client.run(ctx, cmd); err != nil {
			return nil, err
		}
	}
	switch {
	case o.cmd == "":
	case o.adds():
		if err := a.client.run(ctx, o.cmd, "New server registered"); err != nil {
			return nil, err
		}
	case o.kind == opAddr:
		if err := a.client.run(ctx, o.cmd, "IP changed", "no need to change", "port changed", "nothing changed"); err != nil {
			return nil, err
		}
	default:
		if err := a.client.run(ctx, o.cmd); err != nil {
			return nil, err
		}
	}
	if o.ready {
		w, err := a.arm(ctx, o)
		if w != nil || err != nil {
			return w, err
		}
	}
	return nil, a.sendAll(ctx, o.after)
}

// sendAll sends cmds in order.
func (a *Applier) sendAll(ctx context.Context, cmds []string) error {
	for _, cmd := range cmds {
		if err := a.client.run(ctx, cmd); err != nil {
			return err
		}
	}
	return nil
}

// remove puts a server in maintenance, waits (up to the drain timeout)
// for its sessions to end and deletes it.
func (a *Applier) remove(ctx context.Context, o op) error {
	id := o.backend + "/" + o.server
	if o.agent {
		if err := a.client.run(ctx, "disable agent "+id); err != nil {
			return err
		}
	}
	if err := a.client.run(ctx, "set server "+id+" state maint"); err != nil {
		return err
	}
	dctx, cancel := context.WithTimeout(ctx, a.drain)
	defer cancel()
	err := backoff.Retry(dctx, backoff.Policy{Min: 10 * time.Millisecond, Max: 200 * time.Millisecond},
		func(ctx context.Context) error {
			err := a.client.run(ctx, "del server "+id, "Server deleted")
			if err != nil && !isBusy(err) {
				return backoff.Permanent(err)
			}
			return err
		}, nil)
	if err != nil {
		return fmt.Errorf("haproxy: remove %s: %w", id, err)
	}
	return nil
}

// cover returns nil when a server of backend o.backend other than
// o.server is up, in service and of a weight above 0, to take o.server's
// traffic while it is replaced; else an error wrapping
// [appliers.ErrUnsupported]. (The plan made sure the file has one; this is
// HAProxy's word that its health check has it up.)
func (a *Applier) cover(ctx context.Context, o op) error {
	got, err := a.client.serversState(ctx, o.backend)
	if err != nil {
		return err
	}
	for name, st := range got[o.backend] {
		if name != o.server && (st.op == srvStarting || st.op == srvRunning) && st.admin&(adminMaint|adminDrain) == 0 && st.weight > 0 {
			return nil
		}
	}
	return fmt.Errorf("haproxy: %w: backend %s: server %s: options changed, and no other server of the backend is up to take its traffic while it is replaced",
		appliers.ErrUnsupported, o.backend, o.server)
}

// verify compares HAProxy's servers with the plan's.
func (a *Applier) verify(ctx context.Context, p *plan) error {
	got, err := a.client.serversState(ctx, "")
	if err != nil {
		return err
	}
	for b, servers := range p.state {
		have := got[b]
		if len(have) != len(servers) {
			return fmt.Errorf("haproxy: verify: backend %s has %d servers, want %d", b, len(have), len(servers))
		}
		for name, w := range servers {
			h, ok := have[name]
			switch {
			case !ok:
				return fmt.Errorf("haproxy: verify: backend %s has no server %s", b, name)
			case w.host != "" && (h.host != w.host || h.port != w.port):
				return fmt.Errorf("haproxy: verify: server %s/%s has address %s:%d, want %s:%d", b, name, h.host, h.port, w.host, w.port)
			case h.weight != w.weight:
				return fmt.Errorf("haproxy: verify: server %s/%s has weight %d, want %d", b, name, h.weight, w.weight)
			case (h.admin&adminMaint != 0) != w.maint:
				return fmt.Errorf("haproxy: verify: server %s/%s has admin state %#x, want maintenance %v", b, name, h.admin, w.maint)
			}
		}
	}
	// "show servers state" has no backup flag; "show stat" has, as bck.
	// Only the backends the plan changed can have changed.
	var done []string
	for _, o := range p.ops {
		if slices.Contains(done, o.backend) {
			continue
		}
		done = append(done, o.backend)
		st, err := a.client.stat(ctx, o.backend)
		if err != nil {
			return err
		}
		for name, w := range p.state[o.backend] {
			h, ok := st[o.backend][name]
			switch {
			case !ok:
				return fmt.Errorf("haproxy: verify: show stat has no server %s/%s", o.backend, name)
			case w.backupKnown && h.backup != w.backup:
				return fmt.Errorf("haproxy: verify: server %s/%s has backup %v, want %v", o.backend, name, h.backup, w.backup)
			}
		}
	}
	return nil
}

var (
	_ appliers.Validator = (*Config)(nil)
	_ appliers.Applier   = (*Applier)(nil)
)
