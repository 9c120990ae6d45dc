//go:build !unix

package plugin

import "os/exec"

// setProcessGroup leaves cmd as it is.
func setProcessGroup(*exec.Cmd) {}

// killGroup kills the process of cmd.
func killGroup(cmd *exec.Cmd) {
	_ = cmd.Process.Kill() // fails only once it is gone
}
