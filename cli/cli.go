// Package cli is kvconf's command line, importable so that a custom
// binary can add backends or function sets and keep the same flags,
// config file and subcommands:
//
//	package main
//
//	import (
//		"os"
//
//		_ "example.com/kvconf-backend-vault" // registers "vault"
//		_ "github.com/kvconf/kvconf/backends/all"
//		"github.com/kvconf/kvconf/cli"
//	)
//
//	func main() { os.Exit(cli.Main(os.Args[1:])) }
//
// The package registers no backend itself: the main package picks them with
// blank imports, as cmd/kvconf does with backends/all.
//
// Usage:
//
//	kvconf [flags]            render every resource, once (-onetime), on every change (-watch) or every -interval
//	kvconf backends [NAME]    list the compiled-in backends, or print NAME's sample configuration
//	kvconf plugins            list the compiled-in backends and function sets
//	kvconf exec [flags] -- COMMAND [ARGS...]
//	                          render every resource, then run COMMAND as a child and signal it on each change
//	kvconf check [flags]      render every resource and run its check_cmd, writing nothing (for CI)
//
// Run "kvconf -h" for the flags. Unless -onetime is given, kvconf runs until
// SIGINT or SIGTERM, and SIGHUP reloads conf.d and the templates. In exec
// mode kvconf runs until COMMAND exits, forwards signals to it (SIGHUP
// included) and exits with its exit code.
package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"sync"
	"syscall"

	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/funcs"
	"github.com/kvconf/kvconf/resource"
)

// version is set at build time with
// -ldflags "-X github.com/kvconf/kvconf/cli.version=...".
var version = ""

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1 // one or more resources failed
	exitUsage  = 2 // bad flag, config file or resource
)

// Main runs kvconf's command line with args (without the program name,
// such as os.Args[1:]) in this process: it reads the environment, writes to
// os.Stdout and os.Stderr, stops on SIGINT and SIGTERM and, in daemon mode,
// reloads conf.d on SIGHUP. It returns the exit code.
func Main(args []string) int {
	if len(args) > 0 && args[0] == "exec" {
		// exec mode handles its signals itself: it forwards them to the
		// command.
		return run(context.Background(), args, os.LookupEnv, os.Stdout, os.Stderr)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c := command{getenv: os.LookupEnv, stdout: os.Stdout, stderr: os.Stderr, tuneGC: true}
	return c.run(ctx, args)
}

// run is kvconf's whole command line, testable without a process: ctx ends
// it ([Main] cancels it on SIGINT and SIGTERM), and in daemon mode each
// SIGHUP the process receives reloads the resources.
func run(ctx context.Context, args []string, getenv func(string) (string, bool), stdout, stderr io.Writer) int {
	return command{getenv: getenv, stdout: stdout, stderr: stderr}.run(ctx, args)
}

// command is what the command line takes from its process.
type command struct {
	getenv         func(string) (string, bool)
	stdout, stderr io.Writer
	// reload, when not nil, asks for a reload of conf.d and the templates
	// on each receive, as SIGHUP does; tests use it to reload without a
	// signal.
	reload <-chan struct{}
	// ops serves -listen and notifies systemd; nil without either.
	ops *ops
	// tuneGC lets a -onetime run tune the garbage collector of the
	// process (see [gcFloor]); only [Main] sets it, since the settings are
	// process-wide.
	tuneGC bool
}

// run is kvconf's command line; see the package [run] function.
func (c command) run(ctx context.Context, args []string) int {
	getenv, stdout, stderr := c.getenv, c.stdout, c.stderr
	if len(args) > 0 && args[0] == "backends" {
		return listBackends(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "plugins" {
		return listPlugins(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "exec" {
		return c.exec(ctx, args[1:])
	}
	if len(args) > 0 && args[0] == "check" {
		return c.checkCommand(ctx, args[1:])
	}
	fs, vals := newFlagSet("kvconf")
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: kvconf [flags]\n       kvconf backends [NAME]\n       kvconf plugins\n       kvconf exec [flags] -- COMMAND [ARGS...]\n       kvconf check [flags]\n\nFlags (each also settable as KVCONF_<FLAG>; flags win over the environment, which wins over the config file):\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "kvconf: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	s, err := resolve(fs, vals, getenv)
	if err != nil {
		fmt.Fprintf(stderr, "kvconf: %v\n", err)
		return exitUsage
	}
	if s.boolean("version") {
		fmt.Fprintf(stdout, "kvconf %s\n", versionString())
		return exitOK
	}
	log, err := newLogger(s, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "kvconf: %v\n", err)
		return exitUsage
	}
	if err := check(s); err != nil {
		fmt.Fprintf(stderr, "kvconf: %v\n", err)
		return exitUsage
	}
	if c.ops, err = newOps(s.str("listen"), s.origin("listen"), getenv, log); err != nil {
		fmt.Fprintf(stderr, "kvconf: %v\n", err)
		return exitUsage
	}

	opts := resource.Options{
		ConfDir:       s.str("confdir"),
		Prefix:        s.str("prefix"),
		Noop:          s.boolean("noop"),
		Diff:          stdout,
		SyncOnly:      s.boolean("sync-only"),
		KeepStageFile: s.boolean("keep-stage-file"),
		Logger:        log,
		Observer:      c.ops.observer(),
	}
	bcfg, err := decodeBackend(s)
	if err != nil {
		fmt.Fprintf(stderr, "kvconf: %v\n", err)
		return exitUsage
	}
	p := newPool(s.str("backend"), bcfg, s.named(), log)
	p.ops = c.ops
	defer p.close()
	opts.Backends = p.names()
	rs, err := resource.LoadDir(opts)
	if err != nil {
		fmt.Fprintf(stderr, "kvconf: %v\n", err)
		return exitUsage
	}
	if len(rs) == 0 {
		log.Warn("no template resources", "confdir", opts.ConfDir)
	}

	if s.boolean("onetime") {
		if c.tuneGC {
			defer gcFloor(oneShotMemory)()
		}
		if err := p.once(ctx, rs); err != nil {
			reportFailures(stderr, err, len(rs))
			return exitFailed
		}
		return exitOK
	}
	// Open the backends the resources use. With none open nothing could
	// ever render: fail as -onetime does. Otherwise the ones that failed
	// are retried, with backoff, while the others run.
	gs := p.groups(rs)
	open, errs := p.openAll(ctx, gs)
	if open == 0 && len(errs) > 0 {
		for _, err := range errs {
			fmt.Fprintf(stderr, "kvconf: %v\n", err)
		}
		return exitFailed
	}
	for _, err := range errs {
		log.Error("backend open failed", "err", err)
	}
	if s.boolean("watch") {
		if label, bad := p.cannotWatch(gs); bad {
			fmt.Fprintf(stderr, "kvconf: %s: backend %q cannot watch for changes; use -interval\n", s.origin("watch"), label)
			return exitUsage
		}
	}
	if err := c.ops.start(ctx, p, rs); err != nil {
		fmt.Fprintf(stderr, "kvconf: %v\n", err)
		return exitFailed
	}
	defer c.ops.close()
	return c.serve(ctx, p, rs, opts, runOptions(s, log))
}

// runOptions returns the daemon's settings: -watch, -interval (with
// -watch, a reconciliation period only when set explicitly) and -wait.
func runOptions(s settings, log *slog.Logger) resource.RunOptions {
	wait, _ := resource.ParseWait(s.str("wait")) // checked by check
	ropts := resource.RunOptions{
		Watch:    s.boolean("watch"),
		Interval: s.interval(),
		Wait:     wait,
		Logger:   log,
	}
	if ropts.Watch && !s.isSet("interval") {
		ropts.Interval = 0 // watch alone: no periodic reconciliation
	}
	return ropts
}

// serve runs the resources until ctx is done, and reloads them on SIGHUP
// or c.reload: when conf.d and the templates load without an error, the
// running set is stopped and the new one started on the same backends
// (a backend that no resource used before is opened then); otherwise the
// errors are logged and the old set keeps running.
func (c command) serve(ctx context.Context, p *pool, rs []*resource.Resource, opts resource.Options, ropts resource.RunOptions) int {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	log := ropts.Logger
	for {
		log.Info("running", "backends", p.labels(rs), "watch", ropts.Watch, "interval", ropts.Interval, "wait", ropts.Wait, "resources", len(rs))
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- p.run(rctx, rs, ropts) }()
		next, reload, err := c.awaitReload(done, hup, opts, log)
		cancel()
		if !reload {
			// Run ended on its own: ctx is done, or it failed.
			if errors.Is(err, context.Canceled) && ctx.Err() != nil {
				log.Info("stopped")
				return exitOK
			}
			fmt.Fprintf(c.stderr, "kvconf: %v\n", err)
			return exitFailed
		}
		// Once the cancelled Run returned, no render of the old set is
		// under way.
		if err := <-done; !errors.Is(err, context.Canceled) {
			log.Warn("run ended", "err", err)
		}
		if ctx.Err() != nil {
			log.Info("stopped")
			return exitOK
		}
		rs = next
		log.Info("reloaded", "backends", p.labels(rs), "resources", len(rs))
	}
}

// awaitReload waits either for a reload request whose resources load
// without error, and returns them with reload set, or for done, and
// returns Run's error.
func (c command) awaitReload(done <-chan error, hup <-chan os.Signal, opts resource.Options, log *slog.Logger) (rs []*resource.Resource, reload bool, err error) {
	for {
		select {
		case err := <-done:
			return nil, false, err
		case <-hup:
		case <-c.reload:
		}
		log.Info("reloading", "confdir", opts.ConfDir)
		c.ops.reloading()
		rs, err := resource.LoadDir(opts)
		c.ops.reloaded(rs, err)
		if err != nil {
			log.Error("reload failed", "confdir", opts.ConfDir, "err", err)
			continue
		}
		return rs, true, nil
	}
}

// check validates settings that the flag package cannot.
func check(s settings) error {
	if s.integer("interval") <= 0 {
		return fmt.Errorf("%s: interval must be a positive number of seconds, got %d", s.origin("interval"), s.integer("interval"))
	}
	if s.str("confdir") == "" {
		return fmt.Errorf("%s: confdir must not be empty", s.origin("confdir"))
	}
	if s.boolean("watch") && s.boolean("onetime") {
		return fmt.Errorf("%s and %s: choose one", s.origin("watch"), s.origin("onetime"))
	}
	if _, err := resource.ParseWait(s.str("wait")); err != nil {
		return fmt.Errorf("%s: %w", s.origin("wait"), err)
	}
	return nil
}

// decodeBackend decodes the backend options that were set into the
// backend's config, naming the flag, variable or file key behind a
// rejected option.
func decodeBackend(s settings) (backends.Config, error) {
	name := s.str("backend")
	cfg, err := backends.Decode(name, s.backendOptions())
	if err == nil {
		return cfg, nil
	}
	var msgs []string
	for _, e := range unjoin(err) {
		var oe *backends.OptionError
		if errors.As(e, &oe) {
			if st := s.byKey(oe.Key); st != nil {
				msgs = append(msgs, fmt.Sprintf("%s: not an option of backend %q", st.from, name))
				continue
			}
		}
		msgs = append(msgs, e.Error())
	}
	return nil, fmt.Errorf("backend %s: %s", name, strings.Join(msgs, "; "))
}

// unjoin splits an errors.Join error into its parts.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// reportFailures lists each failed resource, with the output of a failed
// check_cmd or reload_cmd under it, and any failure of the whole run (such
// as the snapshot) on its own.
func reportFailures(w io.Writer, err error, total int) {
	var failed, other []error
	for _, e := range unjoin(err) {
		var re *resource.Error
		if errors.As(e, &re) {
			failed = append(failed, e)
		} else {
			other = append(other, e)
		}
	}
	for _, e := range other {
		fmt.Fprintf(w, "kvconf: %s\n", e)
	}
	if len(failed) == 0 {
		return
	}
	fmt.Fprintf(w, "kvconf: %d of %d resources failed:\n", len(failed), total)
	for _, e := range failed {
		fmt.Fprintf(w, "  %s\n", e)
		var he *resource.HookError
		if errors.As(e, &he) && len(bytes.TrimSpace(he.Output)) > 0 {
			out := strings.TrimRight(string(he.Output), "\n")
			fmt.Fprintf(w, "    %s output:\n      %s\n", he.Hook, strings.ReplaceAll(out, "\n", "\n      "))
		}
	}
}

// newLogger builds the logger of -log-format at the configured level.
func newLogger(s settings, w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	switch strings.ToLower(s.str("log-level")) {
	case "debug":
		lvl = slog.LevelDebug
	case "info", "":
		lvl = slog.LevelInfo
	case "warn", "warning":
		lvl = slog.LevelWarn
	case "error", "fatal", "panic":
		lvl = slog.LevelError
	default:
		return nil, fmt.Errorf("%s: unknown log level %q (want debug, info, warn or error)", s.origin("log-level"), s.str("log-level"))
	}
	h, err := newHandler(s.str("log-format"), s.origin("log-format"), w, lvl)
	if err != nil {
		return nil, err
	}
	return slog.New(h), nil
}

// versionString is the -ldflags version, or the module version.
func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// listBackends prints every compiled-in backend with its description or,
// given a name, that backend's sample configuration.
func listBackends(args []string, stdout, stderr io.Writer) int {
	if len(args) > 1 {
		fmt.Fprintln(stderr, "Usage: kvconf backends [NAME]")
		return exitUsage
	}
	if len(args) == 1 {
		cfg, err := backends.NewConfig(args[0])
		if err != nil {
			fmt.Fprintf(stderr, "kvconf: %v\n", err)
			return exitUsage
		}
		if sm, ok := cfg.(backends.Sampler); ok {
			fmt.Fprint(stdout, sm.Sample())
		}
		return exitOK
	}
	for _, name := range backends.Names() {
		fmt.Fprintf(stdout, "%s\t%s\n", name, backendDescription(name))
	}
	return exitOK
}

// listPlugins prints what is compiled in, one per line: every backend as
// "backend\tNAME\tdescription", then every function set as
// "funcs\tNAME\tdescription".
func listPlugins(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintln(stderr, "Usage: kvconf plugins")
		return exitUsage
	}
	for _, name := range backends.Names() {
		fmt.Fprintf(stdout, "backend\t%s\t%s\n", name, backendDescription(name))
	}
	for _, name := range funcs.Names() {
		fmt.Fprintf(stdout, "funcs\t%s\t%s\n", name, funcs.Description(name))
	}
	return exitOK
}

// backendDescription returns the one-line description of the named
// backend, or "" when its config does not implement [backends.Describer].
func backendDescription(name string) string {
	cfg, err := backends.NewConfig(name)
	if err != nil {
		return ""
	}
	if d, ok := cfg.(backends.Describer); ok {
		return d.Description()
	}
	return ""
}

// oneShotMemory is the memory a -onetime run lets the Go runtime use
// before it collects garbage, as long as its live heap stays under half of
// it; see [gcFloor]. With the binary's own pages, that keeps a run over
// 100,000 small keys at about 50 MiB of resident memory.
const oneShotMemory = 36 << 20

// gcFloor makes the garbage collector wait until the Go runtime uses limit
// bytes of memory before it collects, as long as the live heap stays
// under limit/2; above that, GOGC=100 applies, as by default. It returns
// a function that puts the previous settings back. It does nothing when
// GOGC or GOMEMLIMIT is set in the environment: the user's settings win.
//
// A -onetime run is short and allocates much more than it keeps (the
// decoded pages of a snapshot, the temporaries of template execution),
// so with GOGC=100, whose heap goal is twice the live heap but at least
// 4 MiB, it collects many times while its live heap is a few MiB. With
// GOGC off and a memory limit instead, it collects when it reaches the
// limit only, and the runtime returns freed memory to stay under it; but
// a fixed limit makes the collector run continuously once the live heap
// nears it. So after each collection gcFloor looks at the live heap and
// picks one of the two: the limit while the live heap is under half of
// it, where both collect about as often, GOGC=100 beyond. The data sets
// the live heap: a snapshot of 100,000 small keys stays under the limit,
// a much bigger one goes on with GOGC=100.
func gcFloor(limit int64) (restore func()) {
	_, gogc := os.LookupEnv("GOGC")
	_, memlimit := os.LookupEnv("GOMEMLIMIT")
	if gogc || memlimit {
		return func() {}
	}
	t := &gcTuner{limit: limit, gogc: debug.SetGCPercent(-1), memlimit: debug.SetMemoryLimit(limit)}
	t.mu.Lock()
	t.tune()
	t.mu.Unlock()
	return t.stop
}

// gcTuner switches the collector between a memory limit and GOGC after
// each collection; see [gcFloor].
type gcTuner struct {
	limit    int64
	gogc     int   // GOGC before the tuner
	memlimit int64 // memory limit before the tuner

	mu      sync.Mutex
	stopped bool
}

// tune sets the collector for the live heap of the last collection and
// arranges to be called again after the next one. It is called with t.mu
// held.
func (t *gcTuner) tune() {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(sample)
	var live uint64
	if sample[0].Value.Kind() == metrics.KindUint64 {
		live = sample[0].Value.Uint64()
	}
	if live < uint64(t.limit/2) {
		debug.SetMemoryLimit(t.limit)
		debug.SetGCPercent(-1)
	} else {
		debug.SetGCPercent(t.gogc)
		debug.SetMemoryLimit(t.memlimit)
	}
	// A cleanup runs once the collector found its object unreachable:
	// after the next collection.
	runtime.AddCleanup(new(gcSentinel), func(t *gcTuner) {
		t.mu.Lock()
		defer t.mu.Unlock()
		if !t.stopped {
			t.tune()
		}
	}, t)
}

// gcSentinel is the object whose cleanup marks a collection. It holds a
// pointer so that it is not batched with other tiny objects, whose
// cleanups may not run.
type gcSentinel struct{ _ *int }

// stop ends the tuning and puts back the settings it found.
func (t *gcTuner) stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopped = true
	debug.SetGCPercent(t.gogc)
	debug.SetMemoryLimit(t.memlimit)
}
