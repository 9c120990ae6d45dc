package vault

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/kvconf/kvconf/internal/redact"
)

// StatusError is an answer of Vault other than a success. Its message
// holds the operation, the Vault path, the HTTP status and Vault's own
// error texts, never a token or a secret's value.
type StatusError struct {
	// Op is what the client was doing, such as "read".
	Op string
	// Path is the Vault API path, after /v1/.
	Path string
	// Code is the HTTP status code.
	Code int
	// Errors are the texts of Vault's "errors" list.
	Errors []string
}

func (e *StatusError) Error() string {
	msg := http.StatusText(e.Code)
	if len(e.Errors) > 0 {
		msg = strings.Join(e.Errors, "; ")
	}
	return fmt.Sprintf("vault: %s %s: %d %s", e.Op, e.Path, e.Code, msg)
}

// maxBody bounds what the client reads of one answer (a listing or a
// secret); Vault's own default request limit is 32 MiB.
const maxBody = 64 << 20

// escapePath escapes each "/"-separated segment of a Vault path.
func escapePath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// request is one call of the HTTP API.
type request struct {
	op     string // for errors: "read", "list", "login"...
	method string
	path   string // after /v1/, escaped
	query  string
	body   any    // JSON-encoded when not nil
	token  string // X-Vault-Token, when not empty
}

// do sends r to the nodes in order until one answers, and decodes a
// success's JSON body into out (when not nil). An answer other than a
// success is a [*StatusError]. Errors never show the token, nor the
// configured credentials.
func (c *Client) do(ctx context.Context, r request, out any) error {
	err := c.try(ctx, r, out)
	if err != nil {
		return redact.Error(err, append(c.secrets, r.token)...)
	}
	return nil
}

func (c *Client) try(ctx context.Context, r request, out any) error {
	var body []byte
	if r.body != nil {
		var err error
		if body, err = json.Marshal(r.body); err != nil {
			return fmt.Errorf("vault: %s %s: encode: %w", r.op, r.path, err)
		}
	}
	var errs []error
	for _, n := range c.nodes {
		target := n.String() + "/v1/" + r.path
		if r.query != "" {
			target += "?" + r.query
		}
		err := c.send(ctx, r, target, body, out)
		if err == nil {
			return nil
		}
		var se *StatusError
		if errors.As(err, &se) || ctx.Err() != nil {
			return err
		}
		errs = append(errs, err) // unreachable: try the next node
	}
	return errors.Join(errs...)
}

func (c *Client) send(ctx context.Context, r request, target string, body []byte, out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, target, rd)
	if err != nil {
		return fmt.Errorf("vault: %s %s: %w", r.op, r.path, err)
	}
	req.Header.Set("X-Vault-Request", "true")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.token != "" {
		req.Header.Set("X-Vault-Token", r.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("vault: %s %s: %w", r.op, r.path, err)
	}
	defer func() { _ = resp.Body.Close() }() // read in full or abandoned
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("vault: %s %s: read answer: %w", r.op, r.path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		se := &StatusError{Op: r.op, Path: r.path, Code: resp.StatusCode}
		var e struct {
			Errors []string `json:"errors"`
		}
		if json.Unmarshal(data, &e) == nil {
			for _, m := range e.Errors {
				// "1 error occurred:\n\t* permission denied\n\n"
				m = strings.TrimSpace(m)
				if i := strings.LastIndex(m, "* "); strings.HasPrefix(m, "1 error occurred") && i >= 0 {
					m = m[i+2:]
				}
				se.Errors = append(se.Errors, strings.Join(strings.Fields(m), " "))
			}
		}
		return se
	}
	if out == nil || len(data) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		// json's errors quote no value, only types and offsets
		return fmt.Errorf("vault: %s %s: decode answer: %w", r.op, r.path, err)
	}
	return nil
}

// isStatus reports whether err is a [*StatusError] with that code.
func isStatus(err error, code int) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Code == code
}
