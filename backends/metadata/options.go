package metadata

import (
	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/internal/tlsfiles"
)

// Flags declares the metadata backend's options for the command line;
// it implements [backends.Flagger].
func (c *Config) Flags() []backends.Option {
	node := DefaultNode
	if c.name == "rancher" {
		node = RancherNode
	}
	opts := []backends.Option{
		{Flag: "node", Key: "nodes", Kind: backends.ListOption, Usage: "base URL of the metadata server, http(s)://host[:port][/path] (one; default " + node + ")"},
		{Flag: "header", Key: "headers", Kind: backends.ListOption, Usage: "extra HTTP request header \"Name: value\" (repeatable); values are never logged"},
	}
	opts = append(opts, tlsfiles.Flags()...)
	return append(opts,
		backends.Option{Flag: "request-timeout", Key: "request_timeout", Usage: "time limit of each request, body included, such as 10s"},
		backends.Option{Flag: "metadata-mode", Key: "metadata_mode", Usage: "how -watch waits for changes: auto, longpoll, conditional or poll"},
		backends.Option{Flag: "metadata-poll-interval", Key: "metadata_poll_interval", Usage: "time between reads in the conditional and poll modes, such as 5s"},
		backends.Option{Flag: "metadata-max-wait", Key: "metadata_max_wait", Usage: "longest wait of a long poll on the server, in whole seconds, such as 60s"},
	)
}
