package supervise

import (
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
)

// Init runs cmd as the one child of a process that is PID 1 (of a
// container, or of a PID namespace), which the kernel makes the parent of
// every orphaned process. Until cmd exits, Init forwards the [Forwarded]
// signals to it and reaps every child that exits, cmd's orphans
// included, with wait4(-1, WNOHANG) on each SIGCHLD. It recognises cmd's
// own status among the reaped ones by its pid, and returns it as
// [Child.ExitCode] does. It installs its own signal handlers for the
// duration of the call.
//
// As it reaps every child of the process, nothing else in the process may
// start or wait for processes while Init runs (see the package
// documentation): the caller is meant to be a small init that runs the
// real work, such as a kvconf supervisor, as cmd.
func Init(cmd *exec.Cmd, log *slog.Logger) (int, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sigs := make(chan os.Signal, 64)
	signal.Notify(sigs, append([]os.Signal{syscall.SIGCHLD}, Forwarded()...)...)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	pid := cmd.Process.Pid
	for {
		// SIGCHLD is not queued: one may stand for several exits, so reap
		// until there is nothing left.
		for {
			var ws syscall.WaitStatus
			wpid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			if err != nil || wpid <= 0 {
				break // ECHILD: no children; 0: none has exited
			}
			if wpid == pid {
				return waitCode(ws), nil
			}
			log.Debug("reaped orphan", "pid", wpid, "status", waitCode(ws))
		}
		sig := <-sigs
		if sig == syscall.SIGCHLD {
			continue
		}
		log.Debug("forwarding signal", "pid", pid, "signal", SignalName(sig))
		if err := syscall.Kill(pid, sig.(syscall.Signal)); err != nil && !errors.Is(err, syscall.ESRCH) {
			log.Warn("signal failed", "pid", pid, "signal", SignalName(sig), "err", err)
		}
	}
}
