// Package file is the file backend: it reads keys from YAML or JSON files,
// as confd's file backend does.
//
// Each file holds a map. Nested maps become paths and list items are
// numbered: the value at database.hosts[1] is the key /database/hosts/1.
// [Client.Snapshot] gives the rules, and where they depart from confd's.
// The files are read in the order of [Config.File], directories
// recursively; a key in a later file overrides the same key in an earlier
// one.
//
// The files are read again at each Snapshot. [Client.Watch] waits for them
// to change, with fsnotify: it watches the directories that hold them, not
// the files themselves, so that it keeps working when an editor or a
// configuration tool replaces a file by renaming a new one over it, or
// deletes it and writes it again. It tells the changed keys, and only those
// under the prefixes watched.
package file

import (
	"context"
	_ "embed" // for Sample
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kvconf/kvconf/backends"
)

func init() {
	backends.Register("file", func() backends.Config { return new(Config) })
}

// Sample is an annotated example of the file backend's configuration, in
// TOML.
//
//go:embed sample.toml
var Sample string

// Config holds the file backend's options, with confd's names.
type Config struct {
	// File lists the files and directories to read, in order. Directories
	// are read recursively, taking the files whose base name matches
	// Filter, in lexical order. Files listed here are read whatever their
	// name.
	File []string `toml:"file"`
	// Filter is a glob, in the syntax of [filepath.Match], for the base
	// names of the files found in directories. Empty means "*", every
	// file (hidden ones too, as with confd).
	Filter string `toml:"filter"`
}

// Sample returns [Sample], the commented sample configuration.
func (c *Config) Sample() string { return Sample }

// Description returns a one-line description of the file backend.
func (c *Config) Description() string {
	return "YAML or JSON files, flattened confd-style: database.host is key /database/host"
}

// Validate reports a config with no file, an empty file name or a malformed
// filter.
func (c *Config) Validate() error {
	if len(c.File) == 0 {
		return errors.New("file: no file given (option file)")
	}
	if slices.Contains(c.File, "") {
		return errors.New("file: empty file name (option file)")
	}
	if _, err := filepath.Match(c.Filter, ""); err != nil {
		return fmt.Errorf("file: filter %q: %w", c.Filter, err)
	}
	return nil
}

// Open opens the file backend; it implements [backends.Config].
func (c *Config) Open(ctx context.Context) (backends.Backend, error) {
	cl, err := New(ctx, *c)
	if err != nil {
		return nil, err
	}
	return cl, nil
}

// Client reads keys from files. Its methods are safe for concurrent use;
// the files are read by one call at a time.
//
// Its revision is a counter of its own: it starts at 1 with the first read
// of the files and grows by one each time a read finds their content (every
// key, not only those under the requested prefixes) different from what the
// previous successful read found. Snapshot reads the files; so does Watch,
// when it starts and after the files changed on disk. Two snapshots with
// the same revision therefore hold the same content, and the revision does
// not move when the files are rewritten with the same content, when a read
// fails, or when different callers ask for different prefixes. The counter
// lives in the Client: a new Client starts again at 1.
type Client struct {
	files  []string
	filter string
	// quiet and maxWait shape the debounce of Watch: the files are read
	// once no event came for quiet, or maxWait after the first event of a
	// burst that does not stop.
	quiet, maxWait time.Duration

	mu        sync.Mutex
	closed    bool
	rev       uint64            // 0 until the first successful read
	kvs       map[string]string // every key read at rev; never modified
	log       []revChanges      // the changes of each revision after compacted
	logged    int               // the number of changes in log
	compacted uint64            // log holds every change after this revision
	err       error             // the error of the last read, nil if it succeeded
	gen       uint64            // counts the reads recorded, failed ones included
	wake      chan struct{}     // closed when a read is recorded, and on Close
	w         *watcher          // nil until the first Watch
}

// Debounce of Watch, see [Client].
const (
	quiet   = 50 * time.Millisecond
	maxWait = time.Second
)

// New returns a client for the files of cfg, after checking cfg (see
// [Config.Validate]). It refuses a listed path that is neither a regular
// file nor a directory (a named pipe, a device, a socket), which would
// block or never end; otherwise it reads nothing: a missing file is
// reported by Snapshot.
func New(ctx context.Context, cfg Config) (*Client, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("file: open: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	for _, name := range cfg.File {
		if err := checkListed(name); err != nil {
			return nil, err
		}
	}
	filter := cfg.Filter
	if filter == "" {
		filter = "*"
	}
	return &Client{files: slices.Clone(cfg.File), filter: filter, quiet: quiet, maxWait: maxWait}, nil
}

// Snapshot reads every file and returns the keys that start with one of
// prefixes, at the revision described on [Client]. A file that cannot be
// read or parsed is an error naming it; an empty file gives no key.
//
// A file holds a YAML (or JSON) map, flattened as confd does:
//
//   - a map value descends: the key k under p is path.Join(p, k), so keys
//     that contain "/" nest and keys are always clean paths;
//   - a list item descends under its index: /hosts/0, /hosts/1;
//   - a string is kept as is; a boolean is "true" or "false"; an integer is
//     written in decimal (0x1F is "31"); a float is written with the fewest
//     digits that read back the same, without exponent (1.50 is "1.5", 1e3
//     is "1000", .inf is "+Inf");
//   - null, an empty map and an empty list give no key, as with confd (a
//     null in a later file therefore leaves an earlier file's value);
//   - two leaves of one file at the same key path are an error naming the
//     file, the path and both lines: "" and "." under one map both give
//     the map's path, "a/b" gives the same path as b under a. confd kept
//     one of them at random (Go's map order).
//
// Confd read YAML 1.1 with gopkg.in/yaml.v2 and kvconf reads YAML 1.2 with
// go.yaml.in/yaml/v3; the differences that would change a value are undone:
// the unquoted YAML 1.1 booleans (y, yes, on, n, no, off, in their three
// casings) are "true" or "false", and timestamps keep their text. Two
// departures from confd are deliberate: an integer too large for 64 bits
// keeps its text (confd rounded it through a float64), and an integer
// between the int64 and uint64 limits is written in decimal (confd dropped
// it). Map keys are taken as written ("1", "true", "~"), where confd failed
// on keys that were not strings. Only the first document of a file is read,
// as with confd, and a duplicated key is an error. A listed path that is
// neither a regular file nor a directory (a named pipe, a device) is
// refused; so is a file in a listed directory that turns into one between
// the listing and the read. Reading and parsing stop soon after ctx is
// done, however large the file.
func (c *Client) Snapshot(ctx context.Context, prefixes []string) (backends.Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return backends.Snapshot{}, fmt.Errorf("file: snapshot: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return backends.Snapshot{}, fmt.Errorf("file: snapshot: %w", backends.ErrClosed)
	}
	if err := c.refresh(ctx); err != nil {
		return backends.Snapshot{}, err
	}
	return c.snapshot(prefixes), nil
}

// snapshot returns the keys under prefixes at c.rev. c.mu is held.
func (c *Client) snapshot(prefixes []string) backends.Snapshot {
	kvs := make(map[string]string)
	for k, v := range c.kvs {
		if under(k, prefixes) {
			kvs[k] = v
		}
	}
	return backends.Snapshot{Rev: c.rev, KVs: kvs}
}

// refresh reads the files and records the outcome: a new revision if the
// content changed, and in c.err what went wrong. When the client watches,
// it first brings the watches up to date, so that a change made after the
// read is seen; a failure there goes to c.err, where Watch finds it, but
// not to the result, which is the error of the read. refresh wakes the
// pending Watch calls. A read stopped by ctx records nothing. c.mu is held.
func (c *Client) refresh(ctx context.Context) error {
	var werr error
	if c.w != nil {
		werr = c.w.sync(c.files)
	}
	kvs, err := c.read(ctx)
	if err != nil && ctx.Err() != nil {
		return err
	}
	if err == nil {
		c.record(kvs)
	}
	c.gen++
	c.err = errors.Join(err, werr)
	c.notify()
	return err
}

// notify wakes the pending Watch calls. c.mu is held.
func (c *Client) notify() {
	if c.wake != nil {
		close(c.wake)
		c.wake = nil
	}
}

// wakeChan returns the channel that the next [Client.notify] closes. c.mu
// is held.
func (c *Client) wakeChan() <-chan struct{} {
	if c.wake == nil {
		c.wake = make(chan struct{})
	}
	return c.wake
}

// Close marks the client closed, and stops the watch that Watch started
// and waits for it. Pending and later calls return [backends.ErrClosed]. It
// is idempotent.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	c.notify()
	w := c.w
	c.mu.Unlock()
	if w == nil {
		return nil
	}
	return w.stop()
}

// read lists the files and merges their keys, later files winning.
func (c *Client) read(ctx context.Context) (map[string]string, error) {
	var names []string
	for _, root := range c.files {
		found, err := list(root, c.filter)
		if err != nil {
			return nil, err
		}
		names = append(names, found...)
	}
	kvs := make(map[string]string)
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("file: snapshot: %w", err)
		}
		data, err := readFile(ctx, name)
		if err != nil {
			return nil, err
		}
		if err := flatten(ctx, data, kvs); err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("file: parse %s: %w", name, ctx.Err())
			}
			return nil, fmt.Errorf("file: parse %s: %w", name, err)
		}
	}
	return kvs, nil
}

// list returns root if it is a file, or the files under it, recursively,
// whose base name matches filter, in lexical order (confd's
// util.RecursiveFilesLookup). As with confd, symbolic links to files are
// followed and symbolic links to directories are not descended. Unlike
// confd, it skips what is not a regular file in a directory (a FIFO would
// block the read), and refuses a root that is neither a regular file nor a
// directory.
func list(root, filter string) ([]string, error) {
	fi, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("file: %w", err)
	}
	if !fi.IsDir() {
		if !fi.Mode().IsRegular() {
			return nil, notRegular(root, fi.Mode())
		}
		return []string{root}, nil
	}
	var files []string
	var walk func(dir string) error
	walk = func(dir string) error {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("file: %w", err)
		}
		for _, e := range entries {
			name := filepath.Join(dir, e.Name())
			if e.IsDir() {
				if err := walk(name); err != nil {
					return err
				}
				continue
			}
			if ok, _ := filepath.Match(filter, e.Name()); !ok {
				continue
			}
			mode := e.Type()
			if mode&fs.ModeSymlink != 0 {
				fi, err := os.Stat(name)
				if err != nil {
					return fmt.Errorf("file: %w", err)
				}
				mode = fi.Mode()
			}
			if mode.IsRegular() {
				files = append(files, name)
			}
		}
		return nil
	}
	if err := walk(root); err != nil {
		return nil, err
	}
	return files, nil
}

// under reports whether key starts with one of prefixes.
func under(key string, prefixes []string) bool {
	return slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(key, p) })
}

var (
	_ backends.Backend   = (*Client)(nil)
	_ backends.Watcher   = (*Client)(nil)
	_ backends.Config    = (*Config)(nil)
	_ backends.Validator = (*Config)(nil)
	_ backends.Describer = (*Config)(nil)
	_ backends.Sampler   = (*Config)(nil)
)
