package vault_test

import (
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/backends/vault"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestValidate checks that option errors name the option and its flag,
// and never show a credential.
func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts map[string]any
		want string // "" for valid
	}{
		{"token", map[string]any{"auth_type": "token", "auth_token": "t"}, ""},
		{"token from VAULT_TOKEN", map[string]any{"auth_type": "token"}, ""},
		{"approle alias", map[string]any{"auth_type": "approle", "role_id": "r", "secret_id": "s"}, ""},
		{"no auth type", map[string]any{"auth_token": "Sekr1t"}, "-auth-type"},
		{"unknown auth type", map[string]any{"auth_type": "github"}, `unknown auth type "github"`},
		{"app-id", map[string]any{"auth_type": "app-id"}, "removed"},
		{"app-role without secret", map[string]any{"auth_type": "app-role", "role_id": "r"}, "-secret-id"},
		{"userpass without password", map[string]any{"auth_type": "userpass", "username": "u"}, "-password"},
		{"node without scheme", map[string]any{"auth_type": "token", "nodes": []string{"127.0.0.1:8200"}}, "is not an http:// or https:// URL"},
		{"node with a password", map[string]any{"auth_type": "token", "nodes": []string{"http://u:Sekr1t@h:1"}}, "user information"},
		{"bad timeout", map[string]any{"auth_type": "token", "request_timeout": "-1s"}, "request_timeout"},
		{"cert without key", map[string]any{"auth_type": "token", "client_cert": "c.pem"}, "client_cert and client_key"},
		{"unknown option", map[string]any{"auth_type": "token", "datacenter": "x"}, "does not take option"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := backends.Decode("vault", tt.opts)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Decode = %v, want no error", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Decode = %v, want an error containing %q", err, tt.want)
			case err != nil && strings.Contains(err.Error(), "Sekr1t"):
				t.Errorf("Decode error shows the secret: %v", err)
			}
		})
	}
}

// TestFlags checks that every flag maps to a key of the config file.
func TestFlags(t *testing.T) {
	t.Parallel()
	var c vault.Config
	seen := map[string]bool{}
	for _, o := range c.Flags() {
		seen[o.Flag] = true
		if _, err := backends.Decode("vault", map[string]any{"auth_type": "token", o.Key: zero(o.Kind)}); err != nil && strings.Contains(err.Error(), "does not take option") {
			t.Errorf("flag -%s: key %q is not an option: %v", o.Flag, o.Key, err)
		}
	}
	for _, f := range []string{"node", "auth-type", "auth-token", "role-id", "secret-id", "username", "password", "path", "client-cert", "client-key", "client-ca-keys"} {
		if !seen[f] {
			t.Errorf("no flag -%s (confd's)", f)
		}
	}
}

func zero(k backends.OptionKind) any {
	switch k {
	case backends.BoolOption:
		return false
	case backends.ListOption:
		return []string{}
	}
	return ""
}
