package haproxy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kvconf/kvconf/appliers"
	"github.com/kvconf/kvconf/internal/backoff"
)

// A server that goes in service (added, re-addressed through maintenance,
// or no longer disabled) and has a health check gets no load-balanced
// traffic before that check passed at its address:
//
//	set server B/S state drain; set server B/S health down
//	(wait until HAProxy counts it up, rise checks later)
//	set server B/S state ready
//
// "state drain" takes the server out of maintenance, where HAProxy does
// not check a server of the configuration, and keeps it out of load
// balancing; leaving maintenance makes HAProxy count the server up before
// any check ("start OK but check immediately"), so "health down", sent in
// the same line, puts it down until rise checks in a row passed. A check
// that fails, or no verdict within check_timeout, is a [*CheckError]: the
// resource falls back to its reload.

// wait is a server waiting for its health check to pass.
type wait struct {
	backend, server string
	before          srvState // before the check could run
	after           []string // to send once in service
	done            bool
}

// errChecking is the error of a poll that found servers still waiting.
var errChecking = errors.New("haproxy: health checks pending")

// CheckError reports a server whose health check did not pass when the
// applier was to put it in service: the applier kept it out of load
// balancing, and the resource falls back to its reload.
type CheckError struct {
	// Backend and Server name the server.
	Backend, Server string
	// Status is HAProxy's status of the last check, such as "L4CON", and
	// Desc its description, such as "Layer4 connection problem"; both ""
	// when unknown.
	Status, Desc string
	// Timeout is check_timeout when no check passed within it; zero when
	// a check failed.
	Timeout time.Duration
}

func (e *CheckError) Error() string {
	st := e.Status
	if st == "" {
		st = "unknown"
	}
	if e.Desc != "" {
		st += " (" + e.Desc + ")"
	}
	if e.Timeout > 0 {
		return fmt.Sprintf("haproxy: server %s/%s: health check did not pass within check_timeout %v: last check status %s",
			e.Backend, e.Server, e.Timeout, st)
	}
	return fmt.Sprintf("haproxy: server %s/%s: health check failed: %s", e.Backend, e.Server, st)
}

// arm starts putting server o.backend/o.server, in maintenance, in
// service. Without an enabled health check it sets it ready at once and
// returns nil; with one it lets the check run (see above) and returns the
// wait.
func (a *Applier) arm(ctx context.Context, o op) (*wait, error) {
	id := o.backend + "/" + o.server
	if o.adds() && !o.health {
		// An added (or replaced) server has no check but from its line
		// (add server takes no default-server).
		return nil, a.client.run(ctx, "set server "+id+" state ready")
	}
	got, err := a.client.serversState(ctx, o.backend)
	if err != nil {
		return nil, err
	}
	st, ok := got[o.backend][o.server]
	if !ok {
		return nil, fmt.Errorf("haproxy: backend %s has no server %s", o.backend, o.server)
	}
	switch {
	case o.health:
		if err := a.client.run(ctx, "enable health "+id); err != nil {
			return nil, err
		}
	case st.checkState&chkEnabled == 0:
		return nil, a.client.run(ctx, "set server "+id+" state ready")
	}
	if err := a.client.run(ctx, "set server "+id+" state drain; set server "+id+" health down"); err != nil {
		return nil, err
	}
	return &wait{backend: o.backend, server: o.server, before: st, after: o.after}, nil
}

// settle waits, up to the check timeout, for the health checks of ws to
// pass, and sets each server ready (then sends its after commands) as its
// check passes. A failed check, or a check that did not pass in time, is
// a [*CheckError].
func (a *Applier) settle(ctx context.Context, ws []*wait, env appliers.Env) error {
	if len(ws) == 0 {
		return nil
	}
	start := time.Now()
	b := ws[0].backend
	for _, w := range ws[1:] {
		if w.backend != b {
			b = ""
		}
	}
	deadline := time.Now().Add(a.check)
	wctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	var last *wait // the first server still waiting at the last poll
	err := backoff.Retry(wctx, backoff.Policy{Min: 20 * time.Millisecond, Max: 250 * time.Millisecond},
		func(ctx context.Context) error {
			got, err := a.client.serversState(ctx, b)
			if err != nil {
				return backoff.Permanent(err)
			}
			last = nil
			for _, w := range ws {
				if w.done {
					continue
				}
				st, ok := got[w.backend][w.server]
				switch {
				case !ok:
					return backoff.Permanent(fmt.Errorf("haproxy: backend %s has no server %s", w.backend, w.server))
				case st.op != srvStopped:
					// rise checks in a row passed since "health down".
					if err := a.sendAll(ctx, append([]string{"set server " + w.backend + "/" + w.server + " state ready"}, w.after...)); err != nil {
						return backoff.Permanent(err)
					}
					w.done = true
					env.Logger.Debug("health check passed", "backend", w.backend, "server", w.server, "elapsed", time.Since(start))
				case st.checkResult == chkFailed && (st.checkStatus != w.before.checkStatus || st.checkResult != w.before.checkResult):
					// A failure that is not the one seen before the check
					// could run. (The same failure again is taken for a
					// stale one, and waited out.)
					return backoff.Permanent(&CheckError{Backend: w.backend, Server: w.server})
				default:
					if last == nil {
						last = w
					}
				}
			}
			if last != nil {
				return errChecking
			}
			return nil
		}, nil)
	var ce *CheckError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ce):
	case ctx.Err() == nil && !time.Now().Before(deadline) && pending(ws, last) != nil:
		// No verdict within check_timeout, even when the time ran out
		// during a poll (before the first one saw a server waiting): the
		// poll's read deadline may pass a moment before wctx's timer
		// fires, so the clock decides.
		last = pending(ws, last)
		ce = &CheckError{Backend: last.backend, Server: last.server, Timeout: a.check}
	default:
		return fmt.Errorf("haproxy: health check wait: %w", err)
	}
	// HAProxy's words for the check's status, for the message.
	if cs, err := a.client.checkStat(ctx, ce.Backend, ce.Server); err == nil {
		ce.Status, ce.Desc = cs.status, cs.desc
	}
	return ce
}

// pending returns last when it is not nil, else the first of ws still
// waiting, or nil.
func pending(ws []*wait, last *wait) *wait {
	if last != nil {
		return last
	}
	for _, w := range ws {
		if !w.done {
			return w
		}
	}
	return nil
}
