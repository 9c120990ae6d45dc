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
//	kvconf plugins            list the compiled-in backends and function sets, and the plugins -backend finds
//	kvconf exec [flags] -- COMMAND [ARGS...]
//	                          render every resource, then run COMMAND as a child and signal it on each change
//	kvconf help [exec]        print the usage of kvconf or of exec
//	kvconf check [flags]      render every resource and run its check_cmd, writing nothing (for CI)
//
// Run "kvconf -h" for the flags: kvconf's own, then each compiled-in
// backend's, which the backends declare ([backends.Flagger]). Unless
// -onetime is given, kvconf runs until SIGINT or SIGTERM, and SIGHUP
// reloads conf.d and the templates. In exec
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
	"strings"
	"syscall"

	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/resource"
)

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
		return c.plugins(ctx, args[1:])
	}
	if len(args) > 0 && args[0] == "exec" {
		return c.exec(ctx, args[1:])
	}
	if len(args) > 0 && args[0] == "help" {
		return help(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "check" {
		return c.checkCommand(ctx, args[1:])
	}
	fs := newFlagSet("kvconf")
	fs.SetOutput(stderr)
	fs.Usage = func() { usage(stderr, fs) }
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
	cfg, err := load(fs, getenv)
	if err != nil {
		fmt.Fprintf(stderr, "kvconf: %v\n", err)
		return exitUsage
	}
	if cfg.Version {
		fmt.Fprintf(stdout, "kvconf %s\n", versionString())
		return exitOK
	}
	log := newLogger(cfg.LogLevel, cfg.LogFormat, stderr)
	if len(cfg.Ignored) > 0 {
		log.Warn("ignored with -onetime", "settings", joinSources(cfg.Ignored), "onetime", cfg.origin("onetime"))
	}
	if c.ops, err = newOps(cfg.Listen, getenv, log); err != nil {
		fmt.Fprintf(stderr, "kvconf: %v\n", err)
		return exitUsage
	}

	opts := cfg.resourceOptions(log)
	opts.Diff = stdout
	opts.Observer = c.ops.observer()
	p, err := newPoolFor(cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "kvconf: %v\n", err)
		return exitUsage
	}
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

	if cfg.Onetime {
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
	open, failed := p.openAll(ctx, gs)
	if open == 0 && len(failed) > 0 {
		for _, f := range failed {
			fmt.Fprintf(stderr, "kvconf: %v\n", f.err)
		}
		return exitFailed
	}
	for _, f := range failed {
		log.Error("backend open failed", "backend", p.entries[f.name].label, "err", f.err)
	}
	if err := c.ops.start(ctx, p, rs); err != nil {
		fmt.Fprintf(stderr, "kvconf: %v\n", err)
		return exitFailed
	}
	defer c.ops.close()
	return c.serve(ctx, p, rs, opts, cfg.runOptions(log))
}

// joinSources joins sources for a log attribute.
func joinSources(ss []source) string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return strings.Join(out, ", ")
}

// newPoolFor returns the pool of cfg's backends: the default one and the
// named ones.
func newPoolFor(cfg *config, log *slog.Logger) (*pool, error) {
	name, typ, bcfg, err := cfg.defaultBackend()
	if err != nil {
		return nil, err
	}
	p := newPool(typ, bcfg, cfg.Named, log)
	if name != "" {
		p.alias(name)
	}
	return p, nil
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

// unjoin splits an errors.Join error into its parts.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// reportFailures lists each failed resource with the step that failed
// (fetch, render, write, check, reload), its dest and the cause, and under
// it the end of a failed check_cmd's or reload_cmd's output (the last
// 4 KiB, withheld for a sensitive resource); then any failure of the
// whole run, such as a snapshot, naming the resources it left unrendered.
// total is the number of resources of the run.
func reportFailures(w io.Writer, err error, total int) {
	var failed []*resource.Error
	var other []error
	for _, e := range flattenJoin(err) {
		var re *resource.Error
		if errors.As(e, &re) {
			failed = append(failed, re)
		} else {
			other = append(other, e)
		}
	}
	for _, e := range other {
		fmt.Fprintf(w, "kvconf: %s\n", e)
		var fe *resource.FetchError
		if errors.As(e, &fe) {
			fmt.Fprintf(w, "  %d of %d resources not rendered (step fetch): %s\n",
				len(fe.Resources), total, strings.Join(fe.Resources, ", "))
		}
	}
	if len(failed) == 0 {
		return
	}
	fmt.Fprintf(w, "kvconf: %d of %d resources failed:\n", len(failed), total)
	for _, re := range failed {
		step := re.Step
		var he *resource.HookError
		isHook := errors.As(re.Err, &he)
		if step == "" && isHook {
			step = resource.StepCheck
			if he.Hook == "reload_cmd" {
				step = resource.StepReload
			}
		}
		if step == "" {
			step = "apply"
		}
		fmt.Fprintf(w, "  resource %s: %s failed, dest %s: %v\n", re.Resource, step, re.Dest, re.Err)
		switch {
		case !isHook:
		case he.Withheld:
			fmt.Fprintf(w, "    %s output withheld: resource is sensitive\n", he.Hook)
		case len(bytes.TrimSpace(he.Output)) > 0:
			size := fmt.Sprintf("%d bytes", he.OutputSize)
			if he.OutputSize > int64(len(he.Output)) {
				size = fmt.Sprintf("last %d of %d bytes", len(he.Output), he.OutputSize)
			}
			out := printable(strings.TrimRight(string(he.Output), "\n"))
			fmt.Fprintf(w, "    %s output (%s):\n      %s\n", he.Hook, size, strings.ReplaceAll(out, "\n", "\n      "))
		}
	}
}

// flattenJoin splits err into its parts, through joins of joins (the
// backends' runs, each joining its resources' errors).
func flattenJoin(err error) []error {
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		if err == nil {
			return nil
		}
		return []error{err}
	}
	var out []error
	for _, e := range j.Unwrap() {
		out = append(out, flattenJoin(e)...)
	}
	return out
}

// printable returns s with invalid UTF-8 and control characters other
// than newline and tab replaced by "?", so that a hook's output cannot
// drive the terminal that reads the report.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || (r >= 0x20 && r != 0x7f && (r < 0x80 || r >= 0xa0)) {
			return r
		}
		return '?'
	}, strings.ToValidUTF8(s, "?"))
}

// newLogger builds the logger at level, in format (see [parseLogFormat]).
func newLogger(level slog.Level, format string, w io.Writer) *slog.Logger {
	return slog.New(newHandler(format, w, level))
}

// help is "kvconf help [exec]": the usage of kvconf or of exec, on
// stdout.
func help(args []string, stdout, stderr io.Writer) int {
	switch {
	case len(args) == 0:
		usage(stdout, newFlagSet("kvconf"))
	case len(args) == 1 && args[0] == "exec":
		f, _ := newExecFlagSet()
		execUsage(stdout, f)
	default:
		fmt.Fprintln(stderr, "Usage: kvconf help [exec]")
		return exitUsage
	}
	return exitOK
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
			fmt.Fprintf(stderr, "kvconf backends: %v\n", unknownBackend(args[0], nil))
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
