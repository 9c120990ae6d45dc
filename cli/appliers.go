package cli

import _ "github.com/kvconf/kvconf/appliers/all" // every applier, for [template.apply]
