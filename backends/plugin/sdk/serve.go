package sdk

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"

	"github.com/kvconf/kvconf/backends"
)

// Backend is what a plugin serves: a backend that takes its options from
// kvconf's configure request and reads snapshots. A Backend that also
// implements [backends.Watcher] answers watch requests (otherwise they
// are answered [Unsupported]); one that implements [backends.Describer]
// or [Optioner] says so in its greeting; one that implements [io.Closer]
// is closed when kvconf stops the plugin.
//
// Configure is called before any other method, and again each time kvconf
// sends options (once per process today). Snapshot and Watch may be called
// concurrently, each with a context that ends when kvconf cancels the
// request or stops the plugin.
type Backend interface {
	// Configure takes the options, by key; an error is reported to
	// kvconf, which fails to start the backend with it.
	Configure(ctx context.Context, options map[string]string) error
	// Snapshot returns every key under prefixes, at a revision of 1 or
	// more (see [backends.Backend]).
	Snapshot(ctx context.Context, prefixes []string) (backends.Snapshot, error)
}

// Optioner is implemented by backends that declare their options in the
// greeting, so that kvconf can check the options of -backend NAME and
// "kvconf plugins" can list them.
type Optioner interface {
	// Options returns the options the backend takes.
	Options() []Option
}

// Serve runs b as a plugin on the process's stdin and stdout until kvconf
// closes stdin, then exits the process: with status 0, or 1 after logging
// the error to stderr (which is kvconf's) when the protocol broke (see
// [ServeIO]).
func Serve(b Backend) {
	if err := ServeIO(context.Background(), b, os.Stdin, os.Stdout); err != nil {
		slog.New(slog.NewTextHandler(os.Stderr, nil)).Error("plugin stopped", "err", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// ServeIO runs b as a plugin that reads kvconf's requests from r and writes
// its greeting and responses to w. It returns nil when r ends (kvconf
// stops the plugin that way), an error when a request line is not JSON or
// w fails; either way after every request in progress returned and b was
// closed (if it implements [io.Closer]). ctx ending stops it too.
func ServeIO(ctx context.Context, b Backend, r io.Reader, w io.Writer) error {
	s := &server{b: b, w: bufio.NewWriter(w), cancels: map[uint64]context.CancelFunc{}}
	g := Greeting{Protocol: Protocol, Version: Version}
	if d, ok := b.(backends.Describer); ok {
		g.Description = d.Description()
	}
	if o, ok := b.(Optioner); ok {
		g.Options = o.Options()
	}
	ctx, cancel := context.WithCancelCause(ctx)
	s.cancel = cancel
	err := s.send(g)
	if err == nil {
		err = s.loop(ctx, bufio.NewReader(r))
	}
	cancel(nil)
	s.wg.Wait()
	if c, ok := b.(io.Closer); ok {
		if cerr := c.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close: %w", cerr)
		}
	}
	if err == nil {
		err = context.Cause(ctx)
		if errors.Is(err, context.Canceled) {
			err = nil // ended by the loop itself
		}
	}
	return err
}

// server is one run of [ServeIO].
type server struct {
	b      Backend
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup

	wmu sync.Mutex
	w   *bufio.Writer

	mu      sync.Mutex
	cancels map[uint64]context.CancelFunc // by request ID
}

// loop reads requests until r ends.
func (s *server) loop(ctx context.Context, r *bufio.Reader) error {
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 && ctx.Err() == nil {
			var req Request
			if jerr := json.Unmarshal(line, &req); jerr != nil {
				return fmt.Errorf("malformed request: %w", jerr)
			}
			s.handle(ctx, req)
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read requests: %w", err)
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// handle answers req: configure at once (it comes before the others),
// snapshot and watch in a goroutine of their own.
func (s *server) handle(ctx context.Context, req Request) {
	switch req.Method {
	case MethodConfigure:
		resp := Response{ID: req.ID}
		opts := req.Options
		if opts == nil {
			opts = map[string]string{}
		}
		if err := s.b.Configure(ctx, opts); err != nil {
			resp.Error = err.Error()
		}
		s.reply(resp)
	case MethodSnapshot, MethodWatch:
		rctx, cancel := context.WithCancel(ctx)
		s.mu.Lock()
		s.cancels[req.ID] = cancel
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			resp := s.answer(rctx, req)
			s.mu.Lock()
			delete(s.cancels, req.ID)
			s.mu.Unlock()
			cancel()
			s.reply(resp)
		}()
	case MethodCancel:
		s.mu.Lock()
		if cancel := s.cancels[req.Target]; cancel != nil {
			cancel()
		}
		s.mu.Unlock()
	default:
		s.reply(Response{ID: req.ID, Error: Unsupported})
	}
}

// answer runs a snapshot or a watch request.
func (s *server) answer(ctx context.Context, req Request) Response {
	resp := Response{ID: req.ID}
	fail := func(err error) Response {
		switch {
		case ctx.Err() != nil:
			resp.Error = Canceled
		case errors.Is(err, errors.ErrUnsupported):
			resp.Error = Unsupported
		default:
			resp.Error = err.Error()
		}
		return resp
	}
	if req.Method == MethodSnapshot {
		snap, err := s.b.Snapshot(ctx, req.Prefixes)
		if err != nil {
			return fail(err)
		}
		resp.Rev, resp.KVs = snap.Rev, snap.KVs
		return resp
	}
	wt, ok := s.b.(backends.Watcher)
	if !ok {
		return fail(errors.ErrUnsupported)
	}
	u, err := wt.Watch(ctx, req.Prefixes, req.After)
	if err != nil {
		return fail(err)
	}
	resp.Rev = u.Rev
	switch {
	case u.Full != nil:
		resp.Full = u.Full.KVs
		if resp.Full == nil {
			resp.Full = map[string]string{}
		}
	case len(u.Changes) > 0:
		resp.Changes = make([]Change, len(u.Changes))
		for i, c := range u.Changes {
			resp.Changes[i] = Change{Key: c.Key, Value: c.Value, Deleted: c.Deleted}
		}
	}
	return resp
}

// reply writes resp; a failed write ends the server, kvconf being gone.
func (s *server) reply(resp Response) {
	if err := s.send(resp); err != nil {
		s.cancel(err)
	}
}

// send writes v as one line.
func (s *server) send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if _, err := s.w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}
