package etcd

import (
	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/internal/tlsfiles"
)

// Flags declares the etcd backend's options for the command line, with
// confd's flag names; it implements [backends.Flagger].
func (c *Config) Flags() []backends.Option {
	opts := []backends.Option{
		{Flag: "node", Key: "nodes", Kind: backends.ListOption, Usage: "etcd client URL: host, host:port or http(s)://host:port (repeatable; default " + DefaultNode + ")"},
		{Flag: "srv-domain", Key: "srv_domain", Usage: "domain whose DNS SRV records (_etcd-client._tcp and others) give the nodes"},
		{Flag: "srv-record", Key: "srv_record", Usage: "DNS SRV record that gives the nodes, such as _etcd-client._tcp.example.com"},
		{Flag: "scheme", Key: "scheme", Usage: "http or https: the scheme of nodes found by DNS SRV or written without one"},
	}
	opts = append(opts, tlsfiles.Flags()...)
	return append(opts,
		backends.Option{Flag: "basic-auth", Key: "basic_auth", Kind: backends.BoolOption, Usage: "authenticate as -username with -password (etcd users)"},
		backends.Option{Flag: "username", Key: "username", Usage: "etcd user name"},
		backends.Option{Flag: "password", Key: "password", Usage: "etcd user's password (never logged)"},
		backends.Option{Flag: "request-timeout", Key: "request_timeout", Usage: "time limit of each read request, such as 30s"},
	)
}
