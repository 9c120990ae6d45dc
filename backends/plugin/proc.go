package plugin

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/backends/plugin/sdk"
	"github.com/kvconf/kvconf/internal/backoff"
)

// errRevZero reports an answer with revision 0, which the protocol forbids.
var errRevZero = errors.New("plugin answered revision 0 (revisions start at 1)")

// proc is one process of the plugin.
type proc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	base  uint64 // added to the process's revisions; set before use

	out     chan []byte   // requests, taken by the writer
	cancels chan []byte   // cancel requests, sent without waiting
	quit    chan struct{} // closed by stop: the writer closes stdin

	stopOnce sync.Once
	timer    *time.Timer // kills the process after the stop timeout
	reaped   atomic.Bool // set once Wait returned

	mu      sync.Mutex
	pending map[uint64]chan sdk.Response
	err     error         // why the process died; set before dead closes
	dead    chan struct{} // closed once the process exited
}

// stop closes the process's stdin and kills it after grace, once.
func (p *proc) stop(grace time.Duration) {
	p.stopOnce.Do(func() {
		close(p.quit)
		p.timer = time.AfterFunc(grace, p.kill)
	})
}

// kill kills the process and the processes it started, unless it was
// reaped already.
func (p *proc) kill() {
	if !p.reaped.Load() {
		killGroup(p.cmd)
	}
}

// register makes a channel for the response to request id.
func (p *proc) register(id uint64) chan sdk.Response {
	ch := make(chan sdk.Response, 1)
	p.mu.Lock()
	p.pending[id] = ch
	p.mu.Unlock()
	return ch
}

func (p *proc) unregister(id uint64) {
	p.mu.Lock()
	delete(p.pending, id)
	p.mu.Unlock()
}

// deliver hands r to the request waiting for it, if any.
func (p *proc) deliver(r sdk.Response) {
	p.mu.Lock()
	ch := p.pending[r.ID]
	delete(p.pending, r.ID)
	p.mu.Unlock()
	if ch != nil {
		ch <- r // buffered, and only one response per id is delivered
	}
}

// exitErr returns why the process died, wrapping [ErrPluginExited].
func (p *proc) exitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// running returns the running process of the plugin, starting it first if
// there is none: after the restart backoff when earlier processes failed.
func (c *Client) running(ctx context.Context) (*proc, error) {
	c.mu.Lock()
	p := c.p
	c.mu.Unlock()
	if p != nil && !isDone(p.dead) {
		return p, nil
	}
	select {
	case c.startSem <- struct{}{}:
	case <-ctx.Done():
		return nil, c.fail("start", ctx.Err())
	case <-c.done:
		return nil, c.fail("start", backends.ErrClosed)
	}
	defer func() { <-c.startSem }()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, c.fail("start", backends.ErrClosed)
	}
	if c.p != nil && !isDone(c.p.dead) { // started by another call meanwhile
		p := c.p
		c.mu.Unlock()
		return p, nil
	}
	var wait time.Duration
	if c.fails > 0 {
		delay := backoff.Policy{Min: min(c.backoff, MaxRestartBackoff), Max: MaxRestartBackoff}.Delay(c.fails)
		wait = time.Until(c.lastExit.Add(delay))
	}
	c.mu.Unlock()
	if wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, c.fail("restart", ctx.Err())
		case <-c.done:
			t.Stop()
			return nil, c.fail("restart", backends.ErrClosed)
		}
	}
	p, err := c.start(ctx)
	if err != nil {
		c.mu.Lock()
		c.fails++
		c.lastExit = time.Now()
		c.mu.Unlock()
		return nil, err
	}
	return p, nil
}

// start starts a process of the plugin, checks its greeting and configures
// it, within the handshake timeout and ctx, and makes it the running one.
func (c *Client) start(ctx context.Context) (*proc, error) {
	cmd := exec.Command(c.argv[0], c.argv[1:]...)
	cmd.Stderr = c.stderr
	cmd.WaitDelay = c.stop
	setProcessGroup(cmd)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, c.fail("start", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		_ = stdin.Close() // unused
		return nil, c.fail("start", err)
	}
	p := &proc{
		cmd:     cmd,
		stdin:   stdin,
		out:     make(chan []byte),
		cancels: make(chan []byte, 64),
		quit:    make(chan struct{}),
		pending: map[uint64]chan sdk.Response{},
		dead:    make(chan struct{}),
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, c.fail("start", backends.ErrClosed)
	}
	c.wg.Add(2)
	c.mu.Unlock()
	if err := cmd.Start(); err != nil {
		c.wg.Add(-2)
		return nil, c.fail("start", err)
	}
	hello := make(chan error, 1)
	go c.read(p, bufio.NewReader(stdout), hello)
	go c.write(p)

	hctx, cancel := context.WithTimeout(ctx, c.handshake)
	defer cancel()
	abort := func(err error) (*proc, error) {
		p.stop(0)
		<-p.dead
		return nil, err
	}
	select {
	case err := <-hello:
		if err != nil {
			return abort(err)
		}
	case <-p.dead:
		return nil, c.fail("handshake", p.exitErr())
	case <-hctx.Done():
		if ctx.Err() != nil {
			return abort(c.fail("handshake", ctx.Err()))
		}
		return abort(c.fail("handshake", fmt.Errorf("no greeting within %v", c.handshake)))
	case <-c.done:
		return abort(c.fail("handshake", backends.ErrClosed))
	}
	if _, err := c.roundTrip(hctx, p, sdk.Request{Method: sdk.MethodConfigure, Options: c.options}); err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			err = fmt.Errorf("no answer within %v", c.handshake)
		}
		return abort(c.fail("configure", err))
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return abort(c.fail("start", backends.ErrClosed))
	}
	p.base = c.high
	c.p = p
	c.mu.Unlock()
	return p, nil
}

// read reads the greeting of p, reports it on hello, then hands every
// response to the request waiting for it. When stdout ends or breaks the
// protocol, it stops p, waits for it to exit and fails the requests still
// waiting.
func (c *Client) read(p *proc, r *bufio.Reader, hello chan<- error) {
	defer c.wg.Done()
	cause := c.readAll(p, r, hello)
	p.stop(c.stop)
	werr := p.cmd.Wait()
	p.reaped.Store(true)
	p.timer.Stop()
	err := fmt.Errorf("%w: %w", ErrPluginExited, cause)
	if werr != nil {
		err = fmt.Errorf("%w (%w)", err, werr)
	}
	c.mu.Lock()
	if c.p == p {
		c.p = nil
	}
	if !c.closed {
		c.fails++
		c.lastExit = time.Now()
	}
	c.mu.Unlock()
	p.mu.Lock()
	p.err = err
	p.mu.Unlock()
	close(p.dead)
}

// readAll is the loop of read; it returns why it ended.
func (c *Client) readAll(p *proc, r *bufio.Reader, hello chan<- error) error {
	line, err := r.ReadBytes('\n')
	if err != nil {
		err := fmt.Errorf("no greeting: %w", err)
		hello <- c.fail("handshake", err)
		return err
	}
	var g sdk.Greeting
	if err := json.Unmarshal(line, &g); err != nil || g.Protocol == "" {
		err := fmt.Errorf("the first line is not a %s greeting", Protocol)
		hello <- c.fail("handshake", err)
		return err
	}
	if g.Protocol != Protocol || g.Version != Version {
		err := fmt.Errorf("%s speaks protocol %q version %d, kvconf speaks %q version %d",
			c.name(), g.Protocol, g.Version, Protocol, Version)
		hello <- fmt.Errorf("plugin: %w", err)
		return err
	}
	hello <- nil
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			if errors.Is(err, io.EOF) {
				return errors.New("stdout closed")
			}
			return err
		}
		var resp sdk.Response
		if err := json.Unmarshal(line, &resp); err != nil {
			return fmt.Errorf("malformed response line: %w", err)
		}
		p.deliver(resp)
	}
}

// write writes the requests of p to its stdin until p stops, then closes
// stdin. A failed write stops p.
func (c *Client) write(p *proc) {
	defer c.wg.Done()
	for {
		var b []byte
		select {
		case b = <-p.out:
		case b = <-p.cancels:
		case <-p.quit:
			_ = p.stdin.Close() // the process may be gone already
			return
		}
		if _, err := p.stdin.Write(b); err != nil {
			p.stop(c.stop)
		}
	}
}

// roundTrip sends req to p and waits for its response. An error response
// is returned as an error, one that wraps [errors.ErrUnsupported] for
// "unsupported". When ctx ends first, a cancel request for req is sent.
func (c *Client) roundTrip(ctx context.Context, p *proc, req sdk.Request) (sdk.Response, error) {
	req.ID = c.nextID.Add(1)
	b, err := json.Marshal(req)
	if err != nil {
		return sdk.Response{}, err
	}
	ch := p.register(req.ID)
	defer p.unregister(req.ID)
	select {
	case p.out <- append(b, '\n'):
	case <-p.dead:
		return sdk.Response{}, p.exitErr()
	case <-ctx.Done():
		return sdk.Response{}, ctx.Err()
	case <-c.done:
		return sdk.Response{}, backends.ErrClosed
	}
	var r sdk.Response
	select {
	case r = <-ch:
	case <-p.dead:
		select {
		case r = <-ch:
		default:
			return sdk.Response{}, p.exitErr()
		}
	case <-ctx.Done():
		if b, err := json.Marshal(sdk.Request{ID: c.nextID.Add(1), Method: sdk.MethodCancel, Target: req.ID}); err == nil {
			select {
			case p.cancels <- append(b, '\n'):
			default: // the plugin is not reading; it learns nothing
			}
		}
		return sdk.Response{}, ctx.Err()
	case <-c.done:
		return sdk.Response{}, backends.ErrClosed
	}
	if r.Error != "" {
		if r.Error == sdk.Unsupported {
			return sdk.Response{}, fmt.Errorf("%s: %w", req.Method, errors.ErrUnsupported)
		}
		return sdk.Response{}, &Error{Method: req.Method, Message: r.Error}
	}
	return r, nil
}

// Error is an error that the plugin answered to a request.
type Error struct {
	// Method is the request's method: snapshot, watch or configure.
	Method string
	// Message is the plugin's error message.
	Message string
}

func (e *Error) Error() string { return "plugin error: " + e.Message }

// isDone reports whether ch is closed.
func isDone(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
