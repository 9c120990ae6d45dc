//go:build !unix

package resource

import (
	"io/fs"
	"os/exec"
)

// fileOwner returns -1, -1: file owners are a Unix notion.
func fileOwner(fs.FileInfo) (uid, gid int) { return -1, -1 }

// setProcessGroup leaves cmd as it is.
func setProcessGroup(*exec.Cmd) {}
