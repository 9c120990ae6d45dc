package etcd_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"go.uber.org/goleak"

	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/backends/etcd"
	"github.com/kvconf/kvconf/internal/tlsfiles"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     etcd.Config
		wantErr string // "" for none
	}{
		{name: "zero", cfg: etcd.Config{}},
		{name: "nodes", cfg: etcd.Config{Nodes: []string{"http://a:2379", "b:2379", "c"}}},
		{name: "https nodes", cfg: etcd.Config{Nodes: []string{"https://a:2379", "b:2379"}, Scheme: "https"}},
		{name: "bare nodes take https from TLS", cfg: etcd.Config{Nodes: []string{"a:2379"}, TLS: tlsfiles.TLS{ClientCAKeys: "/ca.pem"}}},
		{name: "srv domain", cfg: etcd.Config{SRVDomain: "example.com", Scheme: "https"}},
		{name: "srv record and domain", cfg: etcd.Config{SRVRecord: "_etcd._tcp.example.com", SRVDomain: "example.com"}},
		{name: "tls", cfg: etcd.Config{TLS: tlsfiles.TLS{ClientCert: "c.pem", ClientKey: "k.pem", ClientCAKeys: "ca.pem"}, Nodes: []string{"https://a:2379"}}},
		{name: "basic auth", cfg: etcd.Config{BasicAuth: true, Username: "u", Password: "p"}},
		{name: "user without basic auth", cfg: etcd.Config{Username: "u"}},
		{name: "timeouts", cfg: etcd.Config{DialTimeout: "1s", RequestTimeout: "1m30s"}},
		{name: "bad node", cfg: etcd.Config{Nodes: []string{"unix://x"}}, wantErr: `node "unix://x"`},
		{name: "empty node", cfg: etcd.Config{Nodes: []string{""}}, wantErr: "empty node"},
		{name: "nodes and srv", cfg: etcd.Config{Nodes: []string{"a:1"}, SRVDomain: "example.com"}, wantErr: "both given"},
		{name: "mixed schemes", cfg: etcd.Config{Nodes: []string{"http://a:1", "https://b:1"}}, wantErr: "mix http and https"},
		{name: "tls over http", cfg: etcd.Config{Nodes: []string{"http://a:1"}, TLS: tlsfiles.TLS{ClientInsecure: true}}, wantErr: "nodes use http"},
		{name: "tls with scheme http", cfg: etcd.Config{SRVDomain: "example.com", Scheme: "http", TLS: tlsfiles.TLS{ClientCAKeys: "ca.pem"}}, wantErr: "scheme is http"},
		{name: "bad scheme", cfg: etcd.Config{Scheme: "grpc"}, wantErr: "scheme"},
		{name: "cert without key", cfg: etcd.Config{TLS: tlsfiles.TLS{ClientCert: "c.pem"}}, wantErr: "client_cert and client_key"},
		{name: "key without cert", cfg: etcd.Config{TLS: tlsfiles.TLS{ClientKey: "k.pem"}}, wantErr: "client_cert and client_key"},
		{name: "basic auth without user", cfg: etcd.Config{BasicAuth: true, Password: "p"}, wantErr: "username"},
		{name: "basic auth without password", cfg: etcd.Config{BasicAuth: true, Username: "u"}, wantErr: "password"},
		{name: "bad dial timeout", cfg: etcd.Config{DialTimeout: "5"}, wantErr: "dial_timeout"},
		{name: "negative request timeout", cfg: etcd.Config{RequestTimeout: "-1s"}, wantErr: "request_timeout"},
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
		})
	}
}

// TestDecode checks both registered names, their samples, and that the
// password is in no error.
func TestDecode(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"etcd", "etcdv3"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg, err := backends.NewConfig(name)
			if err != nil {
				t.Fatal(err)
			}
			sample := cfg.(backends.Sampler).Sample()
			var doc struct {
				Backends map[string]map[string]any `toml:"backends"`
			}
			if _, err := toml.Decode(sample, &doc); err != nil {
				t.Fatalf("sample: %v", err)
			}
			opts, ok := doc.Backends[name]
			if !ok || opts["type"] != name {
				t.Fatalf("sample of %s has no [backends.%s] with type = %q: %v", name, name, name, doc.Backends)
			}
			delete(opts, "type") // the config file's, not the backend's
			got, err := backends.Decode(name, opts)
			if err != nil {
				t.Fatalf("Decode(sample): %v", err)
			}
			c := got.(*etcd.Config)
			if len(c.Nodes) != 1 || c.DialTimeout != "5s" || c.RequestTimeout != "30s" {
				t.Errorf("Decode(sample) = %+v", c)
			}
			if d := got.(backends.Describer).Description(); d == "" {
				t.Error("no description")
			}

			_, err = backends.Decode(name, map[string]any{"nodes": []string{"a:1"}, "table": "x"})
			if oe := (*backends.OptionError)(nil); !errors.As(err, &oe) || oe.Key != "table" {
				t.Errorf("Decode(table) = %v, want an *OptionError for table", err)
			}

			const secret = "s3cr3t-pa55"
			_, err = backends.Decode(name, map[string]any{"basic_auth": true, "password": secret})
			if err == nil || strings.Contains(err.Error(), secret) {
				t.Errorf("Decode(basic_auth without username) = %v, want an error without the password", err)
			}
		})
	}
}

// unusedAddr returns a loopback address that nothing listens on.
func unusedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// TestNoServer opens a client on a node where nothing listens: New
// succeeds (it does not wait for a connection), requests fail within the
// request timeout, Watch honours ctx, and Close releases everything (goleak
// checks the client's goroutines in TestMain).
func TestNoServer(t *testing.T) {
	t.Parallel()
	c, err := etcd.New(t.Context(), etcd.Config{Nodes: []string{unusedAddr(t)}, RequestTimeout: "200ms"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if _, err := c.Snapshot(t.Context(), []string{"/app"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Snapshot = %v, want context.DeadlineExceeded", err)
	} else if !strings.HasPrefix(err.Error(), `etcd: snapshot "/app": `) {
		t.Errorf("Snapshot = %q, want it to start with %q", err, `etcd: snapshot "/app": `)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := c.Watch(ctx, []string{"/app"}, 5); !errors.Is(err, context.Canceled) {
		t.Errorf("Watch(cancelled) = %v, want context.Canceled", err)
	}
	for i := range 2 {
		if err := c.Close(); err != nil {
			t.Errorf("Close #%d: %v", i+1, err)
		}
	}
	if _, err := c.Snapshot(t.Context(), []string{"/app"}); !errors.Is(err, backends.ErrClosed) {
		t.Errorf("Snapshot after Close = %v, want backends.ErrClosed", err)
	}
	if _, err := c.Watch(t.Context(), []string{"/app"}, 5); !errors.Is(err, backends.ErrClosed) {
		t.Errorf("Watch after Close = %v, want backends.ErrClosed", err)
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	tests := []struct {
		name    string
		ctx     context.Context
		cfg     etcd.Config
		wantErr string
	}{
		{name: "cancelled", ctx: cancelled, cfg: etcd.Config{}, wantErr: "context canceled"},
		{name: "invalid", ctx: t.Context(), cfg: etcd.Config{Scheme: "ftp"}, wantErr: "scheme"},
		{name: "missing cert", ctx: t.Context(), cfg: etcd.Config{TLS: tlsfiles.TLS{ClientCert: filepath.Join(dir, "none.pem"), ClientKey: filepath.Join(dir, "none-key.pem")}}, wantErr: "client_cert"},
		{name: "missing CA", ctx: t.Context(), cfg: etcd.Config{TLS: tlsfiles.TLS{ClientCAKeys: filepath.Join(dir, "none.pem")}}, wantErr: "client_cakeys"},
		{name: "CA not PEM", ctx: t.Context(), cfg: etcd.Config{TLS: tlsfiles.TLS{ClientCAKeys: notPEM}}, wantErr: "no PEM certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := etcd.New(tt.ctx, tt.cfg)
			if err == nil {
				_ = c.Close()
				t.Fatalf("New succeeded, want an error about %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("New = %v, want an error about %q", err, tt.wantErr)
			}
		})
	}
}
