package plugin

import "github.com/kvconf/kvconf/backends"

// Flags declares that the plugin backend takes no command-line option:
// its command and the plugin's own options are keys of a
// [backends.NAME] table of the config file; it implements
// [backends.Flagger].
func (c *Config) Flags() []backends.Option { return nil }
