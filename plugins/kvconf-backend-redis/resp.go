package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// conn is a connection to Redis that speaks RESP2.
type conn struct {
	nc      net.Conn
	r       *bufio.Reader
	w       *bufio.Writer
	timeout time.Duration
}

func (c *conn) close() { _ = c.nc.Close() } // the connection is dropped either way

// redisError is an error reply.
type redisError string

func (e redisError) Error() string { return string(e) }

// dial connects to node, authenticates and selects its database.
func dial(ctx context.Context, cfg config, n node) (*conn, error) {
	d := net.Dialer{Timeout: cfg.timeout}
	nc, err := d.DialContext(ctx, n.network, n.addr)
	if err != nil {
		return nil, fmt.Errorf("redis %s: %w", n.addr, err)
	}
	c := &conn{nc: nc, r: bufio.NewReader(nc), w: bufio.NewWriter(nc), timeout: cfg.timeout}
	if cfg.password != "" {
		args := []string{"AUTH", cfg.password}
		if cfg.username != "" {
			args = []string{"AUTH", cfg.username, cfg.password}
		}
		if _, err := c.do(ctx, args...); err != nil {
			c.close()
			var re redisError
			if errors.As(err, &re) {
				return nil, fmt.Errorf("redis %s: the server refused the credentials of -username/-password (options username, password): %w", n.addr, err)
			}
			return nil, fmt.Errorf("redis %s: auth: %w", n.addr, err)
		}
	}
	if n.db != 0 {
		if _, err := c.do(ctx, "SELECT", strconv.Itoa(n.db)); err != nil {
			c.close()
			return nil, fmt.Errorf("redis %s: select database %d (-node %s/%d): %w", n.addr, n.db, n.addr, n.db, err)
		}
	}
	return c, nil
}

// noAuth rewrites the error of a server that wants a password when none
// was given.
func noAuth(addr string, err error) error {
	var re redisError
	if errors.As(err, &re) && strings.HasPrefix(string(re), "NOAUTH") {
		return fmt.Errorf("redis %s: the server requires a password: set -password (option password): %w", addr, err)
	}
	return err
}

// write sends a command without reading its reply.
func (c *conn) write(args ...string) error {
	fmt.Fprintf(c.w, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(c.w, "$%d\r\n%s\r\n", len(a), a)
	}
	return c.w.Flush()
}

// do sends a command and reads its reply: a string, an int64, nil or a
// []any of those; an error reply is a redisError. Each command has the
// timeout; ctx is checked before.
func (c *conn) do(ctx context.Context, args ...string) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := c.nc.SetDeadline(time.Now().Add(c.timeout)); err != nil {
		return nil, err
	}
	if err := c.write(args...); err != nil {
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

// reply reads one reply.
func (c *conn) reply() (any, error) {
	line, err := c.r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 3 || !strings.HasSuffix(line, "\r\n") {
		return nil, errors.New("malformed reply line")
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
	return nil, fmt.Errorf("unknown reply type %q", line[0])
}
