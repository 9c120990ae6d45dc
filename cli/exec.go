package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kvconf/kvconf/internal/backoff"
	"github.com/kvconf/kvconf/internal/supervise"
	"github.com/kvconf/kvconf/resource"
)

// Defaults of the exec subcommand's own flags.
const (
	defaultWaitBackend = 30 * time.Second
	defaultKillTimeout = 10 * time.Second
)

// firstRetries paces the retries of the first render in exec mode, within
// -wait-backend.
var firstRetries = backoff.Policy{Min: 250 * time.Millisecond, Max: 5 * time.Second}

// reloadCoalesce is how long the reload signal waits after the first
// update that calls for it, so that the resources of one render burst,
// which render concurrently, cause one signal rather than one each.
const reloadCoalesce = 100 * time.Millisecond

// execConfig is what the exec subcommand was asked to do.
type execConfig struct {
	waitBackend  time.Duration
	killTimeout  time.Duration
	reloadSignal syscall.Signal
	once         bool
	command      []string // COMMAND [ARGS...]
}

// exec is "kvconf exec [flags] -- COMMAND [ARGS...]": render every
// resource (waiting up to -wait-backend for the backend), then run COMMAND
// as a child that gets -reload-signal whenever a dest without a reload_cmd
// changes and every forwarded signal, and exit with its exit code. With
// -once, COMMAND replaces kvconf after the render instead. ctx done stops
// the command as a forwarded SIGTERM does.
func (c command) exec(ctx context.Context, args []string) int {
	stderr := c.stderr
	fs, ef := newExecFlagSet()
	fs.SetOutput(stderr)
	fs.Usage = func() { execUsage(stderr, fs) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	usage := func(err error) int {
		fmt.Fprintf(stderr, "kvconf exec: %v\n", err)
		return exitUsage
	}
	origins, err := applyExecEnv(fs.FlagSet, c.getenv)
	if err != nil {
		return usage(err)
	}
	conf, err := load(fs, c.getenv)
	if err != nil {
		return usage(err)
	}
	if conf.Version {
		fmt.Fprintf(c.stdout, "kvconf %s\n", versionString())
		return exitOK
	}
	command, err := commandArgs(args, fs.Args())
	if err != nil {
		return usage(err)
	}
	cfg := execConfig{waitBackend: *ef.waitBackend, killTimeout: *ef.killTimeout, once: *ef.once, command: command}
	if cfg.reloadSignal, err = supervise.ParseSignal(*ef.reloadSignal); err != nil {
		return usage(fmt.Errorf("%s: %w", origins["reload-signal"], err))
	}
	for name, d := range map[string]time.Duration{"wait-backend": cfg.waitBackend, "kill-timeout": cfg.killTimeout} {
		if d < 0 {
			return usage(fmt.Errorf("%s: %s is negative", origins[name], d))
		}
	}
	for name, on := range map[string]bool{"onetime": conf.Onetime, "noop": conf.Noop} {
		if on {
			return usage(fmt.Errorf("%s: not available with exec (use -once to render once and run COMMAND)", conf.origin(name)))
		}
	}
	log := newLogger(conf.LogLevel, conf.LogFormat, stderr)
	if c.ops, err = newOps(conf.Listen, c.getenv, log); err != nil {
		return usage(err)
	} else if cfg.once {
		c.ops = nil // COMMAND replaces kvconf: nothing would serve or notify
	}
	opts := conf.resourceOptions(log)
	opts.Diff = c.stdout
	opts.Observer = c.ops.observer()
	p, err := newPoolFor(conf, log)
	if err != nil {
		return usage(err)
	}
	p.ops = c.ops
	opts.Backends = p.names()
	rs, err := resource.LoadDir(opts)
	if err != nil {
		return usage(err)
	}
	if len(rs) == 0 {
		log.Warn("no template resources", "confdir", opts.ConfDir)
	}
	if !cfg.once && os.Getpid() == 1 {
		return c.initExec(args, log)
	}

	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, supervise.Forwarded()...)
	defer signal.Stop(sigs)
	defer p.close()
	if err := c.ops.start(ctx, p, rs); err != nil {
		fmt.Fprintf(stderr, "kvconf exec: %v\n", err)
		return exitFailed
	}
	defer c.ops.close()
	if code, ok := c.firstRender(ctx, sigs, p, rs, cfg, log); !ok {
		return code
	}
	path, err := supervise.LookPath(cfg.command[0])
	if err != nil {
		fmt.Fprintf(stderr, "kvconf exec: %v\n", err)
		var se *supervise.StartError
		if errors.As(err, &se) {
			return se.Code
		}
		return exitFailed
	}
	if cfg.once {
		return c.execOnce(p, path, cfg.command, log)
	}
	return c.supervise(ctx, supervision{sigs: sigs, pool: p, resources: rs, path: path, exec: cfg, syncOnly: opts.SyncOnly, run: conf.runOptions(log), log: log})
}

// execFlags are where the values of the flags of exec alone land.
type execFlags struct {
	waitBackend, killTimeout *time.Duration
	reloadSignal             *string
	once                     *bool
}

// newExecFlagSet returns the flags of "kvconf exec": kvconf's and its own.
func newExecFlagSet() (*flags, execFlags) {
	fs := newFlagSet("kvconf exec")
	return fs, execFlags{
		waitBackend:  fs.Duration("wait-backend", defaultWaitBackend, "exec: how long to retry the first render while the backend or a resource fails"),
		reloadSignal: fs.String("reload-signal", "SIGHUP", "exec: signal sent to COMMAND when a dest without reload_cmd changes (SIGUSR2, USR2, ...)"),
		killTimeout:  fs.Duration("kill-timeout", defaultKillTimeout, "exec: how long COMMAND has to exit after SIGTERM or SIGINT before it gets SIGKILL"),
		once:         fs.Bool("once", false, "exec: render once, then replace kvconf with COMMAND (no supervision)"),
	}
}

// applyExecEnv sets each exec flag that is not on the command line from
// its KVCONF_<FLAG> variable, and returns where each one's value comes
// from, for error messages.
func applyExecEnv(fs *flag.FlagSet, getenv func(string) (string, bool)) (map[string]source, error) {
	onCmdline := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCmdline[f.Name] = true })
	origins := map[string]source{}
	// The flags that only "kvconf exec" takes.
	for _, name := range []string{"wait-backend", "reload-signal", "kill-timeout", "once"} {
		origins[name] = source("flag -" + name)
		if onCmdline[name] {
			continue
		}
		env := envName(name)
		v, ok := getenv(env)
		if !ok {
			continue
		}
		if err := fs.Set(name, v); err != nil {
			return nil, fmt.Errorf("environment %s: %w", env, err)
		}
		origins[name] = source("environment " + env)
	}
	return origins, nil
}

// commandArgs returns the command after the "--" that ends the flags.
func commandArgs(args, rest []string) ([]string, error) {
	dash := len(args) - len(rest) - 1
	if dash < 0 || args[dash] != "--" {
		if len(rest) == 0 {
			return nil, errors.New("missing -- COMMAND: usage: kvconf exec [flags] -- COMMAND [ARGS...]")
		}
		return nil, fmt.Errorf("unexpected argument %q: put the command after --: kvconf exec [flags] -- COMMAND [ARGS...]", rest[0])
	}
	if len(rest) == 0 {
		return nil, errors.New("missing COMMAND after --: usage: kvconf exec [flags] -- COMMAND [ARGS...]")
	}
	return rest, nil
}

// firstRender renders every resource, retrying for up to -wait-backend
// while a backend or a resource fails. It reports whether every resource
// rendered; if not, it returns the exit code: the failures are reported,
// or SIGTERM or SIGINT came first (128 plus its number). Other signals
// that arrive meanwhile are dropped: there is no child to forward them to
// yet. The backends opened stay open in p.
func (c command) firstRender(ctx context.Context, sigs <-chan os.Signal, p *pool, rs []*resource.Resource, cfg execConfig, log *slog.Logger) (int, bool) {
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopped := make(chan os.Signal, 1)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-quit:
				return
			case sig := <-sigs:
				if sig == syscall.SIGTERM || sig == syscall.SIGINT {
					stopped <- sig
					cancel()
					return
				}
				log.Debug("signal dropped before start", "signal", supervise.SignalName(sig))
			}
		}
	})
	stopRunning := c.ops.running() // /health: the first render is kvconf's loop for now
	err := renderWithRetry(rctx, p, rs, cfg.waitBackend, log)
	stopRunning()
	close(quit)
	wg.Wait()
	select {
	case sig := <-stopped:
		log.Info("stopped before start", "signal", supervise.SignalName(sig))
		return 128 + int(sig.(syscall.Signal)), false
	default:
	}
	if err != nil {
		reportFailures(c.stderr, err, len(rs))
		fmt.Fprintf(c.stderr, "kvconf exec: %s not started\n", cfg.command[0])
		return exitFailed, false
	}
	return exitOK, true
}

// renderWithRetry renders every resource once, each from its backend
// (opened on the first attempt that needs it), retrying with backoff until
// every resource rendered, wait has passed, ctx is done or an error is one
// no retry can mend ([backoff.IsPermanent]). It returns the
// last error when it gives up.
func renderWithRetry(ctx context.Context, p *pool, rs []*resource.Resource, wait time.Duration, log *slog.Logger) error {
	deadline := time.Now().Add(wait)
	for attempt := 1; ; attempt++ {
		err := p.once(ctx, rs)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || backoff.IsPermanent(err) {
			return err
		}
		d := min(firstRetries.Delay(attempt), time.Until(deadline))
		if d <= 0 {
			return err
		}
		log.Warn("first render failed; retrying", "attempt", attempt, "in", d, "err", err)
		if backoff.Sleep(ctx, d) != nil {
			return err
		}
	}
}

// execOnce replaces kvconf with the command, which keeps kvconf's pid,
// stdio and environment. It returns only when that fails.
func (c command) execOnce(p *pool, path string, command []string, log *slog.Logger) int {
	p.close()
	signal.Reset(supervise.Forwarded()...)
	log.Debug("exec", "command", command[0], "path", path)
	err := syscall.Exec(path, command, os.Environ())
	fmt.Fprintf(c.stderr, "kvconf exec: %v\n", &supervise.StartError{Cmd: command[0], Code: 126, Err: err})
	return 126
}

// initExec runs when kvconf exec is PID 1: it runs "kvconf exec" again, as
// its child, and is the init of the container meanwhile: it forwards
// signals to that child and reaps every orphan (see [supervise.Init] for
// why this takes a second process).
func (c command) initExec(args []string, log *slog.Logger) int {
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(c.stderr, "kvconf exec: as PID 1: %v\n", err)
		return exitFailed
	}
	cmd := exec.Command(self, append([]string{"exec"}, args...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	log.Debug("PID 1: starting the supervisor", "path", self)
	code, err := supervise.Init(cmd, log)
	if err != nil {
		fmt.Fprintf(c.stderr, "kvconf exec: as PID 1: start %s: %v\n", self, err)
		return exitFailed
	}
	return code
}

// supervision is what [command.supervise] runs.
type supervision struct {
	sigs      <-chan os.Signal // the signals to forward
	pool      *pool            // the backends, open after the first render
	resources []*resource.Resource
	path      string     // COMMAND, looked up
	exec      execConfig // the exec flags and COMMAND's arguments
	syncOnly  bool       // -sync-only: no reload_cmd runs, so COMMAND is signalled
	run       resource.RunOptions
	log       *slog.Logger
}

// supervise starts the command, keeps the resources up to date while it
// runs, reloads it when a dest without reload_cmd changes and returns its
// exit code once it has exited.
func (c command) supervise(ctx context.Context, sv supervision) int {
	cfg, log, p, rs, ropts := sv.exec, sv.log, sv.pool, sv.resources, sv.run
	cmd := exec.Command(sv.path)
	cmd.Args = cfg.command
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	child, err := supervise.Start(cmd)
	if err != nil {
		fmt.Fprintf(c.stderr, "kvconf exec: %v\n", &supervise.StartError{Cmd: cfg.command[0], Code: 126, Err: err})
		return 126
	}
	pid := child.Pid()
	log.Info("started", "command", cfg.command[0], "pid", pid, "reload_signal", supervise.SignalName(cfg.reloadSignal))

	rel := newReloader(child.Signal, cfg.reloadSignal, log.With("pid", pid))
	hasReload := map[string]bool{}
	for _, r := range rs {
		// The signal applier signals the child; an applier that applied a
		// change live (resource.Applied) needs no signal either.
		r.SetSignal(child.Signal)
		// reload_cmd runs unless -sync-only; then the child is signalled.
		hasReload[r.Name] = r.Config.ReloadCmd != "" && !sv.syncOnly
	}
	ropts.OnRender = func(name string, res resource.Result, _ error) {
		if res != resource.Updated {
			return
		}
		if hasReload[name] {
			log.Debug("reloaded by reload_cmd", "resource", name)
			return
		}
		rel.request(name)
	}

	// Run and the reloader outlive ctx: they stop when the child has
	// exited, which may be -kill-timeout after ctx is done.
	runCtx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	supCtx, stopSup := context.WithCancel(ctx)
	defer stopSup()
	var (
		wg     sync.WaitGroup
		runErr error
	)
	wg.Go(func() {
		err := p.run(runCtx, rs, ropts)
		if runCtx.Err() == nil {
			runErr = err
			stopSup() // kvconf no longer keeps the files up to date: stop the child
		}
	})
	wg.Go(func() { rel.run(runCtx) })
	code := supervise.Supervise(supCtx, child, supervise.Options{Signals: sv.sigs, KillTimeout: cfg.killTimeout, Logger: log})
	stopRun()
	wg.Wait()
	log.Info("exited", "command", cfg.command[0], "pid", pid, "code", code)
	if runErr != nil {
		fmt.Fprintf(c.stderr, "kvconf exec: %v\n", runErr)
		return exitFailed
	}
	return code
}

// reloader sends the reload signal to the child for the updated resources
// that have no reload_cmd, once per burst of updates.
type reloader struct {
	signal func(os.Signal) error // the child's
	sig    syscall.Signal
	log    *slog.Logger
	kick   chan struct{} // capacity 1

	mu    sync.Mutex
	names map[string]bool // the resources updated since the last signal
}

// newReloader returns a reloader that sends sig through signal.
func newReloader(signal func(os.Signal) error, sig syscall.Signal, log *slog.Logger) *reloader {
	return &reloader{signal: signal, sig: sig, log: log, kick: make(chan struct{}, 1), names: map[string]bool{}}
}

// request asks for a reload on behalf of the named resource. It does not
// block.
func (r *reloader) request(name string) {
	r.mu.Lock()
	r.names[name] = true
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// run sends the signal after each request, [reloadCoalesce] after the
// first of a burst, until ctx is done.
func (r *reloader) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
		}
		t := time.NewTimer(reloadCoalesce)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		r.mu.Lock()
		names := make([]string, 0, len(r.names))
		for n := range r.names {
			names = append(names, n)
		}
		clear(r.names)
		r.mu.Unlock()
		if len(names) == 0 {
			continue // a kick for names that the previous signal covered
		}
		slices.Sort(names)
		if err := r.signal(r.sig); err != nil {
			if !errors.Is(err, os.ErrProcessDone) {
				r.log.Warn("reload signal failed", "signal", supervise.SignalName(r.sig), "err", err)
			}
			continue
		}
		r.log.Info("reload signal sent", "signal", supervise.SignalName(r.sig), "resources", strings.Join(names, ","))
	}
}
