package metadata

import (
	"context"
	"fmt"
	"time"

	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/internal/backoff"
)

// Watch waits until a key under prefixes changed after revision after,
// then returns the changes. With after == 0 it reads the sub-trees of
// prefixes and returns at once with the revision. With after older (or
// newer) than the client's revision, or when the sub-trees of prefixes
// were not all read at after, it reads them and returns them whole.
//
// Otherwise it waits, in the way the package documentation describes:
// for a long poll to answer a new version, or for the next poll interval.
// It then reads the sub-trees again and compares them with those it had
// at after, under prefixes: it returns the keys set and deleted, sorted,
// or waits again if there are none. A failed request is returned as an
// error (the caller keeps what it had and calls again). In auto mode, a
// server that lost its /version is polled from then on.
func (c *Client) Watch(ctx context.Context, prefixes []string, after uint64) (backends.Update, error) {
	ctx, end, err := c.begin(ctx, "watch")
	if err != nil {
		return backends.Update{}, err
	}
	defer end()
	u, err := c.watch(ctx, prefixes, after)
	if err != nil {
		return backends.Update{}, fail(ctx, "watch", err)
	}
	return u, nil
}

func (c *Client) watch(ctx context.Context, prefixes []string, after uint64) (backends.Update, error) {
	ds := dirs(prefixes)
	if after == 0 {
		s, err := c.snapshot(ctx, prefixes)
		if err != nil {
			return backends.Update{}, err
		}
		return backends.Update{Rev: s.Rev}, nil
	}
	c.mu.Lock()
	old, ok := c.assemble(ds, prefixes)
	ok = ok && c.rev == after
	version := c.version
	c.mu.Unlock()
	if !ok {
		s, err := c.snapshot(ctx, prefixes)
		if err != nil {
			return backends.Update{}, err
		}
		return backends.Update{Rev: s.Rev, Full: &s}, nil
	}
	if len(ds) == 0 {
		<-ctx.Done() // nothing to watch
		return backends.Update{}, fmt.Errorf("metadata: watch: %w", ctx.Err())
	}
	for {
		if err := c.wait(ctx, version); err != nil {
			return backends.Update{}, err
		}
		s, err := c.snapshot(ctx, prefixes)
		if err != nil {
			return backends.Update{}, err
		}
		if changes := backends.Diff(old, s.KVs); len(changes) > 0 {
			return backends.Update{Rev: s.Rev, Changes: changes}, nil
		}
		// Nothing changed under prefixes, though maybe elsewhere in the
		// sub-trees: wait again, from the version just read.
		c.mu.Lock()
		version = c.version
		c.mu.Unlock()
	}
}

// wait waits for a reason to read again: a new version, by long poll,
// when the server has one (version is the one at the last read), else the
// poll interval.
func (c *Client) wait(ctx context.Context, version string) error {
	c.mu.Lock()
	versions := c.versions
	c.mu.Unlock()
	if c.mode == ModeLongPoll || c.mode == ModeAuto && versions > 0 && version != "" {
		return c.longPoll(ctx, version)
	}
	return sleep(ctx, c.pollInterval)
}

// longPoll waits until the server's version is no longer version. A
// server that answers at once with the same version does not hold long
// polls (rancher-metadata answers the same version only after maxWait):
// longPoll then waits the poll interval and returns, and in auto mode the
// server is polled from then on.
func (c *Client) longPoll(ctx context.Context, version string) error {
	for {
		start := time.Now()
		v, ok, err := c.getVersion(ctx, version)
		if err != nil {
			return err
		}
		if !ok {
			if c.mode == ModeLongPoll {
				c.mu.Lock()
				at := c.versionAt
				c.mu.Unlock()
				return fmt.Errorf("metadata: GET %s: the server has no version (metadata_mode longpoll)", c.redacted(at, ""))
			}
			c.mu.Lock()
			c.versions = -1 // poll from now on
			c.mu.Unlock()
			return nil
		}
		if v != version {
			return nil
		}
		if time.Since(start) >= c.maxWait/2 {
			continue // the server waited: ask again
		}
		// The server answered the same version at once: it does not
		// hold long polls, and its version may never move. Auto mode
		// polls from now on; longpoll mode reads every poll interval.
		if c.mode == ModeAuto {
			c.mu.Lock()
			c.versions = -1
			c.mu.Unlock()
		}
		return sleep(ctx, c.pollInterval)
	}
}

// sleep waits for d, or until ctx is done, with kvconf's one
// context-aware sleep.
func sleep(ctx context.Context, d time.Duration) error {
	if err := backoff.Sleep(ctx, d); err != nil {
		return fmt.Errorf("metadata: watch: %w", err)
	}
	return nil
}
