package consul

import (
	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/internal/tlsfiles"
)

// Flags declares the consul backend's options for the command line,
// with confd's flag names and kvconf's consul- flags; it implements
// [backends.Flagger].
func (c *Config) Flags() []backends.Option {
	opts := []backends.Option{
		{Flag: "node", Key: "nodes", Kind: backends.ListOption, Usage: "Consul agent address, host:port or http(s)://host:port (repeatable, tried in order; default CONSUL_HTTP_ADDR or 127.0.0.1:8500)"},
		{Flag: "srv-domain", Key: "srv_domain", Usage: "domain whose DNS SRV record _consul._tcp gives the agents"},
		{Flag: "srv-record", Key: "srv_record", Usage: "DNS SRV record that gives the agents"},
		{Flag: "scheme", Key: "scheme", Usage: "http or https: the scheme of agents found by DNS SRV or written without one"},
		{Flag: "auth-token", Key: "auth_token", Usage: "Consul ACL token (default CONSUL_HTTP_TOKEN; never logged)"},
		{Flag: "consul-datacenter", Key: "datacenter", Usage: "Consul datacenter to read from (default: the agent's)"},
		{Flag: "consul-consistency", Key: "consistency", Usage: "consistency of reads: default, stale or consistent"},
	}
	opts = append(opts, tlsfiles.Flags()...)
	return append(opts,
		backends.Option{Flag: "basic-auth", Key: "basic_auth", Kind: backends.BoolOption, Usage: "authenticate to a proxy in front of Consul as -username with -password"},
		backends.Option{Flag: "username", Key: "username", Usage: "HTTP basic authentication user name"},
		backends.Option{Flag: "password", Key: "password", Usage: "HTTP basic authentication password (never logged)"},
		backends.Option{Flag: "request-timeout", Key: "request_timeout", Usage: "time limit of each request that is not a blocking query, such as 30s"},
	)
}
