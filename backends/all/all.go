// Package all registers every backend that kvconf ships, for its side
// effects only:
//
//	import _ "github.com/kvconf/kvconf/backends/all"
//
// Each backend registers itself from its package's init function; this
// package imports them all: consul, env, etcd, file, metadata, plugin and
// zookeeper. A later backend is added here, with a blank import.
package all

import (
	_ "github.com/kvconf/kvconf/backends/consul"             // registers "consul"
	_ "github.com/kvconf/kvconf/backends/consul/consulfuncs" // registers the "consul" function set
	_ "github.com/kvconf/kvconf/backends/env"                // registers "env"
	_ "github.com/kvconf/kvconf/backends/etcd"               // registers "etcd" and "etcdv3"
	_ "github.com/kvconf/kvconf/backends/file"               // registers "file"
	_ "github.com/kvconf/kvconf/backends/metadata"           // registers "metadata" and "rancher"
	_ "github.com/kvconf/kvconf/backends/plugin"             // registers "plugin"
	_ "github.com/kvconf/kvconf/backends/zookeeper"          // registers "zookeeper"
)
