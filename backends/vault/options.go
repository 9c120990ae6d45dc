package vault

import (
	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/internal/tlsfiles"
)

// Flags declares the vault backend's options for the command line, with
// confd's flag names; it implements [backends.Flagger].
func (c *Config) Flags() []backends.Option {
	opts := []backends.Option{
		{Flag: "node", Key: "nodes", Kind: backends.ListOption, Usage: "Vault address, http(s)://host:port (repeatable, tried in order; default VAULT_ADDR or " + DefaultNode + ")"},
		{Flag: "auth-type", Key: "auth_type", Usage: "Vault auth method: token, app-role (approle) or userpass"},
		{Flag: "auth-token", Key: "auth_token", Usage: "Vault token of -auth-type token (default VAULT_TOKEN; never logged)"},
		{Flag: "role-id", Key: "role_id", Usage: "AppRole role ID of -auth-type app-role"},
		{Flag: "secret-id", Key: "secret_id", Usage: "AppRole secret ID of -auth-type app-role (never logged)"},
		{Flag: "username", Key: "username", Usage: "user name of -auth-type userpass"},
		{Flag: "password", Key: "password", Usage: "password of -auth-type userpass (never logged)"},
		{Flag: "path", Key: "path", Usage: "mount path of the Vault auth method (default: the auth type's, such as approle)"},
	}
	opts = append(opts, tlsfiles.Flags()...)
	return append(opts,
		backends.Option{Flag: "request-timeout", Key: "request_timeout", Usage: "time limit of each request to Vault, such as 30s"},
	)
}
