// Command kvconf-backend-redis is a kvconf backend plugin for Redis: kvconf
// runs it through the plugin backend and talks to it with the
// kvconf-backend protocol, version 1 (docs/plugins.md). It uses the Go
// standard library only and speaks RESP to Redis over TCP.
//
//	[backends.r]
//	type = "plugin"
//	command = ["/usr/local/lib/kvconf/kvconf-backend-redis"]
//	options = { address = "127.0.0.1:6379", password = "", db = "0" }
//
// # Keys
//
// A kvconf key is a Redis key of the same name: /app/db/host is the Redis
// key "/app/db/host", a string, as confd's redis backend stores it. Keys of
// other types are skipped. A prefix matches by plain string prefix, with a
// SCAN MATCH on the prefix (its glob characters escaped) followed by "*";
// the prefix "/" matches every key.
//
// # Options
//
//   - address: host:port of Redis, default 127.0.0.1:6379;
//   - password: sent with AUTH when not empty;
//   - db: the database number, default 0;
//   - poll_interval: how often a watch reads its prefixes again, in the
//     syntax of Go's time.ParseDuration, default 1s;
//   - timeout: bound of each connection attempt and command, default 5s.
//
// # Revisions and watching
//
// Redis has no revision, so the plugin keeps a counter, starting at 1, and
// the last value it read of every key. Each read (a snapshot, or a watch's
// poll) compares what it found under its prefixes with what it knew, and
// bumps the counter once if anything differs, noting the changes. A watch
// polls its prefixes every poll_interval and answers the changes noted
// after its revision; when these are no longer kept (the last 1024 revisions
// are), it answers a full snapshot. A snapshot is not read at one instant:
// the keys are scanned, then read in batches.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// keep is how many revisions of changes the plugin keeps for watches.
const keep = 1024

type request struct {
	ID       uint64            `json:"id"`
	Method   string            `json:"method"`
	Prefixes []string          `json:"prefixes"`
	After    uint64            `json:"after"`
	Target   uint64            `json:"target"`
	Options  map[string]string `json:"options"`
}

type change struct {
	Key     string `json:"key"`
	Value   string `json:"value"`
	Deleted bool   `json:"deleted"`
}

type response struct {
	ID      uint64            `json:"id"`
	Rev     uint64            `json:"rev,omitempty"`
	KVs     map[string]string `json:"kvs,omitempty"`
	Changes []change          `json:"changes,omitempty"`
	Full    map[string]string `json:"full,omitempty"`
	Error   string            `json:"error,omitempty"`
}

// entry is the changes of one revision.
type entry struct {
	rev     uint64
	changes []change
}

type plugin struct {
	outMu sync.Mutex
	out   *bufio.Writer

	cfgMu sync.Mutex
	cfg   config

	connMu sync.Mutex
	conn   *conn // nil until needed, and after an error

	mu      sync.Mutex
	rev     uint64
	known   map[string]string
	log     []entry // the changes of the last revisions, oldest first
	cancels map[uint64]context.CancelFunc
}

type config struct {
	address, password string
	db                int
	poll, timeout     time.Duration
}

func main() {
	p := &plugin{
		out:     bufio.NewWriter(os.Stdout),
		cfg:     config{address: "127.0.0.1:6379", poll: time.Second, timeout: 5 * time.Second},
		rev:     1,
		known:   map[string]string{},
		cancels: map[uint64]context.CancelFunc{},
	}
	p.send(map[string]any{"protocol": "kvconf-backend", "version": 1})

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	in := bufio.NewReader(os.Stdin)
	for {
		line, err := in.ReadBytes('\n')
		if len(line) > 0 {
			var req request
			if jerr := json.Unmarshal(line, &req); jerr != nil {
				fmt.Fprintln(os.Stderr, "kvconf-backend-redis: malformed request:", jerr)
				break
			}
			switch req.Method {
			case "configure":
				p.reply(p.configure(req))
			case "snapshot", "watch":
				rctx, rcancel := context.WithCancel(ctx)
				p.mu.Lock()
				p.cancels[req.ID] = rcancel
				p.mu.Unlock()
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer rcancel()
					r := p.serve(rctx, req)
					p.mu.Lock()
					delete(p.cancels, req.ID)
					p.mu.Unlock()
					p.reply(r)
				}()
			case "cancel":
				p.mu.Lock()
				if c := p.cancels[req.Target]; c != nil {
					c()
				}
				p.mu.Unlock()
			default:
				p.reply(response{ID: req.ID, Error: "unsupported"})
			}
		}
		if err != nil {
			break // kvconf closed stdin: stop
		}
	}
	cancel()
	wg.Wait()
	p.connMu.Lock()
	if p.conn != nil {
		p.conn.close()
	}
	p.connMu.Unlock()
}

func (p *plugin) send(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kvconf-backend-redis: encode:", err)
		os.Exit(1)
	}
	p.outMu.Lock()
	defer p.outMu.Unlock()
	_, _ = p.out.Write(append(b, '\n'))
	if err := p.out.Flush(); err != nil {
		os.Exit(1) // kvconf is gone
	}
}

func (p *plugin) reply(r response) { p.send(r) }

func (p *plugin) configure(req request) response {
	cfg := config{address: "127.0.0.1:6379", poll: time.Second, timeout: 5 * time.Second}
	for k, v := range req.Options {
		var err error
		switch k {
		case "address":
			cfg.address = v
		case "password":
			cfg.password = v
		case "db":
			cfg.db, err = strconv.Atoi(v)
		case "poll_interval":
			cfg.poll, err = positive(v)
		case "timeout":
			cfg.timeout, err = positive(v)
		default:
			err = errors.New("unknown option (known: address, password, db, poll_interval, timeout)")
		}
		if err != nil {
			return response{ID: req.ID, Error: fmt.Sprintf("option %s: %v", k, err)}
		}
	}
	p.cfgMu.Lock()
	p.cfg = cfg
	p.cfgMu.Unlock()
	return response{ID: req.ID}
}

func positive(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err == nil && d <= 0 {
		err = fmt.Errorf("%s is not positive", s)
	}
	return d, err
}

// serve answers a snapshot or a watch request.
func (p *plugin) serve(ctx context.Context, req request) response {
	if req.Method == "snapshot" {
		rev, kvs, err := p.read(ctx, req.Prefixes)
		if err != nil {
			return response{ID: req.ID, Error: err.Error()}
		}
		return response{ID: req.ID, Rev: rev, KVs: kvs}
	}
	p.cfgMu.Lock()
	poll := p.cfg.poll
	p.cfgMu.Unlock()
	for {
		rev, kvs, err := p.read(ctx, req.Prefixes)
		if err != nil {
			if ctx.Err() != nil {
				return response{ID: req.ID, Error: "canceled"}
			}
			return response{ID: req.ID, Error: err.Error()}
		}
		if req.After == 0 {
			return response{ID: req.ID, Rev: rev}
		}
		if rev > req.After {
			chs, ok := p.since(req.After, req.Prefixes)
			if !ok {
				return response{ID: req.ID, Rev: rev, Full: kvs}
			}
			if len(chs) > 0 {
				return response{ID: req.ID, Rev: rev, Changes: chs}
			}
		}
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return response{ID: req.ID, Error: "canceled"}
		case <-t.C:
		}
	}
}

// since returns the changes under prefixes after revision after, or false
// when they are no longer kept.
func (p *plugin) since(after uint64, prefixes []string) ([]change, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if after > p.rev || len(p.log) == 0 || after+1 < p.log[0].rev {
		return nil, false
	}
	var chs []change
	for _, e := range p.log {
		if e.rev <= after {
			continue
		}
		for _, c := range e.changes {
			if under(c.Key, prefixes) {
				chs = append(chs, c)
			}
		}
	}
	return chs, true
}

// under reports whether key is under one of prefixes; "/" holds every key.
func under(key string, prefixes []string) bool {
	for _, p := range prefixes {
		if p == "/" || strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// read reads every string key under prefixes, and notes what changed
// since the plugin last read them.
func (p *plugin) read(ctx context.Context, prefixes []string) (uint64, map[string]string, error) {
	kvs, err := p.fetch(ctx, prefixes)
	if err != nil {
		return 0, nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var chs []change
	for k, v := range kvs {
		if o, ok := p.known[k]; !ok || o != v {
			chs = append(chs, change{Key: k, Value: v})
			p.known[k] = v
		}
	}
	for k := range p.known {
		if _, ok := kvs[k]; !ok && under(k, prefixes) {
			chs = append(chs, change{Key: k, Deleted: true})
			delete(p.known, k)
		}
	}
	if len(chs) > 0 {
		p.rev++
		p.log = append(p.log, entry{rev: p.rev, changes: chs})
		if len(p.log) > keep {
			p.log = append([]entry(nil), p.log[len(p.log)-keep:]...)
		}
	}
	return p.rev, kvs, nil
}

// fetch scans the keys under prefixes and reads their string values.
func (p *plugin) fetch(ctx context.Context, prefixes []string) (map[string]string, error) {
	p.connMu.Lock()
	defer p.connMu.Unlock()
	c, err := p.connect(ctx)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { _ = c.nc.SetDeadline(time.Now()) })
	defer stop()
	kvs, err := c.fetch(ctx, prefixes)
	if err != nil {
		c.close()
		p.conn = nil
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	return kvs, nil
}

// connect returns the connection to Redis, dialling, authenticating and
// selecting the database first if there is none. connMu is held.
func (p *plugin) connect(ctx context.Context) (*conn, error) {
	if p.conn != nil {
		return p.conn, nil
	}
	p.cfgMu.Lock()
	cfg := p.cfg
	p.cfgMu.Unlock()
	d := net.Dialer{Timeout: cfg.timeout}
	nc, err := d.DialContext(ctx, "tcp", cfg.address)
	if err != nil {
		return nil, fmt.Errorf("redis %s: %w", cfg.address, err)
	}
	c := &conn{nc: nc, r: bufio.NewReader(nc), w: bufio.NewWriter(nc), timeout: cfg.timeout}
	if cfg.password != "" {
		if _, err := c.do(ctx, "AUTH", cfg.password); err != nil {
			c.close()
			return nil, fmt.Errorf("redis %s: auth: %w", cfg.address, err)
		}
	}
	if cfg.db != 0 {
		if _, err := c.do(ctx, "SELECT", strconv.Itoa(cfg.db)); err != nil {
			c.close()
			return nil, fmt.Errorf("redis %s: select %d: %w", cfg.address, cfg.db, err)
		}
	}
	p.conn = c
	return c, nil
}

// conn is a connection to Redis that speaks RESP.
type conn struct {
	nc      net.Conn
	r       *bufio.Reader
	w       *bufio.Writer
	timeout time.Duration
}

func (c *conn) close() { _ = c.nc.Close() } // the connection is dropped either way

// redisError is an error reply.
type redisError string

func (e redisError) Error() string { return "redis: " + string(e) }

// do sends a command and reads its reply: a string, an int64, nil or a
// []any of those. Each command has the timeout; ctx is checked before.
func (c *conn) do(ctx context.Context, args ...string) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := c.nc.SetDeadline(time.Now().Add(c.timeout)); err != nil {
		return nil, err
	}
	fmt.Fprintf(c.w, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(c.w, "$%d\r\n%s\r\n", len(a), a)
	}
	if err := c.w.Flush(); err != nil {
		return nil, err
	}
	v, err := c.reply()
	if err != nil {
		return nil, err
	}
	if e, ok := v.(redisError); ok {
		return nil, e
	}
	return v, nil
}

func (c *conn) reply() (any, error) {
	line, err := c.r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 3 || !strings.HasSuffix(line, "\r\n") {
		return nil, fmt.Errorf("redis: malformed reply line")
	}
	body := line[1 : len(line)-2]
	switch line[0] {
	case '+':
		return body, nil
	case '-':
		return redisError(body), nil
	case ':':
		return strconv.ParseInt(body, 10, 64)
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil || n < 0 {
			return nil, err // $-1 is nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(c.r, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(body)
		if err != nil || n < 0 {
			return nil, err // *-1 is nil
		}
		out := make([]any, n)
		for i := range out {
			if out[i], err = c.reply(); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("redis: unknown reply type %q", line[0])
}

// glob returns the SCAN MATCH pattern of the keys under prefix.
func glob(prefix string) string {
	if prefix == "/" {
		return "*"
	}
	var b strings.Builder
	for _, r := range prefix {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String() + "*"
}

// fetch scans the keys under prefixes and reads their values with MGET,
// 512 at a time; keys that are not strings are left out.
func (c *conn) fetch(ctx context.Context, prefixes []string) (map[string]string, error) {
	seen := map[string]bool{}
	var keys []string
	for _, p := range prefixes {
		cursor := "0"
		for {
			v, err := c.do(ctx, "SCAN", cursor, "MATCH", glob(p), "COUNT", "1000")
			if err != nil {
				return nil, fmt.Errorf("redis: scan %q: %w", p, err)
			}
			a, ok := v.([]any)
			if !ok || len(a) != 2 {
				return nil, fmt.Errorf("redis: scan %q: unexpected reply", p)
			}
			batch, _ := a[1].([]any)
			for _, k := range batch {
				if s, ok := k.(string); ok && !seen[s] {
					seen[s] = true
					keys = append(keys, s)
				}
			}
			if cursor, _ = a[0].(string); cursor == "0" || cursor == "" {
				break
			}
		}
	}
	kvs := make(map[string]string, len(keys))
	for len(keys) > 0 {
		batch := keys[:min(len(keys), 512)]
		keys = keys[len(batch):]
		v, err := c.do(ctx, append([]string{"MGET"}, batch...)...)
		if err != nil {
			return nil, fmt.Errorf("redis: mget: %w", err)
		}
		vals, ok := v.([]any)
		if !ok || len(vals) != len(batch) {
			return nil, errors.New("redis: mget: unexpected reply")
		}
		for i, val := range vals {
			if s, ok := val.(string); ok {
				kvs[batch[i]] = s
			}
		}
	}
	return kvs, nil
}
