package cli

import (
	"runtime/debug"
	"strings"
)

// version is the release version, set at build time with
// -ldflags "-X github.com/kvconf/kvconf/cli.version=v1.2.3" (make build
// sets it from git describe). Empty, the module version of the build
// information is printed instead.
var version = ""

// versionString is what -version prints after "kvconf ".
func versionString() string {
	bi, _ := debug.ReadBuildInfo()
	return formatVersion(version, bi)
}

// formatVersion describes a build: the release version (ldflags) or the
// module version, then the VCS revision and time and whether the tree
// was modified, as the go command stamps them, then the Go version:
//
//	v1.2.0 (rev 92028de1a2b3, 2026-12-06T02:00:00Z, modified; go1.26.8)
func formatVersion(release string, bi *debug.BuildInfo) string {
	v := release
	if bi == nil {
		if v == "" {
			v = "(devel)"
		}
		return v
	}
	if v == "" {
		v = bi.Main.Version
	}
	if v == "" {
		v = "(devel)"
	}
	var rev, at string
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	var parts []string
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		parts = append(parts, "rev "+rev)
	}
	if at != "" {
		parts = append(parts, at)
	}
	if modified {
		parts = append(parts, "modified")
	}
	detail := strings.Join(parts, ", ")
	if bi.GoVersion != "" {
		if detail != "" {
			detail += "; "
		}
		detail += bi.GoVersion
	}
	if detail == "" {
		return v
	}
	return v + " (" + detail + ")"
}
