package zookeeper

import "github.com/kvconf/kvconf/backends"

// Flags declares the zookeeper backend's options for the command line,
// with confd's flag names where confd has the option; it implements
// [backends.Flagger].
func (c *Config) Flags() []backends.Option {
	return []backends.Option{
		{Flag: "node", Key: "nodes", Kind: backends.ListOption, Usage: "ZooKeeper server, host:port or host (repeatable; default " + DefaultNode + ")"},
		{Flag: "username", Key: "username", Usage: "ZooKeeper digest auth user (with -password; addauth digest user:password)"},
		{Flag: "password", Key: "password", Usage: "ZooKeeper digest auth password (never logged)"},
		{Flag: "zookeeper-session-timeout", Key: "session_timeout", Usage: "ZooKeeper session timeout asked of the server, such as 10s"},
	}
}

var _ backends.Flagger = (*Config)(nil)
