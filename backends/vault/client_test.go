package vault_test

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kvconf/kvconf/backends/vault"
	"github.com/kvconf/kvconf/backends/vault/vaulttest"
)

// TestPrefixes checks, against the fake, that prefixes match plainly
// across mounts, folders and fields.
func TestPrefixes(t *testing.T) {
	t.Parallel()
	f := vaulttest.New()
	defer f.Close()
	f.Put("secret/app/db", map[string]any{"host": "h", "port": "1"})
	f.Put("secret/app/dbx/name", map[string]any{"value": "x"})
	f.Put("kv1/app/db", map[string]any{"value": "v1"})
	c, err := vault.New(t.Context(), vault.Config{Nodes: []string{f.URL}, AuthType: "token", AuthToken: "root"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	tests := []struct {
		prefixes []string
		want     []string
	}{
		{[]string{"/"}, []string{"/kv1/app/db", "/secret/app/db", "/secret/app/db/host", "/secret/app/db/port", "/secret/app/dbx/name"}},
		{[]string{"/secret/app/db"}, []string{"/secret/app/db", "/secret/app/db/host", "/secret/app/db/port", "/secret/app/dbx/name"}},
		{[]string{"/secret/app/db/"}, []string{"/secret/app/db/host", "/secret/app/db/port"}},
		{[]string{"/secret/app/db/p"}, []string{"/secret/app/db/port"}},
		{[]string{"/kv", "/secret/app/dbx"}, []string{"/kv1/app/db", "/secret/app/dbx/name"}},
		{[]string{"/none"}, []string{}},
	}
	for _, tt := range tests {
		s, err := c.Snapshot(t.Context(), tt.prefixes)
		if err != nil {
			t.Fatalf("Snapshot(%q): %v", tt.prefixes, err)
		}
		if got := slices.Sorted(maps.Keys(s.KVs)); !slices.Equal(got, tt.want) {
			t.Errorf("Snapshot(%q) keys = %v, want %v", tt.prefixes, got, tt.want)
		}
	}
}

// TestAppRoleRelogin checks, against the fake, whose AppRole tokens live
// 1 s and cannot be renewed, that the client logs in again on its own.
func TestAppRoleRelogin(t *testing.T) {
	t.Parallel()
	f := vaulttest.New()
	defer f.Close()
	f.Put("secret/a", map[string]any{"value": "v"})
	c, err := vault.New(t.Context(), vault.Config{Nodes: []string{f.URL}, AuthType: "approle", RoleID: "role", SecretID: "Fake-Secret-ID-9q"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for f.Count("POST auth/approle/login") < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d logins after 30 s, want 3", f.Count("POST auth/approle/login"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if s, err := c.Snapshot(t.Context(), []string{"/secret/a"}); err != nil || s.KVs["/secret/a"] != "v" {
		t.Errorf("Snapshot = %v, %v", s.KVs, err)
	}
	if _, err := vault.New(t.Context(), vault.Config{Nodes: []string{f.URL}, AuthType: "approle", RoleID: "role", SecretID: "Wr0ngS3cret"}); err == nil ||
		!strings.Contains(err.Error(), "-secret-id") || strings.Contains(err.Error(), "Wr0ngS3cret") {
		t.Errorf("New with a wrong secret ID = %v, want an error naming -secret-id, without the secret", err)
	}
}
