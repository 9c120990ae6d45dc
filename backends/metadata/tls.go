package metadata

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// tlsConfig returns the TLS configuration of the TLS options; it reads
// the certificate, key and CA files.
func (c *Config) tlsConfig() (*tls.Config, error) {
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: c.ClientInsecure, //nolint:gosec // asked for with client_insecure
	}
	if c.ClientCert != "" {
		cert, err := tls.LoadX509KeyPair(c.ClientCert, c.ClientKey)
		if err != nil {
			return nil, fmt.Errorf("metadata: client_cert %s, client_key %s: %w", c.ClientCert, c.ClientKey, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	if c.ClientCAKeys != "" {
		pem, err := os.ReadFile(c.ClientCAKeys)
		if err != nil {
			return nil, fmt.Errorf("metadata: client_cakeys: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("metadata: client_cakeys %s: no PEM certificate", c.ClientCAKeys)
		}
		tc.RootCAs = pool
	}
	return tc, nil
}
