package env

import "github.com/kvconf/kvconf/backends"

// Flags declares that the env backend takes no option; it implements
// [backends.Flagger].
func (c *Config) Flags() []backends.Option { return nil }
