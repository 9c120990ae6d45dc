//go:build unix

package plugin

import (
	"os/exec"
	"syscall"
)

// setProcessGroup starts cmd in its own process group, so that a
// terminal's signals reach kvconf only (which then stops the plugin) and
// so that killing the plugin kills the processes it started too.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// killGroup kills the process group of cmd.
func killGroup(cmd *exec.Cmd) {
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // ESRCH: it is gone already
}
