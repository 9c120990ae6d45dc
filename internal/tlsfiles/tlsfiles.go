// Package tlsfiles holds confd's TLS client options of a backend
// (client_cert, client_key, client_cakeys and client_insecure) and builds
// the TLS client configuration from them.
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// TLS are a backend's TLS client options. A backend's configuration
// embeds it, so that the options are keys of the backend's own table.
type TLS struct {
	// ClientCert and ClientKey are the PEM files of the TLS client
	// certificate and its key; both or neither.
	ClientCert string `toml:"client_cert"`
	ClientKey  string `toml:"client_key"`
	// ClientCAKeys is a PEM file of the CA certificates that the server's
	// certificate must chain to. Empty means the system's roots.
	ClientCAKeys string `toml:"client_cakeys"`
	// ClientInsecure skips the verification of the server's certificate.
	ClientInsecure bool `toml:"client_insecure"`
}

// UsesTLS reports whether any option is set. (The methods of TLS are
// named to read well as methods of the configuration that embeds it.)
func (t TLS) UsesTLS() bool {
	return t.ClientCert != "" || t.ClientKey != "" || t.ClientCAKeys != "" || t.ClientInsecure
}

// ValidateTLS reports a certificate without its key, or a key without its
// certificate. It reads no file.
func (t TLS) ValidateTLS() error {
	if (t.ClientCert == "") != (t.ClientKey == "") {
		return errors.New("client_cert and client_key go together")
	}
	return nil
}

// TLSConfig reads the files and returns the TLS client configuration, at
// least TLS 1.2, or nil when no option is set (a server is then verified
// against the system's roots). Errors name the option at fault.
func (t TLS) TLSConfig() (*tls.Config, error) {
	if !t.UsesTLS() {
		return nil, nil
	}
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: t.ClientInsecure, //nolint:gosec // asked for with client_insecure
	}
	if t.ClientCert != "" || t.ClientKey != "" {
		cert, err := tls.LoadX509KeyPair(t.ClientCert, t.ClientKey)
		if err != nil {
			return nil, fmt.Errorf("client_cert %s, client_key %s: %w", t.ClientCert, t.ClientKey, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	if t.ClientCAKeys != "" {
		pem, err := os.ReadFile(t.ClientCAKeys)
		if err != nil {
			return nil, fmt.Errorf("client_cakeys: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client_cakeys %s: no PEM certificate", t.ClientCAKeys)
		}
		tc.RootCAs = pool
	}
	return tc, nil
}
