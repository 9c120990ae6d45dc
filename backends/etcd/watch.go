package etcd

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/connectivity"

	"github.com/kvconf/kvconf/backends"
)

// errStreamClosed reports a watch channel that the etcd client closed
// without saying why.
var errStreamClosed = errors.New("watch stream closed")

// stream is an etcd watch over the keys under some prefixes, kept open
// between calls of Watch.
//
// Every change under the prefixes up to revision hi is accounted for (read
// from ch, or known to the caller, whose events ch still holds are
// dropped), and nothing under them changed after revision lo up to hi: a
// Watch from any revision from lo on can go on reading ch.
type stream struct {
	ps     []string // result of merge
	lo, hi uint64
	ch     clientv3.WatchChan      // nil until the watch is open
	opened chan clientv3.WatchChan // delivers ch once; nil after
	close  context.CancelFunc      // ends the watch
}

// Watch implements [backends.Watcher]. It blocks until a key under
// prefixes changed after revision after, then returns the changes of that
// revision (of one etcd transaction: all its puts and deletes under
// prefixes, in order) or of several, at once if the watch had fallen
// behind. The update's revision is that of the last change read, which
// may be older than the store's current revision. With after == 0 it
// returns the current revision at once.
//
// Watch keeps one etcd watch for the client, over the smallest key range
// that holds every prefix, from revision after+1, with the changes outside
// the prefixes dropped. The next call with the same prefixes goes on with
// the same watch when its revision is at least that of the last update the
// watch returned; from an earlier one (the caller went back) it starts a
// new watch. A call from a later revision than the watch has read (after a
// Snapshot) goes on with it, dropping the changes up to that revision.
// Another call at the same time opens a watch of its own, and the client
// keeps one of them.
//
// When the changes after after were compacted away, Watch returns a full
// snapshot of prefixes instead. The watch requires a leader: when the
// member it reads from loses its cluster's leader, or when the watch fails
// otherwise, Watch returns an error and a later call starts a new watch.
// A watch that stays silent is checked (see [watchSilence]): when etcd
// cannot be reached, Watch returns an error (an [UnreachableError] when no
// connection came up within the dial timeout) within a few seconds, and a
// watch that etcd answers no more while etcd answers reads is restarted.
func (c *Client) Watch(ctx context.Context, prefixes []string, after uint64) (backends.Update, error) {
	if err := ctx.Err(); err != nil {
		return backends.Update{}, fmt.Errorf("etcd: watch: %w", err)
	}
	if c.isClosed() {
		return backends.Update{}, fmt.Errorf("etcd: watch: %w", backends.ErrClosed)
	}
	ps := merge(prefixes)
	if after == 0 {
		rev, err := c.rev(ctx, ps)
		if err != nil {
			return backends.Update{}, c.fail("watch", err)
		}
		return backends.Update{Rev: rev}, nil
	}
	if len(ps) == 0 { // nothing can change
		select {
		case <-ctx.Done():
			return backends.Update{}, fmt.Errorf("etcd: watch: %w", ctx.Err())
		case <-c.done:
			return backends.Update{}, fmt.Errorf("etcd: watch: %w", backends.ErrClosed)
		}
	}
	s := c.take(ps, after)
	if s == nil {
		s = c.open(ps, after)
	}
	quiet := time.NewTimer(watchSilence)
	defer quiet.Stop()
	asked := false // a progress report was requested since the last response
	for {
		select {
		case <-ctx.Done():
			c.keep(s)
			return backends.Update{}, fmt.Errorf("etcd: watch %q: %w", prefixes, ctx.Err())
		case <-c.done:
			s.close()
			return backends.Update{}, fmt.Errorf("etcd: watch: %w", backends.ErrClosed)
		case <-quiet.C:
			if !asked && c.connected() {
				c.requestProgress(ctx)
				asked = true
				quiet.Reset(progressWait)
				continue
			}
			// No connection, or no answer on the watch: ask the server.
			if err := c.probe(ctx, ps); err != nil {
				s.close()
				if ctx.Err() != nil {
					return backends.Update{}, fmt.Errorf("etcd: watch %q: %w", prefixes, ctx.Err())
				}
				return backends.Update{}, c.fail(fmt.Sprintf("watch %q", prefixes), err)
			}
			if asked {
				// The server answers but the watch did not: it is stuck
				// (in gRPC's picker, say). Start it again where it was.
				s = c.reopen(s)
			}
			asked = false
			quiet.Reset(watchSilence)
		case ch := <-s.opened:
			s.ch, s.opened = ch, nil
		case resp, ok := <-s.ch:
			asked = false
			quiet.Reset(watchSilence)
			u, done, err := c.read(ctx, s, prefixes, resp, ok)
			if !done {
				continue
			}
			if err != nil || u.Full != nil {
				s.close()
			} else {
				c.keep(s)
			}
			return u, err
		}
	}
}

// Watchdog timings of [Client.Watch]. A watch that was silent for
// watchSilence asks etcd for a progress report, which a working watch
// answers at once; when none came within progressWait, or when there is
// no connection, Watch probes the server with a read. A failed probe ends
// Watch with an error (the backend is down: the caller hears of it within
// about watchSilence plus the dial timeout); a probe that succeeds while
// the watch stays silent restarts the watch, so that no stuck watch can
// hold changes back while the server answers.
const (
	watchSilence = 2 * time.Second
	progressWait = time.Second
)

// connected reports whether the client's connection is ready.
func (c *Client) connected() bool {
	return c.cli.ActiveConnection().GetState() == connectivity.Ready
}

// requestProgress asks etcd for a progress report on the kept watch's
// stream (the one of a context that requires a leader, as open makes);
// the answer arrives on the watch channel.
func (c *Client) requestProgress(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, progressWait)
	defer cancel()
	_ = c.cli.RequestProgress(clientv3.WithRequireLeader(ctx)) // no answer counts as the failure
}

// probe reads the store's revision, waiting for a connection up to the
// dial timeout and for the answer up to twice as long.
func (c *Client) probe(ctx context.Context, ps []string) error {
	pctx, cancel := context.WithTimeout(ctx, 2*c.link.wait)
	defer cancel()
	key, _ := span(ps[0])
	_, err := c.cli.Get(pctx, key, clientv3.WithCountOnly())
	if err != nil && ctx.Err() == nil && pctx.Err() != nil {
		return fmt.Errorf("no answer within %s: %w", 2*c.link.wait, err)
	}
	return err
}

// reopen closes s and returns a new watch of its keys that goes on from
// where s was.
func (c *Client) reopen(s *stream) *stream {
	s.close()
	n := c.open(s.ps, s.hi)
	n.lo = s.lo
	return n
}

// read handles one response of s's watch channel (ok is false when the
// channel is closed), for Watch: done reports that Watch returns u and err;
// otherwise the response held nothing under the prefixes.
func (c *Client) read(ctx context.Context, s *stream, prefixes []string, resp clientv3.WatchResponse, ok bool) (u backends.Update, done bool, err error) {
	switch {
	case !ok:
		return u, true, c.fail(fmt.Sprintf("watch %q", prefixes), errStreamClosed)
	case resp.CompactRevision != 0 || errors.Is(resp.Err(), rpctypes.ErrCompacted):
		// The changes after s.hi are gone: start again from a snapshot.
		snap, err := c.Snapshot(ctx, prefixes)
		if err != nil {
			return u, true, err
		}
		return backends.Update{Rev: snap.Rev, Full: &snap}, true, nil
	case resp.Canceled || resp.Err() != nil:
		return u, true, c.fail(fmt.Sprintf("watch %q", prefixes), resp.Err())
	case len(resp.Events) == 0:
		// A progress notification: nothing left to read up to its
		// revision.
		if resp.IsProgressNotify() {
			s.hi = max(s.hi, uint64(resp.Header.Revision))
		}
		return u, false, nil
	}
	var changes []backends.Change
	for _, ev := range resp.Events {
		key := string(ev.Kv.Key)
		if uint64(ev.Kv.ModRevision) <= s.hi || !under(key, s.ps) {
			continue // known to the caller, or outside the prefixes
		}
		if ev.Type == clientv3.EventTypeDelete {
			changes = append(changes, backends.Change{Key: key, Deleted: true})
		} else {
			changes = append(changes, backends.Change{Key: key, Value: string(ev.Kv.Value)})
		}
	}
	// Not the header's revision: catching up, etcd sends the changes of
	// at most 1,000 revisions per response, each with the store's current
	// revision in its header. The last event's is where the watch is.
	s.hi = max(s.hi, uint64(resp.Events[len(resp.Events)-1].Kv.ModRevision))
	if len(changes) == 0 {
		return u, false, nil
	}
	s.lo = s.hi
	return backends.Update{Rev: s.hi, Changes: changes}, true, nil
}

// take returns the kept watch if it watches ps and can go on from revision
// after, and nil otherwise. Either way the client keeps no watch after it:
// one that does not fit is closed.
func (c *Client) take(ps []string, after uint64) *stream {
	c.mu.Lock()
	s := c.stream
	c.stream = nil
	c.mu.Unlock()
	if s == nil {
		return nil
	}
	if slices.Equal(s.ps, ps) && s.lo <= after {
		if after > s.hi { // the caller knows more: skip to after
			s.lo, s.hi = after, after
		}
		return s
	}
	s.close()
	return nil
}

// keep makes s the watch kept for the next call, closing the one kept
// before, or closes s if the client is closed.
func (c *Client) keep(s *stream) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.isClosed() {
		s.close()
		return
	}
	if c.stream != nil {
		c.stream.close()
	}
	c.stream = s
}

// open starts a watch of the keys under ps, a non-empty result of [merge],
// from revision after+1. It lives until closed, beyond any call's context.
func (c *Client) open(ps []string, after uint64) *stream {
	ctx, cancel := context.WithCancel(context.Background())
	ctx = clientv3.WithRequireLeader(ctx)
	opts := []clientv3.OpOption{clientv3.WithRev(int64(after) + 1)}
	key, end := cover(ps)
	if len(ps) == 1 {
		opts = append(opts, clientv3.WithPrefix())
		key = ps[0]
	} else {
		opts = append(opts, clientv3.WithRange(end))
	}
	// The etcd client's Watch blocks until its stream to the server is
	// open, which takes for ever while the server is down: open it aside,
	// so that Watch's watchdog runs meanwhile.
	opened := make(chan clientv3.WatchChan, 1)
	go func() { opened <- c.cli.Watch(ctx, key, opts...) }()
	return &stream{ps: ps, lo: after, hi: after, opened: opened, close: cancel}
}
