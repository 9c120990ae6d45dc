package vault

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/kvconf/kvconf/internal/backoff"
)

// token is the client's Vault token and what Vault said of its life.
type token struct {
	value     string
	renewable bool
	ttl       time.Duration // TTL when obtained or last renewed; 0: never expires
	at        time.Time     // when obtained or last renewed
}

// renewAt returns when the token is due for renewal or a new login: two
// thirds into its TTL. The zero time means never.
func (t token) renewAt() time.Time {
	if t.ttl <= 0 {
		return time.Time{}
	}
	return t.at.Add(t.ttl * 2 / 3)
}

// authAnswer is the "auth" part of a login or renewal answer.
type authAnswer struct {
	Auth *struct {
		ClientToken   string `json:"client_token"`
		LeaseDuration int64  `json:"lease_duration"`
		Renewable     bool   `json:"renewable"`
	} `json:"auth"`
}

// canLogin reports whether the client can get a new token by itself.
func (c *Client) canLogin() bool { return c.cfg.AuthType != AuthToken }

// hint names the options to check when Vault refuses the credentials.
func (c *Client) hint() string {
	switch c.cfg.AuthType {
	case AuthAppRole:
		return "check -role-id and -secret-id (role_id, secret_id) and -path"
	case AuthUserpass:
		return "check -username and -password (username, password) and -path"
	default:
		return "check -auth-token (auth_token, VAULT_TOKEN)"
	}
}

// mountPath returns the auth method's mount path.
func (c *Client) mountPath() string {
	if c.cfg.Path != "" {
		return c.cfg.Path
	}
	if c.cfg.AuthType == AuthAppRole {
		return "approle"
	}
	return c.cfg.AuthType
}

// login gets a token with the configured auth type (for type token,
// checks the token and reads its TTL) and makes it the client's.
func (c *Client) login(ctx context.Context) error {
	now := time.Now()
	var t token
	switch c.cfg.AuthType {
	case AuthToken:
		var ans struct {
			Data struct {
				TTL       int64 `json:"ttl"`
				Renewable bool  `json:"renewable"`
			} `json:"data"`
		}
		err := c.do(ctx, request{op: "look up token", method: http.MethodGet, path: "auth/token/lookup-self", token: c.cfg.AuthToken}, &ans)
		if err != nil {
			return c.loginError(err)
		}
		t = token{value: c.cfg.AuthToken, renewable: ans.Data.Renewable, ttl: time.Duration(ans.Data.TTL) * time.Second, at: now}
	case AuthAppRole, AuthUserpass:
		r := request{op: "log in", method: http.MethodPost, path: escapePath(c.mountPath()) + "/login"}
		if c.cfg.AuthType == AuthAppRole {
			r.body = map[string]string{"role_id": c.cfg.RoleID, "secret_id": c.cfg.SecretID}
		} else {
			r.path += "/" + escapePath(c.cfg.Username)
			r.body = map[string]string{"password": c.cfg.Password}
		}
		r.path = "auth/" + r.path
		var ans authAnswer
		if err := c.do(ctx, r, &ans); err != nil {
			return c.loginError(err)
		}
		if ans.Auth == nil || ans.Auth.ClientToken == "" {
			return fmt.Errorf("vault: log in with auth type %s: no token in the answer", c.cfg.AuthType)
		}
		t = token{value: ans.Auth.ClientToken, renewable: ans.Auth.Renewable, ttl: time.Duration(ans.Auth.LeaseDuration) * time.Second, at: now}
	default:
		return fmt.Errorf("vault: unknown auth type %q", c.cfg.AuthType)
	}
	c.mu.Lock()
	c.tok = t
	c.mu.Unlock()
	return nil
}

// loginError wraps a refused login with the options to check.
func (c *Client) loginError(err error) error {
	var se *StatusError
	if errors.As(err, &se) && (se.Code == http.StatusForbidden || se.Code == http.StatusBadRequest || se.Code == http.StatusUnauthorized) {
		return fmt.Errorf("vault: auth type %s: credentials refused (%s): %w", c.cfg.AuthType, c.hint(), err)
	}
	return fmt.Errorf("vault: auth type %s: %w", c.cfg.AuthType, err)
}

// current returns the client's token.
func (c *Client) current() token {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tok
}

// renewPolicy paces the retries of a failed renewal or login.
var renewPolicy = backoff.Policy{Min: time.Second, Max: 30 * time.Second}

// renew keeps the token alive until ctx is done: it renews it two thirds
// into its TTL, or logs in again when it cannot be renewed (enough) and
// the auth type allows. It retries failures with backoff.
func (c *Client) renew(ctx context.Context) {
	defer close(c.done)
	failures := 0
	for {
		t := c.current()
		at := t.renewAt()
		wait := time.Duration(1<<63 - 1)
		if !at.IsZero() {
			wait = time.Until(at)
		}
		if failures > 0 {
			wait = renewPolicy.Delay(failures)
		}
		if err := backoff.Sleep(ctx, wait); err != nil {
			return
		}
		if t != c.current() {
			failures = 0 // a login after a 403 replaced it meanwhile
			continue
		}
		if err := c.refresh(ctx, t); err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			c.log.Warn("vault token renewal", "auth_type", c.cfg.AuthType, "attempt", failures, "err", err)
			continue
		}
		failures = 0
	}
}

// refresh renews t or logs in again. A token that can be neither renewed
// nor replaced is left to expire, with a warning, and no longer tried.
func (c *Client) refresh(ctx context.Context, t token) error {
	if t.renewable {
		var ans authAnswer
		err := c.do(ctx, request{op: "renew token", method: http.MethodPost, path: "auth/token/renew-self", body: map[string]any{}, token: t.value}, &ans)
		if err == nil && ans.Auth != nil {
			ttl := time.Duration(ans.Auth.LeaseDuration) * time.Second
			// Capped by the token's max TTL: renewing again would
			// not take it much further.
			if ttl*3 >= t.ttl*2 || !c.canLogin() {
				c.mu.Lock()
				if c.tok.value == t.value {
					c.tok = token{value: t.value, renewable: ans.Auth.Renewable && ttl*3 >= t.ttl*2, ttl: ttl, at: time.Now()}
				}
				c.mu.Unlock()
				c.log.Debug("vault token renewed", "ttl", ttl)
				return nil
			}
		} else if err != nil && !c.canLogin() {
			return err
		}
	}
	if !c.canLogin() {
		c.log.Warn("vault token cannot be renewed and will expire", "ttl_left", time.Until(t.at.Add(t.ttl)).Round(time.Second))
		c.mu.Lock()
		if c.tok.value == t.value {
			c.tok.ttl = 0 // no more renewal attempts
		}
		c.mu.Unlock()
		return nil
	}
	c.loginMu.Lock()
	err := c.login(ctx)
	c.loginMu.Unlock()
	if err != nil {
		return err
	}
	c.log.Debug("vault logged in again", "auth_type", c.cfg.AuthType)
	return nil
}

// authed sends r with the client's token; when Vault refuses it (403) and
// the auth type can log in, it logs in again once and resends r.
func (c *Client) authed(ctx context.Context, r request, out any) error {
	t := c.current()
	r.token = t.value
	err := c.do(ctx, r, out)
	if !isStatus(err, http.StatusForbidden) || !c.canLogin() {
		return err
	}
	c.loginMu.Lock()
	if c.current().value == t.value { // nobody logged in meanwhile
		if lerr := c.login(ctx); lerr != nil {
			c.loginMu.Unlock()
			return errors.Join(err, lerr)
		}
	}
	c.loginMu.Unlock()
	r.token = c.current().value
	return c.do(ctx, r, out)
}
