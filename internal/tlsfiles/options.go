package tlsfiles

import "github.com/kvconf/kvconf/backends"

// Flags declares the options of [TLS] for the command line, with
// confd's flag names and environment variables, for the
// [backends.Flagger] of a backend whose configuration embeds TLS.
func Flags() []backends.Option {
	return []backends.Option{
		{Flag: "client-cert", Key: "client_cert", Env: []string{"CONFD_CLIENT_CERT"}, Usage: "TLS client certificate file (PEM)"},
		{Flag: "client-key", Key: "client_key", Env: []string{"CONFD_CLIENT_KEY"}, Usage: "TLS client key file (PEM)"},
		{Flag: "client-ca-keys", Key: "client_cakeys", Env: []string{"CONFD_CLIENT_CAKEYS"}, Usage: "TLS CA certificate file (PEM) the server's certificate must chain to"},
		{Flag: "client-insecure", Key: "client_insecure", Kind: backends.BoolOption, Usage: "skip TLS certificate verification"},
	}
}
