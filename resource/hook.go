package resource

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"sync"
	"time"
)

// maxHookOutput is how much of a hook's combined output a [HookError] keeps.
const maxHookOutput = 4 << 10

// hookWaitDelay is how long a hook's output pipe may stay open after the
// hook exited or was killed, for example by a daemon it started. It is a
// backstop against a hung Apply, not a timeout of the hook itself.
const hookWaitDelay = time.Second

// HookError reports a check_cmd or reload_cmd that failed: it exited
// non-zero, timed out or could not start. Its message names the hook, the
// command and the cause, but never the output, which may echo rendered
// content; callers that want to show it read Output.
type HookError struct {
	// Hook is "check_cmd" or "reload_cmd".
	Hook string
	// Cmd is the command as run by /bin/sh -c, after {{.src}} and
	// {{.dest}} were replaced.
	Cmd string
	// ExitCode is the command's exit status, or -1 when it did not exit
	// normally (killed, timed out, not started).
	ExitCode int
	// Output is the start of the command's combined stdout and stderr, at
	// most 4 KiB.
	Output []byte
	// Err is the cause: an *exec.ExitError, or an error wrapping
	// context.DeadlineExceeded when the hook timed out, or the context's
	// error when the caller gave up.
	Err error
}

func (e *HookError) Error() string {
	return fmt.Sprintf("%s %q: %v", e.Hook, e.Cmd, e.Err)
}

// Unwrap returns Err.
func (e *HookError) Unwrap() error { return e.Err }

// runHook runs command with /bin/sh within the resource's timeout. The
// shell gets its own process group, and the whole group is killed when the
// timeout expires, so that `sleep` in `sh -c "...; sleep 30"` does not
// outlive it. When ctx is done first (kvconf is stopping), the group gets
// SIGTERM and, if it is still running after the grace period, SIGKILL.
func (r *Resource) runHook(ctx context.Context, hook, command string) error {
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.timeout)
	defer cancel()
	cmd := exec.CommandContext(hctx, "/bin/sh", "-c", command)
	out := &headBuffer{max: maxHookOutput}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = hookWaitDelay
	setProcessGroup(cmd)
	r.log.Debug("running hook", "resource", r.Name, "dest", r.dest, "hook", hook)
	start := time.Now()
	err := cmd.Start()
	if err == nil {
		stopGrace := r.graceOnDone(ctx, cmd, cancel)
		err = cmd.Wait()
		stopGrace()
	}
	if err == nil || (errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState.Success()) {
		r.log.Debug("hook done", "resource", r.Name, "dest", r.dest, "hook", hook, "elapsed", time.Since(start))
		return nil
	}
	he := &HookError{Hook: hook, Cmd: command, ExitCode: -1, Output: out.buf, Err: err}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		he.ExitCode = ee.ExitCode()
	}
	switch {
	case ctx.Err() != nil:
		he.Err = ctx.Err()
	case hctx.Err() != nil:
		he.Err = fmt.Errorf("timed out after %s: %w", r.timeout, hctx.Err())
	}
	return he
}

// graceOnDone arranges that, once ctx is done, cmd's process group gets
// SIGTERM and kill (cancelling cmd's own context, which kills the group)
// runs after the grace period. The returned func undoes what has not
// happened yet.
func (r *Resource) graceOnDone(ctx context.Context, cmd *exec.Cmd, kill context.CancelFunc) (stop func()) {
	var mu sync.Mutex
	var timer *time.Timer
	stopAfter := context.AfterFunc(ctx, func() {
		r.log.Info("stopping hook", "resource", r.Name, "dest", r.dest, "grace", r.grace)
		terminateGroup(cmd)
		mu.Lock()
		timer = time.AfterFunc(r.grace, kill)
		mu.Unlock()
	})
	return func() {
		if stopAfter() {
			return
		}
		mu.Lock()
		if timer != nil {
			timer.Stop()
		}
		mu.Unlock()
	}
}

// headBuffer keeps the first max bytes written to it and drops the rest,
// so that a chatty hook neither blocks nor fills memory.
type headBuffer struct {
	buf []byte
	max int
}

func (b *headBuffer) Write(p []byte) (int, error) {
	if room := b.max - len(b.buf); room > 0 {
		b.buf = append(b.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}
