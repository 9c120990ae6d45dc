//go:build unix

package file

import (
	"os"
	"syscall"
)

// openNonblock opens name for reading without blocking: opening a named
// pipe waits for a writer, unless O_NONBLOCK is set. Reads of regular files
// are not affected by the flag.
func openNonblock(name string) (*os.File, error) {
	return os.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
}
