// Package zkwire is a small client of ZooKeeper's wire protocol, with the
// requests the zookeeper backend needs: a session (new or resumed) with
// one server of a list, digest (or other scheme) authentication, pings,
// getData, getChildren2, and addWatch, whose persistent recursive mode
// (ZooKeeper 3.6+) watches a whole subtree with one request; the
// notifications of watches are queued for the caller.
//
// A [Conn] is one TCP connection with one session. It does not reconnect:
// when the connection ends, every call fails with [ErrConnectionLost] (the
// session may live on: [Dial] again with [Config.Resume]) or
// [ErrSessionExpired], and [Conn.Done] is closed. The watches of a
// connection end with it; the server does not replay what changed while
// no connection had them, so a caller that resumes the session adds its
// watches again and reads again what they cover.
//
// Requests are pipelined: calls from many goroutines share the
// connection, and the answers are matched to them by xid. The server
// answers in order, and sends a watch's notification before the answer to
// any request it receives after the change, so when a call returns, the
// notifications of the changes its answer shows are already queued.
package zkwire

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// maxFrame bounds the length of a message from the server; ZooKeeper's
// own client stops at about 1 MiB (jute.maxbuffer), which the children of
// a large directory can pass.
const maxFrame = 64 << 20

// Session identifies a session, for [Config.Resume].
type Session struct {
	ID     int64
	Passwd []byte
}

// Auth is credentials added to the session with addAuth, such as
// {Scheme: "digest", Data: []byte("user:password")}.
type Auth struct {
	Scheme string
	Data   []byte
}

// Config shapes [Dial].
type Config struct {
	// Servers lists host:port addresses, tried in turn until one answers.
	Servers []string
	// SessionTimeout is the session timeout asked of the server, which
	// bounds it to its own limits. It also sets the client's timers: a
	// ping every third of the negotiated timeout, and the connection
	// taken as lost after two thirds without a message. Each server is
	// given the timeout divided by the number of servers to connect.
	SessionTimeout time.Duration
	// Resume, when set, asks for that session instead of a new one; Dial
	// returns [ErrSessionExpired] when the server no longer has it.
	Resume *Session
	// LastZxid is the highest transaction id the client has seen (zero
	// for a new client); a server behind it refuses the session.
	LastZxid int64
	// Auth is added to the session right after the handshake.
	Auth []Auth
	// Logger receives debug messages; nil discards them.
	Logger *slog.Logger
}

// EventType is the type of a watch notification.
type EventType int32

// The notifications of watches (Watcher.Event.EventType). A persistent
// recursive watch sends the first three only.
const (
	EventNodeCreated         EventType = 1
	EventNodeDeleted         EventType = 2
	EventNodeDataChanged     EventType = 3
	EventNodeChildrenChanged EventType = 4
)

// AddWatchMode is the mode of [Conn.AddWatch] (ZooDefs.AddWatchModes).
type AddWatchMode int32

// The modes of addWatch.
const (
	// Persistent watches the znode's data and children until removed.
	Persistent AddWatchMode = 0
	// PersistentRecursive watches the znode and every znode under it,
	// present and future, until removed: creations, deletions and data
	// changes, one notification for each znode.
	PersistentRecursive AddWatchMode = 1
)

// Event is a watch notification.
type Event struct {
	Type  EventType
	State int32  // the server's session state, SyncConnected (3)
	Path  string // the znode that changed
	Zxid  int64  // the zxid of the notification's header, when the server sends one
}

// call is a request waiting for its answer.
type call struct {
	xid   int32
	frame []byte      // the whole request, length prefix included
	res   chan result // buffered 1
}

type result struct {
	zxid int64
	err  error
	body []byte
}

// Conn is a connection with a session. Its methods are safe for
// concurrent use.
type Conn struct {
	nc          net.Conn
	addr        string
	session     Session
	timeout     time.Duration // negotiated
	readTimeout time.Duration
	log         *slog.Logger

	lastZxid atomic.Int64

	mu      sync.Mutex
	xid     int32
	pending map[int32]*call
	out     [][]byte // frames to write
	err     error    // why the connection ended; nil while it lives
	wake    chan struct{}
	done    chan struct{}

	evMu   sync.Mutex
	events []Event
	evKick chan struct{}

	closing   atomic.Bool // Close was called: the connection ends with ErrClosed
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// Dial connects to the first server of cfg that answers, opens a session
// (or resumes cfg.Resume), and adds cfg.Auth to it. ctx bounds Dial only.
func Dial(ctx context.Context, cfg Config) (*Conn, error) {
	if len(cfg.Servers) == 0 {
		return nil, errors.New("zkwire: dial: no server")
	}
	if cfg.SessionTimeout <= 0 {
		return nil, errors.New("zkwire: dial: session timeout is not positive")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	per := cfg.SessionTimeout / time.Duration(len(cfg.Servers))
	var errs []error
	for _, addr := range cfg.Servers {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("zkwire: dial: %w", err)
		}
		c, err := dial(ctx, addr, per, cfg, log)
		if err == nil {
			return c, nil
		}
		if errors.Is(err, ErrSessionExpired) || errors.As(err, new(Error)) {
			return nil, err // the server answered: the next one would say the same
		}
		log.Debug("zookeeper server unreachable", "server", addr, "err", err)
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// dial connects to one server and does the handshake and the auth.
func dial(ctx context.Context, addr string, timeout time.Duration, cfg Config, log *slog.Logger) (*Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("zkwire: dial %s: %w", addr, err)
	}
	deadline, _ := dctx.Deadline()
	_ = nc.SetDeadline(deadline) // a net.Conn of a dialer always takes it
	stop := context.AfterFunc(dctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	c, err := handshake(nc, addr, cfg, log)
	stop()
	if err != nil {
		_ = nc.Close() // the error says why
		if ctx.Err() != nil {
			return nil, fmt.Errorf("zkwire: dial %s: %w", addr, ctx.Err())
		}
		return nil, err
	}
	_ = nc.SetDeadline(time.Time{})
	c.wg.Add(3)
	go c.readLoop(bufio.NewReaderSize(nc, 64<<10))
	go c.writeLoop()
	go c.pingLoop()
	return c, nil
}

// handshake opens the session on nc and adds the credentials.
func handshake(nc net.Conn, addr string, cfg Config, log *slog.Logger) (*Conn, error) {
	req := connectRequest{
		TimeOut:      int32(cfg.SessionTimeout.Milliseconds()),
		LastZxidSeen: cfg.LastZxid,
	}
	if cfg.Resume != nil {
		req.SessionID, req.Passwd = cfg.Resume.ID, cfg.Resume.Passwd
	} else {
		req.Passwd = make([]byte, 16)
	}
	var e encoder
	req.encode(&e)
	if err := writeFrame(nc, e.b); err != nil {
		return nil, fmt.Errorf("zkwire: connect %s: %w", addr, err)
	}
	br := bufio.NewReader(nc)
	body, err := readFrame(br)
	if err != nil {
		return nil, fmt.Errorf("zkwire: connect %s: %w", addr, err)
	}
	var resp connectResponse
	d := decoder{b: body}
	resp.decode(&d)
	if d.err != nil {
		return nil, fmt.Errorf("zkwire: connect %s: %w", addr, d.err)
	}
	if resp.TimeOut <= 0 {
		return nil, fmt.Errorf("zkwire: connect %s: %w", addr, ErrSessionExpired)
	}
	timeout := time.Duration(resp.TimeOut) * time.Millisecond
	c := &Conn{
		nc:          nc,
		addr:        addr,
		session:     Session{ID: resp.SessionID, Passwd: resp.Passwd},
		timeout:     timeout,
		readTimeout: timeout * 2 / 3,
		log:         log,
		pending:     map[int32]*call{},
		wake:        make(chan struct{}, 1),
		done:        make(chan struct{}),
		evKick:      make(chan struct{}, 1),
	}
	c.lastZxid.Store(cfg.LastZxid)
	// Credentials: the answers (xid -4) come in order, before anything
	// else could, since no request was sent yet.
	for _, a := range cfg.Auth {
		var e encoder
		e.int32(xidAuth)
		e.int32(opAuth)
		e.int32(0) // AuthPacket.type
		e.string(a.Scheme)
		e.buffer(a.Data)
		if err := writeFrame(nc, e.b); err != nil {
			return nil, fmt.Errorf("zkwire: auth %s: %w", addr, err)
		}
		body, err := readFrame(br)
		if err != nil {
			return nil, fmt.Errorf("zkwire: auth %s: %w", addr, err)
		}
		var h replyHeader
		d := decoder{b: body}
		h.decode(&d)
		if d.err != nil {
			return nil, fmt.Errorf("zkwire: auth %s: %w", addr, d.err)
		}
		if h.Err != 0 {
			return nil, fmt.Errorf("zkwire: auth %s scheme %q: %w", addr, a.Scheme, Error(h.Err))
		}
	}
	if br.Buffered() > 0 {
		return nil, fmt.Errorf("zkwire: connect %s: unexpected message from the server", addr)
	}
	log.Debug("zookeeper session", "server", addr, "session", fmt.Sprintf("%#x", resp.SessionID),
		"timeout", timeout, "resumed", cfg.Resume != nil)
	return c, nil
}

func writeFrame(w io.Writer, body []byte) error {
	b := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(body)), uint32(len(body)))
	_, err := w.Write(append(b, body...))
	return err
}

func readFrame(r io.Reader) ([]byte, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	size := binary.BigEndian.Uint32(n[:])
	if size > maxFrame {
		return nil, fmt.Errorf("zkwire: message of %d bytes from the server", size)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return b, nil
}

// Session returns the id and password of the connection's session.
func (c *Conn) Session() Session {
	return Session{ID: c.session.ID, Passwd: append([]byte(nil), c.session.Passwd...)}
}

// SessionTimeout returns the session timeout the server granted.
func (c *Conn) SessionTimeout() time.Duration { return c.timeout }

// Server returns the address of the server of the connection.
func (c *Conn) Server() string { return c.addr }

// LastZxid returns the highest transaction id the server reported in the
// headers of its answers (its last committed transaction when it
// answered).
func (c *Conn) LastZxid() int64 { return c.lastZxid.Load() }

// Done is closed when the connection has ended; [Conn.Err] says why.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns why the connection ended: [ErrClosed], [ErrSessionExpired]
// or [ErrConnectionLost], wrapped; nil while it lives.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Notify returns a channel that has a value when notifications are
// queued for [Conn.Events].
func (c *Conn) Notify() <-chan struct{} { return c.evKick }

// Events returns the notifications received since the last call, in the
// order the server sent them.
func (c *Conn) Events() []Event {
	c.evMu.Lock()
	defer c.evMu.Unlock()
	evs := c.events
	c.events = nil
	return evs
}

// fail ends the connection with err, once: the calls waiting get err.
func (c *Conn) fail(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	if c.closing.Load() {
		err = ErrClosed
	}
	c.err = err
	pending := c.pending
	c.pending = nil
	c.out = nil
	close(c.done)
	c.mu.Unlock()
	_ = c.nc.Close() // ended: its error is err
	for _, cl := range pending {
		cl.res <- result{err: err}
	}
}

// readLoop reads the server's messages: answers go to their calls,
// notifications to the queue.
func (c *Conn) readLoop(r *bufio.Reader) {
	defer c.wg.Done()
	for {
		_ = c.nc.SetReadDeadline(time.Now().Add(c.readTimeout))
		body, err := readFrame(r)
		if err != nil {
			c.fail(fmt.Errorf("%w: %s: %w", ErrConnectionLost, c.addr, err))
			return
		}
		if err := c.dispatch(body); err != nil {
			c.fail(err)
			return
		}
	}
}

// dispatch handles one message of the server.
func (c *Conn) dispatch(body []byte) error {
	var h replyHeader
	d := decoder{b: body}
	h.decode(&d)
	if d.err != nil {
		return fmt.Errorf("%w: %s: reply header: %w", ErrConnectionLost, c.addr, d.err)
	}
	if h.Zxid > c.lastZxid.Load() {
		c.lastZxid.Store(h.Zxid) // only readLoop stores, after the handshake
	}
	switch h.Xid {
	case xidNotification:
		var w watcherEvent
		w.decode(&d)
		if d.err != nil {
			return fmt.Errorf("%w: %s: notification: %w", ErrConnectionLost, c.addr, d.err)
		}
		c.evMu.Lock()
		c.events = append(c.events, Event{Type: EventType(w.Type), State: w.State, Path: w.Path, Zxid: h.Zxid})
		c.evMu.Unlock()
		select {
		case c.evKick <- struct{}{}:
		default:
		}
		return nil
	case xidPing:
		return nil
	}
	if Error(h.Err) == -112 { // sessionExpired, as an answer
		return fmt.Errorf("zkwire: %s: %w", c.addr, ErrSessionExpired)
	}
	c.mu.Lock()
	cl := c.pending[h.Xid]
	delete(c.pending, h.Xid)
	c.mu.Unlock()
	if cl == nil {
		return nil // its caller gave up
	}
	var err error
	if h.Err != 0 {
		err = Error(h.Err)
	}
	cl.res <- result{zxid: h.Zxid, err: err, body: d.b}
	return nil
}

// writeLoop writes the queued frames, as many at a time as are queued.
func (c *Conn) writeLoop() {
	defer c.wg.Done()
	w := bufio.NewWriterSize(c.nc, 64<<10)
	for {
		select {
		case <-c.done:
			return
		case <-c.wake:
		}
		c.mu.Lock()
		out := c.out
		c.out = nil
		c.mu.Unlock()
		for _, f := range out {
			if _, err := w.Write(f); err != nil {
				c.fail(fmt.Errorf("%w: %s: %w", ErrConnectionLost, c.addr, err))
				return
			}
		}
		if err := w.Flush(); err != nil {
			c.fail(fmt.Errorf("%w: %s: %w", ErrConnectionLost, c.addr, err))
			return
		}
	}
}

// pingLoop pings the server every third of the session timeout, which
// keeps the session and shows that the server is alive.
func (c *Conn) pingLoop() {
	defer c.wg.Done()
	t := time.NewTicker(c.timeout / 3)
	defer t.Stop()
	var e encoder
	e.int32(xidPing)
	e.int32(opPing)
	frame := binary.BigEndian.AppendUint32(nil, uint32(len(e.b)))
	frame = append(frame, e.b...)
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
			c.enqueue(frame)
		}
	}
}

// enqueue queues a frame for writeLoop; it reports false when the
// connection ended.
func (c *Conn) enqueue(frame []byte) bool {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return false
	}
	c.out = append(c.out, frame)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return true
}

// do sends a request of type op whose body enc writes, and returns the
// body of the answer.
func (c *Conn) do(ctx context.Context, op int32, enc func(*encoder)) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, err
	}
	c.xid++
	if c.xid <= 0 { // wrapped: the negative xids are the server's
		c.xid = 1
	}
	cl := &call{xid: c.xid, res: make(chan result, 1)}
	e := encoder{b: make([]byte, 4, 64)}
	e.int32(cl.xid)
	e.int32(op)
	enc(&e)
	binary.BigEndian.PutUint32(e.b, uint32(len(e.b)-4))
	cl.frame = e.b
	c.pending[cl.xid] = cl
	c.out = append(c.out, cl.frame)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	select {
	case r := <-cl.res:
		return r.body, r.err
	case <-ctx.Done():
		c.mu.Lock()
		if c.pending != nil {
			delete(c.pending, cl.xid)
		}
		c.mu.Unlock()
		return nil, ctx.Err()
	}
}

// Get returns the data and stat of the znode at path (getData, without a
// one-shot watch).
func (c *Conn) Get(ctx context.Context, path string) ([]byte, Stat, error) {
	body, err := c.do(ctx, opGetData, func(e *encoder) {
		e.string(path)
		e.bool(false)
	})
	if err != nil {
		return nil, Stat{}, err
	}
	var r getDataResponse
	d := decoder{b: body}
	r.decode(&d)
	if d.err != nil {
		return nil, Stat{}, fmt.Errorf("zkwire: getData answer: %w", d.err)
	}
	return r.Data, r.Stat, nil
}

// Children returns the names of the children of the znode at path, in the
// server's order, and its stat (getChildren2, without a one-shot watch).
func (c *Conn) Children(ctx context.Context, path string) ([]string, Stat, error) {
	body, err := c.do(ctx, opGetChildren2, func(e *encoder) {
		e.string(path)
		e.bool(false)
	})
	if err != nil {
		return nil, Stat{}, err
	}
	var r getChildren2Response
	d := decoder{b: body}
	r.decode(&d)
	if d.err != nil {
		return nil, Stat{}, fmt.Errorf("zkwire: getChildren2 answer: %w", d.err)
	}
	return r.Children, r.Stat, nil
}

// AddWatch adds a watch of mode on path (addWatch, ZooKeeper 3.6+); the
// znode need not exist. Its notifications are queued for [Conn.Events]
// until the connection ends. A server older than 3.6 answers
// [ErrUnimplemented] or drops the connection.
func (c *Conn) AddWatch(ctx context.Context, path string, mode AddWatchMode) error {
	_, err := c.do(ctx, opAddWatch, func(e *encoder) {
		e.string(path)
		e.int32(int32(mode))
	})
	return err
}

// RemoveWatches removes the watches of every kind the connection has on
// path (removeWatches, type Any); a path without a watch is not an error.
func (c *Conn) RemoveWatches(ctx context.Context, path string) error {
	_, err := c.do(ctx, opRemoveWatches, func(e *encoder) {
		e.string(path)
		e.int32(3) // WatcherType.Any
	})
	if errors.Is(err, errNoWatcher) {
		return nil
	}
	return err
}

// Close closes the session (closeSession), waiting for the server's
// answer at most the read timeout, then the connection. Calls in progress
// and later ones fail with [ErrClosed]. It is idempotent.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		c.closing.Store(true)
		ctx, cancel := context.WithTimeout(context.Background(), c.readTimeout)
		_, _ = c.do(ctx, opCloseSession, func(*encoder) {}) // best effort: the session times out otherwise
		cancel()
		c.fail(ErrClosed)
		c.wg.Wait()
	})
	return nil
}
