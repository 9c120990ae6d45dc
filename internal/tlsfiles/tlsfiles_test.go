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
		files tlsfiles.Files
		want  string
	}{
		{"missing CA", tlsfiles.Files{CA: filepath.Join(dir, "none.pem")}, "client_cakeys"},
		{"CA not PEM", tlsfiles.Files{CA: notPEM}, "client_cakeys " + notPEM + ": no PEM certificate"},
		{"cert without key", tlsfiles.Files{Cert: notPEM}, "client_cert " + notPEM},
		{"bad key pair", tlsfiles.Files{Cert: notPEM, Key: notPEM}, "client_key " + notPEM},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := tt.files.Config(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Config() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	tc, err := tlsfiles.Files{Insecure: true}.Config()
	if err != nil {
		t.Fatal(err)
	}
	if tc.MinVersion != tls.VersionTLS12 || !tc.InsecureSkipVerify || tc.RootCAs != nil || len(tc.Certificates) != 0 {
		t.Errorf("Config() = %+v", tc)
	}
}
