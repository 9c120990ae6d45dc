package metadata

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// errNotFound is the answer 404 to the GET of a sub-tree.
var errNotFound = errors.New("metadata: not found")

// escapePath escapes each segment of the key path p for a URL.
func escapePath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// target returns the URL of path p with the raw query q, and its form for
// messages, without a password.
func (c *Client) target(p, q string) (string, string) {
	u := *c.base
	u.RawPath = c.base.EscapedPath() + escapePath(p)
	u.Path = c.base.Path + p
	u.RawQuery = q
	return u.String(), u.Redacted()
}

// redacted returns the URL of path p with the raw query q, for messages.
func (c *Client) redacted(p, q string) string {
	_, r := c.target(p, q)
	return r
}

// call is a request under way.
type call struct {
	ctx     context.Context // bounded by timeout
	cancel  context.CancelFunc
	timeout time.Duration
	shown   string // the URL, for messages
}

// bodyError wraps err, met reading the body of resp. When the request's
// time ran out (the connection is then closed under the reader, which
// says "use of closed network connection"), it says so, naming the option
// that sets the time.
func (r *call) bodyError(parent context.Context, resp *http.Response, err error) error {
	if parent.Err() == nil && errors.Is(r.ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("metadata: GET %s: %s: body not read within %s (request_timeout): %w",
			r.shown, resp.Status, r.timeout, context.DeadlineExceeded)
	}
	return fmt.Errorf("metadata: GET %s: %s: reading the body: %w", r.shown, resp.Status, err)
}

// do sends a GET of path p with query q within timeout, with the extra
// headers and those of extra. Errors name the URL, never a header value.
// The caller closes the body and calls the call's cancel.
func (c *Client) do(ctx context.Context, p, q string, timeout time.Duration, extra http.Header) (*http.Response, *call, error) {
	target, shown := c.target(p, q)
	rctx, cancel := context.WithTimeout(ctx, timeout)
	r := &call{ctx: rctx, cancel: cancel, timeout: timeout, shown: shown}
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, target, nil)
	if err != nil {
		cancel()
		return nil, r, fmt.Errorf("metadata: GET %s: %w", shown, err)
	}
	req.Header = c.header.Clone()
	if h := req.Header.Get("Host"); h != "" {
		req.Host = h
		req.Header.Del("Host")
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "application/json")
	}
	for k, vs := range extra {
		req.Header[k] = vs
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		defer cancel()
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its message repeats the URL
		}
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil && errors.Is(rctx.Err(), context.DeadlineExceeded) {
			return nil, r, fmt.Errorf("metadata: GET %s: no answer within %s (request_timeout): %w", shown, timeout, err)
		}
		return nil, r, fmt.Errorf("metadata: GET %s: %w", shown, err)
	}
	return resp, r, nil
}

// done drains (a little of) and closes a response body, so that the
// connection can serve again.
func done(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close() // a read-only body: nothing to lose
}

// statusError reports a non-2xx answer. The body is not shown: a server
// may echo the request, headers included.
func statusError(shown string, resp *http.Response) error {
	return fmt.Errorf("metadata: GET %s: %s", shown, resp.Status)
}

// get reads the sub-tree at path p ("" for the root) and flattens it. A
// 404 for a sub-path is [errNotFound]. Unless the mode is poll, the
// request carries the validators of the previous answer, and a 304 gives
// that answer's keys again.
func (c *Client) get(ctx context.Context, p string) (map[string]string, error) {
	var prev *answer
	extra := http.Header{}
	if c.mode != ModePoll {
		c.mu.Lock()
		prev = c.answers[p]
		c.mu.Unlock()
		switch {
		case prev == nil:
		case prev.etag != "":
			extra.Set("If-None-Match", prev.etag)
		case prev.lastModified != "":
			extra.Set("If-Modified-Since", prev.lastModified)
		default:
			prev = nil
		}
	}
	resp, r, err := c.do(ctx, p, "", c.timeout, extra)
	if err != nil {
		return nil, err
	}
	defer r.cancel()
	defer done(resp)
	switch {
	case resp.StatusCode == http.StatusNotModified && prev != nil:
		return prev.kvs, nil
	case resp.StatusCode == http.StatusNotFound && p != "":
		return nil, errNotFound
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		return nil, statusError(r.shown, resp)
	}
	kvs := map[string]string{}
	if err := flatten(resp.Body, p, kvs); err != nil {
		if ctx.Err() != nil || r.ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
			return nil, r.bodyError(ctx, resp, err)
		}
		return nil, fmt.Errorf("metadata: GET %s: %s: body is not one JSON value (Content-Type %q): %w",
			r.shown, resp.Status, resp.Header.Get("Content-Type"), err)
	}
	if c.mode != ModePoll {
		a := &answer{kvs: kvs, etag: resp.Header.Get("ETag"), lastModified: resp.Header.Get("Last-Modified")}
		c.mu.Lock()
		c.answers[p] = a
		c.mu.Unlock()
	}
	return kvs, nil
}

// getVersion reads the server's version where [Client.detect] found it
// (/version until then); with wait not
// empty, as a long poll that answers once the version is no longer wait
// (or after the max wait). ok is false when the server has no version: it
// answered a 4xx, or something other than a JSON string or number.
func (c *Client) getVersion(ctx context.Context, wait string) (version string, ok bool, err error) {
	c.mu.Lock()
	at := c.versionAt
	c.mu.Unlock()
	return c.getVersionAt(ctx, at, wait)
}

// getVersionAt is getVersion with the version at path at.
func (c *Client) getVersionAt(ctx context.Context, at, wait string) (version string, ok bool, err error) {
	q, timeout := "", c.timeout
	if wait != "" {
		q = "wait=true&value=" + url.QueryEscape(wait) + "&maxWait=" + strconv.Itoa(int(c.maxWait/time.Second))
		timeout += c.maxWait
	}
	resp, r, err := c.do(ctx, at, q, timeout, nil)
	if err != nil {
		return "", false, err
	}
	defer r.cancel()
	defer done(resp)
	switch {
	case resp.StatusCode >= 400 && resp.StatusCode <= 499:
		return "", false, nil
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		return "", false, statusError(r.shown, resp)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if err != nil {
		return "", false, r.bodyError(ctx, resp, err)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return "", false, nil
	}
	switch v := v.(type) {
	case string:
		return v, true, nil
	case json.Number:
		return string(v), true, nil
	}
	return "", false, nil
}
