//go:build !unix

package resource

import (
	"io/fs"
	"os"
	"os/exec"
)

// fileOwner returns -1, -1: file owners are a Unix notion.
func fileOwner(fs.FileInfo) (uid, gid int) { return -1, -1 }

// openNoFollow opens the file p for reading.
func openNoFollow(p string) (*os.File, error) { return os.Open(p) }

// isLinkErr reports false: [openNoFollow] follows links here.
func isLinkErr(error) bool { return false }

// setProcessGroup leaves cmd as it is.
func setProcessGroup(*exec.Cmd) {}

// terminateGroup asks cmd's process to stop.
func terminateGroup(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(os.Interrupt) // an error: it is gone already, or cannot be asked
}
