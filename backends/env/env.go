// Package env is the env backend: it reads keys from the environment of the
// process, with confd's mapping between keys and variable names.
//
// A key maps to a variable name by dropping the leading "/", replacing every
// "/" by "_" and upper-casing ([VarName]): /database/host is DATABASE_HOST. A
// variable maps back to a key by lower-casing, replacing every "_" by "/"
// and adding a leading "/" ([Key]). Snapshot turns each prefix into a
// variable-name prefix the same way and returns every variable whose name
// starts with it, as confd's env backend does: the prefix /app/db returns
// APP_DB_HOST as /app/db/host and APP_DBX as /app/dbx, and "/" returns the
// whole environment.
//
// The environment is read at each Snapshot. The backend has no native watch
// and does not implement [backends.Watcher]; the core polls it.
package env

import (
	"context"
	"crypto/sha256"
	_ "embed" // for Sample
	"encoding/binary"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/kvconf/kvconf/backends"
)

func init() {
	backends.Register("env", func() backends.Config { return new(Config) })
}

// Sample is an annotated example of the env backend's configuration, in
// TOML. The backend takes no options.
//
//go:embed sample.toml
var Sample string

// Config holds the env backend's options. It has none: the zero Config is
// the only one.
type Config struct{}

// Sample returns [Sample], the commented sample configuration.
func (c *Config) Sample() string { return Sample }

// Description returns a one-line description of the env backend.
func (c *Config) Description() string {
	return "environment variables, confd-style: key /app/db/host is variable APP_DB_HOST"
}

// Open opens the env backend; it implements [backends.Config].
func (c *Config) Open(ctx context.Context) (backends.Backend, error) {
	cl, err := New(ctx, *c)
	if err != nil {
		return nil, err
	}
	return cl, nil
}

// Client reads keys from the process environment. Its methods are safe for
// concurrent use.
//
// Its revision is a counter of its own: it starts at 1 with the first
// Snapshot and grows by one each time a Snapshot finds the whole environment
// (every variable, not only those under the requested prefixes) different
// from the one the previous Snapshot saw. Two snapshots with the same
// revision therefore read the same environment, and the revision does not
// move when different callers ask for different prefixes.
type Client struct {
	mu     sync.Mutex
	closed bool
	rev    uint64   // 0 until the first Snapshot
	sum    [32]byte // digest of the environment seen at rev
}

// New returns a client for the process environment. It does no I/O.
func New(ctx context.Context, _ Config) (*Client, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("env: open: %w", err)
	}
	return &Client{}, nil
}

// VarName returns the environment variable that holds key: the key without
// its leading "/", with every "/" replaced by "_", upper-cased. For example
// /database/host is DATABASE_HOST.
func VarName(key string) string {
	return strings.ToUpper(strings.ReplaceAll(strings.TrimPrefix(key, "/"), "/", "_"))
}

// Key returns the key that the environment variable name maps to: "/" and
// the name, lower-cased, with every "_" replaced by "/". For example
// DATABASE_HOST is /database/host. Key is the inverse of [VarName] for keys
// made of lower-case letters, digits and "/".
func Key(name string) string {
	return "/" + strings.ReplaceAll(strings.ToLower(name), "_", "/")
}

// Snapshot returns every variable whose name starts with the variable name
// of one of the prefixes (see [VarName]), keyed by [Key]. When two variables
// map to the same key (DB_HOST and db_host), the upper-case one wins.
func (c *Client) Snapshot(ctx context.Context, prefixes []string) (backends.Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return backends.Snapshot{}, fmt.Errorf("env: snapshot: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return backends.Snapshot{}, fmt.Errorf("env: snapshot: %w", backends.ErrClosed)
	}

	environ := os.Environ()
	slices.Sort(environ)
	if sum := digest(environ); c.rev == 0 || sum != c.sum {
		c.rev++
		c.sum = sum
	}

	names := make([]string, len(prefixes))
	for i, p := range prefixes {
		names[i] = VarName(p)
	}
	kvs := make(map[string]string)
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			continue
		}
		if !slices.ContainsFunc(names, func(p string) bool { return strings.HasPrefix(name, p) }) {
			continue
		}
		key := Key(name)
		if _, dup := kvs[key]; dup && name != VarName(key) {
			continue
		}
		kvs[key] = value
	}
	return backends.Snapshot{Rev: c.rev, KVs: kvs}, nil
}

// Close marks the client closed; later calls return [backends.ErrClosed].
// It is idempotent.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return nil
}

// digest returns a digest of the sorted environment, each entry
// length-prefixed so that no two environments share an encoding.
func digest(environ []string) [32]byte {
	h := sha256.New()
	var n [8]byte
	for _, kv := range environ {
		binary.BigEndian.PutUint64(n[:], uint64(len(kv)))
		h.Write(n[:])
		h.Write([]byte(kv))
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}

var (
	_ backends.Backend   = (*Client)(nil)
	_ backends.Config    = (*Config)(nil)
	_ backends.Describer = (*Config)(nil)
)

var _ backends.Sampler = (*Config)(nil)
