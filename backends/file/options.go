package file

import "github.com/kvconf/kvconf/backends"

// Flags declares the file backend's options for the command line, with
// confd's flag names; it implements [backends.Flagger].
func (c *Config) Flags() []backends.Option {
	return []backends.Option{
		{Flag: "file", Key: "file", Kind: backends.ListOption, Usage: "YAML or JSON file or directory to read (repeatable; later files win key by key)"},
		{Flag: "filter", Key: "filter", Usage: "glob of the file names read from -file directories (default *)"},
	}
}
