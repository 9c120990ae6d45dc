// Command kvconf keeps local configuration files in step with data held in
// key/value stores, and reloads the programs that read them. It takes
// confd's flags, confd.toml and conf.d/*.toml template resources.
//
// It is package [github.com/kvconf/kvconf/cli] with every backend that
// kvconf ships; see that package, and docs/plugins.md, for the usage and
// for building a binary with more backends.
package main

import (
	"os"

	_ "github.com/kvconf/kvconf/backends/all" // every compiled-in backend
	"github.com/kvconf/kvconf/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:])) }
