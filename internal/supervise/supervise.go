// Package supervise runs one command as a child of the current process:
// it forwards signals to it, stops it with a grace period, and turns its
// end into an exit code. [Init] adds what a process running as PID 1 owes
// the system: reaping every orphan that the kernel hands it.
//
// The two roles live in different processes on purpose. A supervisor that
// also reaped with wait4(-1) would steal the exit status of every other
// child of its process, such as the check_cmd and reload_cmd hooks that
// kvconf runs through os/exec, whose Wait would then fail with ECHILD. So
// [Supervise] waits for its own child only (exec.Cmd.Wait), and [Init],
// meant for a process that does nothing else, reaps everything and picks
// its child's status out of what it reaps.
package supervise

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Forwarded returns the signals a supervisor passes on to its child:
// SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2 and SIGWINCH.
func Forwarded() []os.Signal {
	return []os.Signal{
		syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGHUP,
		syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH,
	}
}

// Child is a started command whose end is being waited for.
type Child struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // Wait's, valid once done is closed
}

// Start starts cmd and waits for it in the background. The caller must not
// call cmd.Wait.
func Start(cmd *exec.Cmd) (*Child, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &Child{cmd: cmd, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// Pid is the child's process ID.
func (c *Child) Pid() int { return c.cmd.Process.Pid }

// Done is closed once the child has exited and been waited for.
func (c *Child) Done() <-chan struct{} { return c.done }

// Signal sends sig to the child. After the child has been waited for it
// returns an error wrapping [os.ErrProcessDone], and never hits another
// process that got the same pid.
func (c *Child) Signal(sig os.Signal) error { return c.cmd.Process.Signal(sig) }

// ExitCode is the child's exit status once [Child.Done] is closed: its
// exit code, or 128 plus the signal number when a signal ended it, as
// shells report it. It is -1 while the child runs.
func (c *Child) ExitCode() int {
	select {
	case <-c.done:
	default:
		return -1
	}
	return exitCode(c.cmd.ProcessState)
}

// Err is the error of waiting for the child, once [Child.Done] is closed:
// an *exec.ExitError when it did not exit with status 0.
func (c *Child) Err() error {
	<-c.done
	return c.err
}

// exitCode is a finished process's status as a shell reports it.
func exitCode(ps *os.ProcessState) int {
	if ps == nil {
		return -1
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok {
		return waitCode(ws)
	}
	return ps.ExitCode()
}

// waitCode is a wait status as a shell reports it: the exit code, or 128
// plus the number of the signal that ended the process.
func waitCode(ws syscall.WaitStatus) int {
	switch {
	case ws.Exited():
		return ws.ExitStatus()
	case ws.Signaled():
		return 128 + int(ws.Signal())
	}
	return -1
}

// Options configure [Supervise].
type Options struct {
	// Signals delivers the signals the process received; each is
	// forwarded to the child. SIGTERM and SIGINT also arm KillTimeout.
	Signals <-chan os.Signal
	// KillTimeout is how long the child has to exit after it was asked
	// to stop (a forwarded SIGTERM or SIGINT, or ctx done) before it gets
	// SIGKILL. Zero kills it at once.
	KillTimeout time.Duration
	// Logger receives the forwarded signals (debug) and a kill (warn);
	// nil discards them.
	Logger *slog.Logger
}

// Supervise forwards signals to c until it exits and returns its
// [Child.ExitCode]. When ctx is done it sends the child SIGTERM, as a
// forwarded SIGTERM does; either way the child gets SIGKILL if it is still
// running [Options.KillTimeout] after the first stop request.
func Supervise(ctx context.Context, c *Child, opts Options) int {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var (
		timer *time.Timer // armed by the first stop request
		kill  <-chan time.Time
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	stop := func(sig os.Signal) {
		if err := c.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
			log.Warn("signal failed", "pid", c.Pid(), "signal", SignalName(sig), "err", err)
		}
		if timer == nil {
			timer = time.NewTimer(opts.KillTimeout)
			kill = timer.C
		}
	}
	ctxDone := ctx.Done()
	for {
		select {
		case <-c.Done():
			return c.ExitCode()
		case sig := <-opts.Signals:
			log.Debug("forwarding signal", "pid", c.Pid(), "signal", SignalName(sig))
			if sig == syscall.SIGTERM || sig == syscall.SIGINT {
				stop(sig)
				continue
			}
			if err := c.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
				log.Warn("signal failed", "pid", c.Pid(), "signal", SignalName(sig), "err", err)
			}
		case <-ctxDone:
			ctxDone = nil
			log.Debug("stopping child", "pid", c.Pid(), "signal", "SIGTERM")
			stop(syscall.SIGTERM)
		case <-kill:
			kill = nil
			log.Warn("killing child", "pid", c.Pid(), "kill_timeout", opts.KillTimeout)
			if err := c.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
				log.Warn("signal failed", "pid", c.Pid(), "signal", "SIGKILL", "err", err)
			}
		}
	}
}

// StartError is a command that could not be started. Code is the exit
// code a shell would give: 127 when the command was not found, 126 when it
// was found but could not be run.
type StartError struct {
	Cmd  string
	Code int
	Err  error
}

func (e *StartError) Error() string { return fmt.Sprintf("start %s: %v", e.Cmd, e.Err) }

// Unwrap returns Err.
func (e *StartError) Unwrap() error { return e.Err }

// LookPath resolves name as [exec.LookPath] does, and reports a failure as
// a [*StartError].
func LookPath(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		code := 126
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			code = 127
		}
		return "", &StartError{Cmd: name, Code: code, Err: err}
	}
	return p, nil
}
