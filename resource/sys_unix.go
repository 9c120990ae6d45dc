//go:build unix

package resource

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"syscall"
)

// fileOwner returns the uid and gid of fi.
func fileOwner(fi fs.FileInfo) (uid, gid int) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return -1, -1
	}
	return int(st.Uid), int(st.Gid)
}

// openNoFollow opens the file p for reading without following a symbolic
// link at p (the error is then ELOOP, see [isLinkErr]) and without
// blocking when p is a FIFO.
func openNoFollow(p string) (*os.File, error) {
	return os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
}

// isLinkErr reports whether err is [openNoFollow]'s error for a symbolic
// link.
func isLinkErr(err error) bool { return errors.Is(err, syscall.ELOOP) }

// setProcessGroup starts cmd in its own process group and makes its
// cancellation kill the whole group.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if errors.Is(err, syscall.ESRCH) {
			return os.ErrProcessDone
		}
		return err
	}
}

// terminateGroup sends SIGTERM to cmd's process group.
func terminateGroup(cmd *exec.Cmd) {
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) // ESRCH: it is gone already
}
