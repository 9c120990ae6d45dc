// Package tlsfiles builds the TLS client configuration of a backend from
// confd's TLS options: client_cert, client_key, client_cakeys and
// client_insecure.
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// Files are a backend's TLS options.
type Files struct {
	// Cert and Key are the PEM files of the client certificate and its
	// key; both or neither.
	Cert, Key string
	// CA is a PEM file of the CA certificates the server's certificate
	// must chain to; empty means the system's roots.
	CA string
	// Insecure skips the verification of the server's certificate.
	Insecure bool
}

// Config reads the files and returns the TLS client configuration, at
// least TLS 1.2. Errors name the option at fault.
func (f Files) Config() (*tls.Config, error) {
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: f.Insecure, //nolint:gosec // asked for with client_insecure
	}
	if f.Cert != "" || f.Key != "" {
		cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			return nil, fmt.Errorf("client_cert %s, client_key %s: %w", f.Cert, f.Key, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	if f.CA != "" {
		pem, err := os.ReadFile(f.CA)
		if err != nil {
			return nil, fmt.Errorf("client_cakeys: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client_cakeys %s: no PEM certificate", f.CA)
		}
		tc.RootCAs = pool
	}
	return tc, nil
}
