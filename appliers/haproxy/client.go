package haproxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// maxReply bounds a Runtime API reply.
const maxReply = 16 << 20

// client talks to HAProxy's Runtime API: one connection per command, in
// the non-interactive mode (the command, a newline, the reply until the
// connection closes).
type client struct {
	network, addr string
	timeout       time.Duration
}

// newClient returns a client of socket, a unix socket path or host:port.
func newClient(socket string, timeout time.Duration) *client {
	if strings.HasPrefix(socket, "/") || strings.HasPrefix(socket, ".") {
		return &client{network: "unix", addr: socket, timeout: timeout}
	}
	return &client{network: "tcp", addr: socket, timeout: timeout}
}

// APIError is a reply of the Runtime API that says a command failed.
type APIError struct {
	// Cmd is the command.
	Cmd string
	// Reply is the first line of the reply.
	Reply string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("haproxy: runtime api: %q: %s", e.Cmd, e.Reply)
}

// do sends cmd and returns the reply.
func (c *client) do(ctx context.Context, cmd string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, c.network, c.addr)
	if err != nil {
		return "", fmt.Errorf("haproxy: runtime api: %w", err)
	}
	defer func() { _ = conn.Close() }() // the reply was read whole
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(dl); err != nil {
			return "", fmt.Errorf("haproxy: runtime api: %w", err)
		}
	}
	if _, err := io.WriteString(conn, cmd+"\n"); err != nil {
		return "", fmt.Errorf("haproxy: runtime api: %q: %w", cmd, err)
	}
	b, err := io.ReadAll(io.LimitReader(conn, maxReply))
	if err != nil {
		return "", fmt.Errorf("haproxy: runtime api: %q: %w", cmd, err)
	}
	return string(b), nil
}

// run sends a command that replies nothing, or one of the replies in ok
// (prefixes), on success; any other reply is an [*APIError].
func (c *client) run(ctx context.Context, cmd string, ok ...string) error {
	out, err := c.do(ctx, cmd)
	if err != nil {
		return err
	}
	reply := strings.TrimSpace(out)
	if reply == "" {
		return nil
	}
	for _, p := range ok {
		if strings.HasPrefix(reply, p) {
			return nil
		}
	}
	first, _, _ := strings.Cut(reply, "\n")
	return &APIError{Cmd: cmd, Reply: first}
}

// srvState is one server as "show servers state" reports it.
type srvState struct {
	host   string
	port   int
	weight int
	admin  int
}

// adminMaint is HAProxy's mask of the admin-state flags that mean
// maintenance (SRV_ADMF_MAINT: forced, inherited, resolution).
const adminMaint = 0x23

// serversState returns HAProxy's servers, by backend and name.
func (c *client) serversState(ctx context.Context) (map[string]map[string]srvState, error) {
	out, err := c.do(ctx, "show servers state")
	if err != nil {
		return nil, err
	}
	return parseServersState(out)
}

// parseServersState parses the reply of "show servers state" (format
// version 1, with its "# be_id be_name ..." header).
func parseServersState(out string) (map[string]map[string]srvState, error) {
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, maxReply)
	col := map[string]int{}
	res := map[string]map[string]srvState{}
	n := 0
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		n++
		if n == 1 {
			if line != "1" {
				return nil, fmt.Errorf("haproxy: show servers state: format %q, want 1", line)
			}
			continue
		}
		if strings.HasPrefix(line, "#") {
			for i, f := range strings.Fields(strings.TrimPrefix(line, "#")) {
				col[f] = i
			}
			continue
		}
		if line == "" {
			continue
		}
		fs := strings.Fields(line)
		get := func(name string) (string, error) {
			i, ok := col[name]
			if !ok || i >= len(fs) {
				return "", fmt.Errorf("haproxy: show servers state: no column %s", name)
			}
			return fs[i], nil
		}
		var vals [6]string
		var err error
		for i, name := range []string{"be_name", "srv_name", "srv_addr", "srv_port", "srv_uweight", "srv_admin_state"} {
			if vals[i], err = get(name); err != nil {
				return nil, err
			}
		}
		var st srvState
		var e1, e2, e3 error
		st.host = vals[2]
		st.port, e1 = strconv.Atoi(vals[3])
		st.weight, e2 = strconv.Atoi(vals[4])
		st.admin, e3 = strconv.Atoi(vals[5])
		if err := errors.Join(e1, e2, e3); err != nil {
			return nil, fmt.Errorf("haproxy: show servers state: %w", err)
		}
		if res[vals[0]] == nil {
			res[vals[0]] = map[string]srvState{}
		}
		res[vals[0]][vals[1]] = st
	}
	if n == 0 {
		return nil, errors.New("haproxy: show servers state: empty reply")
	}
	return res, nil
}

// isBusy reports whether err is "del server"'s refusal of a server that
// still has connections.
func isBusy(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && bytes.Contains(bytes.ToLower([]byte(ae.Reply)), []byte("still has connections"))
}
