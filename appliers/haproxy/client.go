package haproxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
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
	admin  int // srv_admin_state: a mask of SRV_ADMF_* flags
	op     int // srv_op_state: srvStopped, or up in some way
	// The health check: srv_check_status (HAProxy's HCHK_STATUS_* number,
	// only compared here, never interpreted), srv_check_result (chkFailed
	// and the other CHK_RES_* values) and srv_check_state (CHK_ST_* flags).
	checkStatus, checkResult, checkState int
}

// Values of "show servers state" fields, as management.txt (format 1)
// documents them.
const (
	// adminMaint is the mask of the srv_admin_state flags that mean
	// maintenance (SRV_ADMF_FMAINT, IMAINT and RMAINT).
	adminMaint = 0x23
	// adminDrain is the mask of the srv_admin_state flags that mean drain
	// (SRV_ADMF_FDRAIN and IDRAIN).
	adminDrain = 0x18
	// srvStopped is the srv_op_state of a server that is down;
	// srvStarting (in its slowstart) and srvRunning of one that is up and
	// takes new traffic (unlike SRV_ST_STOPPING).
	srvStopped  = 0
	srvStarting = 1
	srvRunning  = 2
	// chkFailed is the srv_check_result of a failed check (CHK_RES_FAILED).
	chkFailed = 2
	// chkEnabled is the srv_check_state flag of a check that is
	// administratively enabled (CHK_ST_ENABLED).
	chkEnabled = 0x04
)

// serversState returns HAProxy's servers, by backend and name: those of
// backend b, or of all backends when b is "".
func (c *client) serversState(ctx context.Context, b string) (map[string]map[string]srvState, error) {
	cmd := "show servers state"
	if b != "" {
		cmd += " " + b
	}
	out, err := c.do(ctx, cmd)
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
		var vals [3]string
		var err error
		for i, name := range []string{"be_name", "srv_name", "srv_addr"} {
			if vals[i], err = get(name); err != nil {
				return nil, err
			}
		}
		st := srvState{host: vals[2]}
		for _, f := range []struct {
			name string
			v    *int
		}{
			{"srv_port", &st.port}, {"srv_uweight", &st.weight}, {"srv_admin_state", &st.admin},
			{"srv_op_state", &st.op}, {"srv_check_status", &st.checkStatus},
			{"srv_check_result", &st.checkResult}, {"srv_check_state", &st.checkState},
		} {
			v, err := get(f.name)
			if err != nil {
				return nil, err
			}
			if *f.v, err = strconv.Atoi(v); err != nil {
				return nil, fmt.Errorf("haproxy: show servers state: %s: %w", f.name, err)
			}
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

// checkStat is what "show stat" says of a server's last health check.
type checkStat struct {
	status string // check_status, such as "L4CON"; "" when unknown
	desc   string // check_desc, such as "Layer4 connection problem"
}

// statRow is what "show stat" says of a server.
type statRow struct {
	check  checkStat
	backup bool // bck: the server is a backup server
}

// stat returns what "show stat" says of the servers of backend b, by
// backend and name.
func (c *client) stat(ctx context.Context, b string) (map[string]map[string]statRow, error) {
	out, err := c.do(ctx, "show stat "+b+" 4 -1")
	if err != nil {
		return nil, err
	}
	return parseStat(out)
}

// checkStat returns what "show stat" says of the health check of server
// s of backend b.
func (c *client) checkStat(ctx context.Context, b, s string) (checkStat, error) {
	out, err := c.do(ctx, "show stat "+b+" 4 -1")
	if err != nil {
		return checkStat{}, err
	}
	return parseCheckStat(out, b, s)
}

// parseCheckStat returns what the CSV of "show stat" says of the health
// check of server s of backend b.
func parseCheckStat(out, b, s string) (checkStat, error) {
	rows, err := parseStat(out)
	if err != nil {
		return checkStat{}, err
	}
	row, ok := rows[b][s]
	if !ok {
		return checkStat{}, fmt.Errorf("haproxy: show stat: no server %s/%s", b, s)
	}
	return row.check, nil
}

// parseStat parses the CSV of "show stat" (its first line the "#
// pxname,svname,..." header) and returns its servers, by backend and
// name: check_status, without the "* " that marks a check in progress,
// check_desc, and bck. Rows of frontends and backends are left out.
func parseStat(out string) (map[string]map[string]statRow, error) {
	r := csv.NewReader(strings.NewReader(strings.TrimPrefix(out, "# ")))
	r.FieldsPerRecord = -1
	r.LazyQuotes = true
	head, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("haproxy: show stat: %w", err)
	}
	col := map[string]int{}
	for i, name := range head {
		col[name] = i
	}
	for _, name := range []string{"pxname", "svname", "bck"} {
		if _, ok := col[name]; !ok {
			return nil, fmt.Errorf("haproxy: show stat: no column %s", name)
		}
	}
	field := func(rec []string, name string) string {
		if i, ok := col[name]; ok && i < len(rec) {
			return rec[i]
		}
		return ""
	}
	res := map[string]map[string]statRow{}
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return res, nil
		}
		if err != nil {
			return nil, fmt.Errorf("haproxy: show stat: %w", err)
		}
		b, s := field(rec, "pxname"), field(rec, "svname")
		if s == "FRONTEND" || s == "BACKEND" || b == "" {
			continue
		}
		if res[b] == nil {
			res[b] = map[string]statRow{}
		}
		res[b][s] = statRow{
			check:  checkStat{status: strings.TrimPrefix(field(rec, "check_status"), "* "), desc: field(rec, "check_desc")},
			backup: field(rec, "bck") == "1",
		}
	}
}

// isBusy reports whether err is "del server"'s refusal of a server that
// still has connections.
func isBusy(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && bytes.Contains(bytes.ToLower([]byte(ae.Reply)), []byte("still has connections"))
}
