//go:build !unix

package file

import "os"

// openNonblock opens name for reading.
func openNonblock(name string) (*os.File, error) {
	return os.Open(name)
}
