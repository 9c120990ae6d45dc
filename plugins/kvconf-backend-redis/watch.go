package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kvconf/kvconf/backends"
)

// subscriber holds the connection subscribed to keyspace notifications,
// and the goroutine that reads them into the backend's dirty keys.
type subscriber struct {
	c      *conn
	prefix string // of the channels: __keyspace@DB__:
	sep    string

	mu        sync.Mutex
	patterns  map[string]bool          // sent
	confirmed map[string]chan struct{} // closed once the server confirmed
	err       error                    // why it broke; set before dead closes
	dead      chan struct{}
	wg        sync.WaitGroup
}

// stop closes the connection and waits for the reader.
func (s *subscriber) stop() {
	s.c.close()
	s.wg.Wait()
}

// Watch waits for a change under prefixes after revision after: it
// subscribes to their keyspace notifications (reading them in full when
// the subscription is new), then reads again the keys notified, until
// one of them changed.
func (r *redis) Watch(ctx context.Context, prefixes []string, after uint64) (backends.Update, error) {
	if after == 0 {
		rev, _, err := r.readAll(ctx, prefixes)
		return backends.Update{Rev: rev}, err
	}
	s, fresh, err := r.subscribe(ctx, prefixes)
	if err != nil {
		return backends.Update{}, err
	}
	if fresh {
		// Whatever changed while nothing listened is found by a full read.
		if _, _, err := r.readAll(ctx, prefixes); err != nil {
			return backends.Update{}, err
		}
	}
	for {
		if err := r.readDirty(ctx); err != nil {
			return backends.Update{}, err
		}
		r.mu.Lock()
		rev := r.rev
		chs, ok := r.since(after, prefixes)
		wake := r.wake
		r.mu.Unlock()
		if !ok {
			rev, kvs, err := r.readAll(ctx, prefixes)
			if err != nil {
				return backends.Update{}, err
			}
			return backends.Update{Rev: rev, Full: &backends.Snapshot{Rev: rev, KVs: kvs}}, nil
		}
		if len(chs) > 0 {
			return backends.Update{Rev: rev, Changes: chs}, nil
		}
		select {
		case <-wake:
		case <-s.dead:
			return backends.Update{}, s.err
		case <-ctx.Done():
			return backends.Update{}, ctx.Err()
		}
	}
}

// readDirty reads the notified keys again and notes their changes.
func (r *redis) readDirty(ctx context.Context) error {
	r.mu.Lock()
	keys := make([]string, 0, len(r.dirty))
	for k := range r.dirty {
		keys = append(keys, k)
	}
	clear(r.dirty)
	r.mu.Unlock()
	if len(keys) == 0 {
		return nil
	}
	sep := r.config().separator
	var found map[string]map[string]string
	err := r.command(ctx, func(c *conn) error {
		var err error
		found, err = readKeys(ctx, c, sep, keys)
		return err
	})
	if err != nil {
		r.mu.Lock()
		for _, k := range keys {
			r.dirty[k] = true // read them at the next try
		}
		r.mu.Unlock()
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var chs []backends.Change
	for _, k := range keys {
		kvs, ok := found[k]
		chs = append(chs, backends.Diff(r.byRedis[k], kvs)...)
		if ok {
			r.byRedis[k] = kvs
		} else {
			delete(r.byRedis, k)
		}
	}
	r.note(chs)
	return nil
}

// subscribe returns the running subscriber, started first if there is
// none, subscribed to the patterns of prefixes; fresh reports that it was
// started or that a pattern was added, so that the caller reads the
// prefixes in full.
func (r *redis) subscribe(ctx context.Context, prefixes []string) (*subscriber, bool, error) {
	r.mu.Lock()
	s := r.sub
	r.mu.Unlock()
	fresh := false
	if s == nil {
		var err error
		if s, err = r.startSubscriber(ctx); err != nil {
			return nil, false, err
		}
		fresh = true
	}
	var wait []chan struct{}
	s.mu.Lock()
	for _, p := range prefixes {
		pat := s.prefix + glob(s.sep, p)
		if !s.patterns[pat] {
			s.patterns[pat] = true
			ch := make(chan struct{})
			s.confirmed[pat] = ch
			if err := s.c.write("PSUBSCRIBE", pat); err != nil {
				s.mu.Unlock()
				return nil, false, fmt.Errorf("redis: psubscribe: %w", err)
			}
			fresh = true
		}
		wait = append(wait, s.confirmed[pat])
	}
	s.mu.Unlock()
	for _, ch := range wait {
		select {
		case <-ch:
		case <-s.dead:
			return nil, false, s.err
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
	return s, fresh, nil
}

// startSubscriber checks that the server sends keyspace notifications,
// connects a subscriber and starts its reader.
func (r *redis) startSubscriber(ctx context.Context) (*subscriber, error) {
	if err := r.checkNotifications(ctx); err != nil {
		return nil, err
	}
	cfg := r.config()
	c, n, err := connect(ctx, cfg)
	if err != nil {
		return nil, err
	}
	_ = c.nc.SetDeadline(time.Time{}) // it waits for notifications without bound
	s := &subscriber{
		c:         c,
		prefix:    "__keyspace@" + strconv.Itoa(n.db) + "__:",
		sep:       cfg.separator,
		patterns:  map[string]bool{},
		confirmed: map[string]chan struct{}{},
		dead:      make(chan struct{}),
	}
	r.mu.Lock()
	if r.sub != nil { // started by another watch meanwhile
		other := r.sub
		r.mu.Unlock()
		c.close()
		return other, nil
	}
	r.sub = s
	r.mu.Unlock()
	s.wg.Add(1)
	go r.readNotifications(s)
	return s, nil
}

// checkNotifications fails when the server's notify-keyspace-events lack
// the keyspace events of strings and hashes. A server that refuses CONFIG
// (a managed one, say) is trusted.
func (r *redis) checkNotifications(ctx context.Context) error {
	var flags string
	var addr string
	known := false
	err := r.command(ctx, func(c *conn) error {
		addr = c.nc.RemoteAddr().String()
		v, err := c.do(ctx, "CONFIG", "GET", "notify-keyspace-events")
		var re redisError
		if errors.As(err, &re) {
			return nil // CONFIG refused: nothing to check
		}
		if err != nil {
			return err
		}
		if a, ok := v.([]any); ok && len(a) == 2 {
			flags, _ = a[1].(string)
			known = true
		}
		return nil
	})
	if err != nil || !known {
		return err
	}
	all := strings.Contains(flags, "A") || strings.Contains(flags, "g") && strings.Contains(flags, "$") && strings.Contains(flags, "h")
	if !strings.Contains(flags, "K") || !all {
		return fmt.Errorf("redis %s: keyspace notifications are off (notify-keyspace-events is %q): -watch needs at least KA; "+
			"run CONFIG SET notify-keyspace-events KA on the server or set it in redis.conf, or use -interval instead of -watch", addr, flags)
	}
	return nil
}

// readNotifications reads the subscriber's connection until it breaks:
// confirmations of subscriptions, and notifications, whose keys it marks
// dirty.
func (r *redis) readNotifications(s *subscriber) {
	defer s.wg.Done()
	var err error
	for {
		var v any
		if v, err = s.c.reply(); err != nil {
			break
		}
		a, _ := v.([]any)
		if len(a) == 0 {
			continue
		}
		kind, _ := a[0].(string)
		switch {
		case kind == "psubscribe" && len(a) >= 2:
			pat, _ := a[1].(string)
			s.mu.Lock()
			if ch := s.confirmed[pat]; ch != nil && !isClosed(ch) {
				close(ch)
			}
			s.mu.Unlock()
		case kind == "pmessage" && len(a) == 4:
			channel, _ := a[2].(string)
			key, ok := strings.CutPrefix(channel, s.prefix)
			if !ok {
				continue
			}
			r.mu.Lock()
			r.dirty[key] = true
			close(r.wake)
			r.wake = make(chan struct{})
			r.mu.Unlock()
		}
	}
	s.c.close()
	r.mu.Lock()
	if r.sub == s {
		r.sub = nil // the next watch starts another
	}
	r.mu.Unlock()
	s.mu.Lock()
	s.err = fmt.Errorf("redis: keyspace notifications: subscription lost: %w", err)
	s.mu.Unlock()
	close(s.dead)
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
