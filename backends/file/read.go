package file

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/kvconf/kvconf/internal/backoff"
)

// chunk is how much readFile reads between checks of its context.
const chunk = 1 << 20

// readFile returns the content of the regular file name. It refuses what
// is not a regular file (a named pipe would block the read until a writer
// comes, a device may never end) without blocking: the file is opened
// non-blocking and checked on the open descriptor, so that a file swapped
// for a pipe between a check and the open is refused too. It reads in
// chunks and stops when ctx is done.
func readFile(ctx context.Context, name string) ([]byte, error) {
	f, err := openNonblock(name)
	if err != nil {
		return nil, fmt.Errorf("file: %w", err)
	}
	defer func() { _ = f.Close() }() // read-only: nothing to lose on Close
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, notRegular(name, fi.Mode())
	}
	size := fi.Size()
	if size < 0 || size > 1<<40 {
		size = 0
	}
	data := make([]byte, 0, size+1)
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("file: read %s: %w", name, err)
		}
		if len(data) == cap(data) {
			data = append(data, 0)[:len(data)]
		}
		end := min(cap(data), len(data)+chunk)
		n, err := f.Read(data[len(data):end])
		data = data[:len(data)+n]
		if errors.Is(err, io.EOF) {
			return data, nil
		}
		if err != nil {
			return nil, fmt.Errorf("file: %w", err)
		}
	}
}

// notRegular is the error for name, of mode, which is neither a regular
// file nor a directory. No retry mends it, so it is marked permanent:
// exec mode's first render gives up at once instead of waiting for
// -wait-backend.
func notRegular(name string, mode fs.FileMode) error {
	return backoff.Permanent(fmt.Errorf("file: %s is %s, not a regular file (-file)", name, modeName(mode)))
}

// modeName describes the type of mode, for errors.
func modeName(mode fs.FileMode) string {
	switch {
	case mode&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case mode&fs.ModeSocket != 0:
		return "a socket"
	case mode&fs.ModeCharDevice != 0:
		return "a character device"
	case mode&fs.ModeDevice != 0:
		return "a device"
	case mode.IsDir():
		return "a directory"
	}
	return "an irregular file"
}

// checkListed refuses a listed path that exists and is neither a regular
// file nor a directory, following symbolic links. A missing path is left
// to the read, which reports it.
func checkListed(name string) error {
	fi, err := os.Stat(name)
	if err != nil {
		return nil
	}
	if m := fi.Mode(); !m.IsRegular() && !m.IsDir() {
		return notRegular(name, m)
	}
	return nil
}
