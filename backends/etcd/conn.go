package etcd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
	"google.golang.org/grpc/connectivity"
)

// Reconnection bounds. gRPC's own default lets a connection that failed
// wait up to 120 s before it tries again, so that an etcd back after an
// outage was noticed up to two minutes late. kvconf's client retries at
// least every [reconnectMax] (±20%), so that the first attempt after the
// server answers again comes within about 2.4 s.
const (
	reconnectFirst = 250 * time.Millisecond
	reconnectMax   = 2 * time.Second
)

// link follows the client's connection to etcd for the reads: it keeps the
// cause of the last failed dial, and makes every request that finds no
// connection wait for one within the dial timeout, rather than for as long
// as its context allows, and fail naming the endpoints and the cause.
//
// The etcd client asks gRPC to wait for a connection before each request
// (wait-for-ready), so that with no server a read waited for its whole
// request timeout and then failed with only "context deadline exceeded".
type link struct {
	endpoints []string
	wait      time.Duration // the dial timeout

	mu      sync.Mutex
	addr    string // of the last failed dial
	lastErr error  // the cause of the last failed dial; nil after a success
}

// dialOptions returns the gRPC options that install l and bound the
// reconnection backoff.
func (l *link) dialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: grpcbackoff.Config{
				BaseDelay:  reconnectFirst,
				Multiplier: 1.6,
				Jitter:     0.2,
				MaxDelay:   reconnectMax,
			},
			// A server that accepts the TCP connection but does not
			// answer (stopped, overloaded) counts as down after this.
			MinConnectTimeout: l.wait,
		}),
		grpc.WithContextDialer(l.dial),
		grpc.WithChainUnaryInterceptor(l.await),
	}
}

// dial opens a TCP connection to addr, and notes the outcome.
func (l *link) dial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	l.mu.Lock()
	if err != nil {
		l.addr, l.lastErr = addr, err
	} else {
		l.addr, l.lastErr = "", nil
	}
	l.mu.Unlock()
	return conn, err
}

// cause returns the last dial failure, with its address, or nil.
func (l *link) cause() (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.addr, l.lastErr
}

// await is a unary interceptor: it lets a request through when the
// connection is ready, or once it gets ready within the dial timeout, and
// otherwise fails it with an [UnreachableError]. That error is neither a
// gRPC status nor a context error, so that the etcd client's own retries
// do not start the wait over.
func (l *link) await(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if err := l.ready(ctx, cc); err != nil {
		return err
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

// ready waits until cc is ready, within the dial timeout and ctx. It
// returns ctx's error when ctx ended first, and an [UnreachableError]
// when the dial timeout did.
func (l *link) ready(ctx context.Context, cc *grpc.ClientConn) error {
	st := cc.GetState()
	if st == connectivity.Ready {
		return nil
	}
	cc.Connect() // out of idleness, if it was idle
	wctx, cancel := context.WithTimeout(ctx, l.wait)
	defer cancel()
	for st != connectivity.Ready {
		if st == connectivity.Shutdown {
			return errors.New("connection closed")
		}
		if !cc.WaitForStateChange(wctx, st) {
			if err := ctx.Err(); err != nil {
				return err
			}
			addr, err := l.cause()
			return &UnreachableError{Endpoints: l.endpoints, Addr: addr, Wait: l.wait, State: st.String(), Err: err}
		}
		st = cc.GetState()
	}
	return nil
}

// UnreachableError reports that no connection to etcd was ready within
// the dial timeout. It names the endpoints and, when the last attempt
// failed to connect at all, its address and cause (such as "connection
// refused").
type UnreachableError struct {
	// Endpoints are the client's endpoints.
	Endpoints []string
	// Addr is the address of the last failed dial; empty when the last
	// dial succeeded (the failure came later, in TLS or HTTP/2).
	Addr string
	// Wait is how long the request waited for a connection.
	Wait time.Duration
	// State is the connection's state when the wait ended.
	State string
	// Err is the cause of the last failed dial, or nil.
	Err error
}

// Error implements error.
func (e *UnreachableError) Error() string {
	eps := strings.Join(e.Endpoints, ",")
	if e.Err != nil {
		return fmt.Sprintf("no connection to %s within %s: %v", eps, e.Wait, e.Err)
	}
	return fmt.Sprintf("no connection to %s within %s (connection %s)", eps, e.Wait, strings.ToLower(e.State))
}

// Unwrap returns the cause of the last failed dial.
func (e *UnreachableError) Unwrap() error { return e.Err }
