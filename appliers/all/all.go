// Package all imports every applier of kvconf, so that they register.
package all

import (
	_ "github.com/kvconf/kvconf/appliers/haproxy" // haproxy-runtime
)
