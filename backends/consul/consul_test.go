package consul_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/backends/consul"
	"github.com/kvconf/kvconf/internal/tlsfiles"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     consul.Config
		wantErr string // "" for none
	}{
		{name: "zero", cfg: consul.Config{}},
		{name: "nodes", cfg: consul.Config{Nodes: []string{"http://a:8500", "b:8500", "c"}}},
		{name: "https by TLS", cfg: consul.Config{Nodes: []string{"a"}, TLS: tlsfiles.TLS{ClientCAKeys: "ca.pem"}}},
		{name: "srv", cfg: consul.Config{SRVDomain: "example.com"}},
		{name: "consistency", cfg: consul.Config{Consistency: "stale", Datacenter: "dc2"}},
		{name: "basic auth", cfg: consul.Config{BasicAuth: true, Username: "u", Password: "p"}},
		{name: "timeout", cfg: consul.Config{RequestTimeout: "10s"}},
		{name: "bad node", cfg: consul.Config{Nodes: []string{"unix:///run/consul.sock"}}, wantErr: "is not http or https"},
		{name: "user in node", cfg: consul.Config{Nodes: []string{"http://u:secret@a:8500"}}, wantErr: "scheme://host:port only"},
		{name: "empty node", cfg: consul.Config{Nodes: []string{" "}}, wantErr: "empty node"},
		{name: "bad port", cfg: consul.Config{Nodes: []string{"a:99999"}}, wantErr: "bad port"},
		{name: "nodes and srv", cfg: consul.Config{Nodes: []string{"a"}, SRVRecord: "_consul._tcp.x"}, wantErr: "both given"},
		{name: "tls over http", cfg: consul.Config{Nodes: []string{"http://a"}, TLS: tlsfiles.TLS{ClientInsecure: true}}, wantErr: "uses http"},
		{name: "tls with scheme http", cfg: consul.Config{SRVDomain: "x", Scheme: "http", TLS: tlsfiles.TLS{ClientCAKeys: "ca.pem"}}, wantErr: "scheme is http"},
		{name: "bad scheme", cfg: consul.Config{Scheme: "grpc"}, wantErr: "scheme"},
		{name: "bad consistency", cfg: consul.Config{Consistency: "strong"}, wantErr: "consistency"},
		{name: "cert without key", cfg: consul.Config{TLS: tlsfiles.TLS{ClientCert: "c.pem"}}, wantErr: "client_cert and client_key"},
		{name: "basic auth without password", cfg: consul.Config{BasicAuth: true, Username: "u"}, wantErr: "password"},
		{name: "bad timeout", cfg: consul.Config{RequestTimeout: "0s"}, wantErr: "request_timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.cfg.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Validate() = %v, want an error about %q", err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("Validate() = %v, shows the password", err)
			}
		})
	}
}

// TestDecode decodes the options the CLI passes, and rejects others.
func TestDecode(t *testing.T) {
	t.Parallel()
	cfg, err := backends.Decode("consul", map[string]any{
		"nodes": []string{"127.0.0.1:8500"}, "auth_token": "t", "datacenter": "dc1",
		"consistency": "consistent", "request_timeout": "5s", "scheme": "http",
	})
	if err != nil {
		t.Fatal(err)
	}
	if c := cfg.(*consul.Config); c.AuthToken != "t" || c.Consistency != "consistent" || c.Datacenter != "dc1" {
		t.Errorf("Decode = %+v", c)
	}
	if _, err := backends.Decode("consul", map[string]any{"table": "x"}); !errors.As(err, new(*backends.OptionError)) {
		t.Errorf("Decode(table) = %v, want an *OptionError", err)
	}
}

// TestTokenAndErrors checks, against a fake agent, that the token of
// CONSUL_HTTP_TOKEN is sent, that it shows in no error, and that a 403 is
// explained. It sets the environment, so it is not parallel.
func TestTokenAndErrors(t *testing.T) {
	const token = "s3cr3t-token"
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Header.Get("X-Consul-Token"))
		w.Header().Set("X-Consul-Index", "7")
		http.Error(w, "Permission denied", http.StatusForbidden)
	}))
	defer srv.Close()
	t.Setenv("CONSUL_HTTP_ADDR", srv.URL)
	t.Setenv("CONSUL_HTTP_TOKEN", token)
	c, err := consul.New(t.Context(), consul.Config{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Snapshot(t.Context(), []string{"/app"})
	if err == nil || !strings.Contains(err.Error(), "ACL token") || strings.Contains(err.Error(), token) {
		t.Errorf("Snapshot = %v, want an error about the ACL token, without it", err)
	}
	if len(got) == 0 || got[0] != token {
		t.Errorf("tokens sent = %q, want %q", got, token)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Watch(context.Background(), []string{"/app"}, 3); !errors.Is(err, backends.ErrClosed) {
		t.Errorf("Watch after Close = %v, want ErrClosed", err)
	}
}
