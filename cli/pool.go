package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/internal/backoff"
	"github.com/kvconf/kvconf/resource"
)

// namedBackend is one [backends.NAME] table of the config file.
type namedBackend struct {
	name string
	typ  string // its type key, a registered backend name or a plugin's
	cfg  backends.Config
	// Until [config.resolvePlugins], a table whose type is not built in:
	// its options, for a plugin kvconf-backend-TYPE, and the table's place
	// for errors.
	pluginOpts map[string]any
	where      string
}

// pool holds the backends of a run: the default one, set by -backend and
// the backend options, and the named ones of the config file's
// [backends.NAME] tables, which resources pick with their backend key.
// Each backend is opened when a resource first needs it and stays open
// until close, across SIGHUP reloads; each has its own snapshot and watch.
type pool struct {
	entries map[string]*entry // by name; "" is the default backend
	// def, when not "", is the named backend that is also the default
	// one (-backend names a [backends.NAME] table): resources without a
	// backend key read it, and share its snapshot and watch.
	def   string
	log   *slog.Logger
	retry resource.Backoff // between attempts to open a backend in daemon mode
	ops   *ops             // observes each Run's backend; nil for none
}

// entry is one backend of a pool.
type entry struct {
	name  string // "" for the default backend
	typ   string
	label string // how messages name it
	cfg   backends.Config
	// status counts the backend's transitions down and up over all its
	// runs (across reloads), for metrics.
	status resource.BackendStatus

	mu sync.Mutex // serialises Open
	b  backends.Backend
}

// newPool returns a pool of the default backend typ, configured by cfg,
// and of the named backends. Nothing is opened yet.
func newPool(typ string, cfg backends.Config, named []namedBackend, log *slog.Logger) *pool {
	p := &pool{entries: map[string]*entry{"": {typ: typ, label: typ, cfg: cfg}}, log: log}
	for _, n := range named {
		p.entries[n.name] = &entry{name: n.name, typ: n.typ, label: fmt.Sprintf("%s (%s)", n.name, n.typ), cfg: n.cfg}
	}
	return p
}

// alias makes the named backend the default one too.
func (p *pool) alias(name string) {
	p.def = name
	p.entries[""] = p.entries[name]
}

// canon returns the name under which the backend a resource names is
// grouped: the named backend for the default one when it is an alias.
func (p *pool) canon(name string) string {
	if name == "" && p.def != "" {
		return p.def
	}
	return name
}

// names returns the names resources may give: "" (the default) and every
// named backend.
func (p *pool) names() []string {
	out := make([]string, 0, len(p.entries))
	for n := range p.entries {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// get returns the backend called name, opening it if it is not open yet.
func (p *pool) get(ctx context.Context, name string) (backends.Backend, error) {
	e := p.entries[name]
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.b != nil {
		return e.b, nil
	}
	if ls, ok := e.cfg.(backends.LogSetter); ok {
		ls.SetLogger(p.log.With("backend", e.label))
	}
	b, err := e.cfg.Open(ctx)
	if err != nil {
		return nil, e.wrap(err)
	}
	e.b = b
	p.log.Debug("backend opened", "backend", e.label)
	return b, nil
}

// close closes every backend that was opened.
func (p *pool) close() {
	for _, n := range p.names() {
		if n == "" && p.def != "" {
			continue // the named one
		}
		e := p.entries[n]
		e.mu.Lock()
		if e.b != nil {
			if err := e.b.Close(); err != nil {
				p.log.Warn("backend close failed", "backend", e.label, "err", err)
			}
			e.b = nil
		}
		e.mu.Unlock()
	}
}

// wrap prefixes err, an error of the backend, with its label, once: a
// message that starts with the backend's type already ("file: open
// x.yaml: ...") loses that prefix.
func (e *entry) wrap(err error) error {
	return &layerError{msg: "backend " + e.label + ": " + strings.TrimPrefix(err.Error(), e.typ+": "), err: err}
}

// group is the resources that read one backend.
type group struct {
	name string
	rs   []*resource.Resource
}

// groups splits rs by backend, the default backend first, then by name.
// The resources were loaded with [pool.names] as the names they may use.
func (p *pool) groups(rs []*resource.Resource) []group {
	by := map[string][]*resource.Resource{}
	for _, r := range rs {
		n := p.canon(r.Config.Backend)
		by[n] = append(by[n], r)
	}
	var out []group
	for _, n := range p.names() {
		if len(by[n]) > 0 {
			out = append(out, group{name: n, rs: by[n]})
		}
	}
	return out
}

// labels names the backends that rs read, comma-separated, for logs.
func (p *pool) labels(rs []*resource.Resource) string {
	gs := p.groups(rs)
	out := make([]string, len(gs))
	for i, g := range gs {
		out[i] = p.entries[g.name].label
	}
	return strings.Join(out, ",")
}

// once renders every resource once, each group from its own backend's
// snapshot, the groups concurrently. A backend that cannot be opened or
// read fails its own resources only; the result joins every failure
// (the failures of whole backends name the backend).
func (p *pool) once(ctx context.Context, rs []*resource.Resource) error {
	gs := p.groups(rs)
	errs := make([]error, len(gs))
	var wg sync.WaitGroup
	for i, g := range gs {
		wg.Go(func() {
			b, err := p.get(ctx, g.name)
			if err != nil {
				errs[i] = err
				return
			}
			errs[i] = p.label(g.name, resource.Once(ctx, b, g.rs))
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// label prefixes the parts of err that are not about one resource (a
// failed snapshot) with the name of the backend.
func (p *pool) label(name string, err error) error {
	if err == nil {
		return nil
	}
	parts := unjoin(err)
	for i, e := range parts {
		var re *resource.Error
		if !errors.As(e, &re) {
			parts[i] = p.entries[name].wrap(e)
		}
	}
	return errors.Join(parts...)
}

// openFailure is a backend that could not be opened, and why.
type openFailure struct {
	name string // the backend's name in the pool
	err  error
}

// openAll opens the backends of gs, returning how many are open and the
// failures.
func (p *pool) openAll(ctx context.Context, gs []group) (int, []openFailure) {
	var failed []openFailure
	open := 0
	for _, g := range gs {
		if _, err := p.get(ctx, g.name); err != nil {
			failed = append(failed, openFailure{g.name, err})
			continue
		}
		open++
	}
	return open, failed
}

// run keeps the resources up to date until ctx is done: one
// [resource.Run] per backend, each with its own snapshot and watch. A
// backend that cannot be opened is retried with backoff while the others
// run. It returns when every Run has returned: at once for invalid run
// options, else once ctx is done, with an error wrapping ctx's.
func (p *pool) run(ctx context.Context, rs []*resource.Resource, ropts resource.RunOptions) error {
	defer p.ops.running()()
	gs := p.groups(rs)
	if len(gs) == 0 {
		<-ctx.Done()
		return fmt.Errorf("resource: run: %w", context.Cause(ctx))
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, grp := range gs {
		g.Go(func() error {
			b, err := p.await(gctx, grp.name)
			if err != nil {
				return err
			}
			o := ropts
			o.Logger = ropts.Logger.With("backend", p.entries[grp.name].label)
			o.Status = &p.entries[grp.name].status
			o.Observer = p.ops.backend(p, grp.name)
			p.ops.refusals(p, grp.name, b)
			return p.label(grp.name, resource.Run(gctx, b, grp.rs, o))
		})
	}
	return g.Wait()
}

// await opens the named backend, retrying with backoff until it opens or
// ctx is done.
func (p *pool) await(ctx context.Context, name string) (backends.Backend, error) {
	for attempt := 1; ; attempt++ {
		b, err := p.get(ctx, name)
		if err == nil {
			if attempt > 1 {
				p.log.Info("backend up", "backend", p.entries[name].label)
			}
			return b, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("resource: run: %w", context.Cause(ctx))
		}
		d := p.retry.Delay(attempt)
		p.log.Warn("backend open failed; retrying", "backend", p.entries[name].label, "in", d, "err", err)
		if backoff.Sleep(ctx, d) != nil {
			return nil, fmt.Errorf("resource: run: %w", context.Cause(ctx))
		}
	}
}
