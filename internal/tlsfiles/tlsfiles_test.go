package tlsfiles_test

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvconf/kvconf/internal/tlsfiles"
)

func TestConfigErrorsNameTheOption(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.txt")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		files tlsfiles.TLS
		want  string
	}{
		{"missing CA", tlsfiles.TLS{ClientCAKeys: filepath.Join(dir, "none.pem")}, "client_cakeys"},
		{"CA not PEM", tlsfiles.TLS{ClientCAKeys: notPEM}, "client_cakeys " + notPEM + ": no PEM certificate"},
		{"cert without key", tlsfiles.TLS{ClientCert: notPEM}, "client_cert " + notPEM},
		{"bad key pair", tlsfiles.TLS{ClientCert: notPEM, ClientKey: notPEM}, "client_key " + notPEM},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := tt.files.TLSConfig(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("TLSConfig() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	tc, err := tlsfiles.TLS{ClientInsecure: true}.TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	if tc.MinVersion != tls.VersionTLS12 || !tc.InsecureSkipVerify || tc.RootCAs != nil || len(tc.Certificates) != 0 {
		t.Errorf("TLSConfig() = %+v", tc)
	}
}

func TestUnset(t *testing.T) {
	t.Parallel()
	var none tlsfiles.TLS
	if none.UsesTLS() {
		t.Error("UsesTLS() of no option = true")
	}
	if tc, err := none.TLSConfig(); tc != nil || err != nil {
		t.Errorf("TLSConfig() of no option = %v, %v; want nil, nil", tc, err)
	}
	if err := (tlsfiles.TLS{ClientKey: "k.pem"}).ValidateTLS(); err == nil || !strings.Contains(err.Error(), "client_cert and client_key go together") {
		t.Errorf("ValidateTLS() of a key alone = %v", err)
	}
	if err := (tlsfiles.TLS{ClientCert: "c.pem", ClientKey: "k.pem"}).ValidateTLS(); err != nil {
		t.Errorf("ValidateTLS() of a certificate and its key = %v", err)
	}
}
