// Package vault is the Vault backend: it reads secrets from Vault's KV
// secrets engines, version 1 and 2, through the HTTP API. It registers as
// "vault".
//
// # Keys
//
// Template keys are Vault paths with a leading "/", as in confd: the key
// /secret/app/db is the secret app/db of the mount secret/, whatever the
// mount's KV version (the version 2 API's data/ and metadata/ parts do not
// show, as with `vault kv get`). A secret whose only field is "value",
// a string, is one key holding that string. Any other secret is a key
// holding its fields as a JSON object, plus one key per string field,
// /secret/app/db/password; fields holding objects give keys one level
// deeper, and fields of other types (numbers, lists) show only in the
// JSON. This is confd's mapping. Soft-deleted versions of KV version 2
// secrets do not show.
//
// A prefix matches keys by plain string prefix, as the contract of
// package backends says: the client lists the folders the prefix reaches
// into, recursively, and reads every secret there, plus the secrets whose
// fields may fall under the prefix (/secret/app/db/pass needs the secret
// app/db). The mounts, and their versions, come from
// sys/internal/ui/mounts, which any token may read and which lists the
// mounts the token can use, as the vault CLI finds them; mounts of other
// engines than kv are not read.
//
// # Revisions and watching
//
// Vault has no revision and no way to wait for a change to KV secrets: a
// snapshot's revision is 0 (unknown), and [Client] does not implement
// [backends.Watcher]: kvconf polls it every -interval, with or without
// -watch, rendering when the content changed.
//
// # Authentication
//
// [New] logs in with the auth type of the configuration: "token" checks
// the token with auth/token/lookup-self; "app-role" (or "approle") and
// "userpass" log in through their auth method. A token with a TTL is
// renewed (auth/token/renew-self) by a goroutine of the client when two
// thirds of its TTL have passed; when it cannot be renewed any more (not
// renewable, or at its maximum TTL), the client logs in again with the
// auth types that can, and a request refused with 403 logs in again once.
// Tokens, secret IDs and passwords never appear in errors or logs.
package vault

import (
	"context"
	_ "embed" // for Sample
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/internal/redact"
	"github.com/kvconf/kvconf/internal/tlsfiles"
)

func init() {
	backends.Register("vault", func() backends.Config { return new(Config) })
}

// Sample is an annotated example of the Vault backend's configuration, in
// TOML.
//
//go:embed sample.toml
var Sample string

// DefaultNode is the node used when neither the nodes option nor
// VAULT_ADDR gives one.
const DefaultNode = "http://127.0.0.1:8200"

// DefaultRequestTimeout is the default of [Config.RequestTimeout].
const DefaultRequestTimeout = 30 * time.Second

// The auth types of [Config.AuthType].
const (
	AuthToken    = "token"
	AuthAppRole  = "app-role" // confd's name; "approle" is taken too
	AuthUserpass = "userpass"
)

// Config holds the Vault backend's options, with confd's names.
type Config struct {
	// Nodes lists Vault addresses, http://host:port or https://host:port,
	// tried in order: a request that cannot reach one goes to the next.
	// Empty means VAULT_ADDR, or else [DefaultNode].
	Nodes []string `toml:"nodes"`
	// AuthType is how the client logs in: [AuthToken], [AuthAppRole]
	// ("approle" too) or [AuthUserpass].
	AuthType string `toml:"auth_type"`
	// AuthToken is the token of AuthType token; empty means VAULT_TOKEN.
	AuthToken string `toml:"auth_token"`
	// RoleID and SecretID are the AppRole credentials.
	RoleID   string `toml:"role_id"`
	SecretID string `toml:"secret_id"`
	// Username and Password are the userpass credentials.
	Username string `toml:"username"`
	Password string `toml:"password"`
	// Path is the mount path of the auth method; empty means the auth
	// type's default, approle or userpass.
	Path string `toml:"path"`
	// TLS holds client_cert, client_key, client_cakeys and
	// client_insecure.
	tlsfiles.TLS
	// RequestTimeout bounds each request, in the syntax of
	// [time.ParseDuration]; empty means [DefaultRequestTimeout].
	RequestTimeout string `toml:"request_timeout"`

	log *slog.Logger
}

// Sample returns [Sample], the commented sample configuration.
func (c *Config) Sample() string { return Sample }

// Description returns a one-line description of the Vault backend.
func (c *Config) Description() string {
	return "Vault KV v1 and v2 secrets over HTTP (token, AppRole, userpass): prefixes listed, polled at -interval"
}

// SetLogger sets the logger of the client that Open returns; it
// implements [backends.LogSetter].
func (c *Config) SetLogger(l *slog.Logger) { c.log = l }

// authType returns the auth type with its aliases resolved.
func (c *Config) authType() string {
	if c.AuthType == "approle" {
		return AuthAppRole
	}
	return c.AuthType
}

// Validate reports the first problem with the options: no or an unknown
// auth type, the credentials of the auth type missing, a malformed node,
// a client certificate without its key (or the reverse) or a malformed
// timeout. It reads no file and no environment variable.
func (c *Config) Validate() error {
	switch c.authType() {
	case "":
		return errors.New("vault: no auth type given (option auth_type, flag -auth-type): token, app-role or userpass")
	case AuthToken:
	case AuthAppRole:
		if c.RoleID == "" || c.SecretID == "" {
			return errors.New("vault: auth type app-role needs role_id and secret_id (flags -role-id and -secret-id)")
		}
	case AuthUserpass:
		if c.Username == "" || c.Password == "" {
			return errors.New("vault: auth type userpass needs username and password (flags -username and -password)")
		}
	case "app-id":
		return errors.New("vault: auth type app-id was removed from Vault (1.12): use app-role (option auth_type, flag -auth-type)")
	default:
		return fmt.Errorf("vault: unknown auth type %q (option auth_type, flag -auth-type): token, app-role or userpass", c.AuthType)
	}
	if strings.Contains(c.Path, "..") || strings.ContainsAny(c.Path, "?#") {
		return fmt.Errorf("vault: path %q is not an auth mount path", c.Path)
	}
	if err := c.ValidateTLS(); err != nil {
		return fmt.Errorf("vault: %w", err)
	}
	for _, n := range c.Nodes {
		if _, err := parseNode(n); err != nil {
			return err
		}
	}
	if _, err := c.requestTimeout(); err != nil {
		return err
	}
	return nil
}

// requestTimeout returns the request timeout.
func (c *Config) requestTimeout() (time.Duration, error) {
	if c.RequestTimeout == "" {
		return DefaultRequestTimeout, nil
	}
	d, err := time.ParseDuration(c.RequestTimeout)
	if err != nil {
		return 0, fmt.Errorf("vault: request_timeout: %w", err)
	}
	if d <= 0 {
		return 0, fmt.Errorf("vault: request_timeout %s is not positive", c.RequestTimeout)
	}
	return d, nil
}

// parseNode parses a Vault address. Its errors show the address with its
// password masked.
func parseNode(n string) (*url.URL, error) {
	u, err := url.Parse(n)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("vault: node %q is not an http:// or https:// URL", redact.URL(n))
	}
	if u.User != nil {
		return nil, fmt.Errorf("vault: node %q: user information is not taken, use auth_type", redact.URL(n))
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawQuery, u.Fragment = "", ""
	return u, nil
}

// Open connects to Vault; it implements [backends.Config].
func (c *Config) Open(ctx context.Context) (backends.Backend, error) {
	return New(ctx, *c)
}

// Client reads secrets from Vault. It is safe for concurrent use.
type Client struct {
	cfg     Config
	nodes   []*url.URL
	http    *http.Client
	timeout time.Duration
	log     *slog.Logger
	secrets []string // credentials to mask in errors

	loginMu sync.Mutex // one login at a time
	mu      sync.Mutex
	tok     token
	closed  bool

	stop context.CancelFunc
	done chan struct{} // closed when the renewer has returned
}

// New validates cfg, logs in to Vault and returns a client, which renews
// its token in the background until Close.
func New(ctx context.Context, cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.AuthType = cfg.authType()
	if cfg.AuthType == AuthToken && cfg.AuthToken == "" {
		cfg.AuthToken = os.Getenv("VAULT_TOKEN")
		if cfg.AuthToken == "" {
			return nil, errors.New("vault: auth type token needs a token (option auth_token, flag -auth-token, or VAULT_TOKEN)")
		}
	}
	nodes := cfg.Nodes
	if len(nodes) == 0 {
		nodes = []string{DefaultNode}
		if a := os.Getenv("VAULT_ADDR"); a != "" {
			nodes = []string{a}
		}
	}
	c := &Client{cfg: cfg, log: cfg.log, done: make(chan struct{})}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	for _, n := range nodes {
		u, err := parseNode(n)
		if err != nil {
			return nil, err
		}
		c.nodes = append(c.nodes, u)
	}
	var err error
	if c.timeout, err = cfg.requestTimeout(); err != nil {
		return nil, err
	}
	tc, err := cfg.TLSConfig()
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // a secrets client goes straight to Vault
	tr.TLSClientConfig = tc
	c.http = &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse // a redirect could take the token elsewhere
	}}
	c.secrets = []string{cfg.AuthToken, cfg.SecretID, cfg.Password}

	if err := c.login(ctx); err != nil {
		tr.CloseIdleConnections()
		return nil, err
	}
	rctx, stop := context.WithCancel(context.Background())
	c.stop = stop
	go c.renew(rctx)
	c.log.Info("vault logged in", "auth_type", cfg.AuthType, "node", c.nodes[0].Redacted())
	return c, nil
}

// Close stops the token renewal and releases the client. It is
// idempotent; it does not revoke the token.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.stop()
	<-c.done
	c.http.CloseIdleConnections()
	return nil
}

// checkOpen returns [backends.ErrClosed] after Close.
func (c *Client) checkOpen() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return fmt.Errorf("vault: %w", backends.ErrClosed)
	}
	return nil
}

var _ backends.Backend = (*Client)(nil)
