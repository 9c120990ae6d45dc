package metadata

import (
	"crypto/tls"
	"fmt"

	"github.com/kvconf/kvconf/internal/tlsfiles"
)

// tlsConfig returns the TLS configuration of the TLS options; it reads
// the certificate, key and CA files.
func (c *Config) tlsConfig() (*tls.Config, error) {
	tc, err := tlsfiles.Files{Cert: c.ClientCert, Key: c.ClientKey, CA: c.ClientCAKeys, Insecure: c.ClientInsecure}.Config()
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	return tc, nil
}
