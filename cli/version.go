package cli

import (
	"runtime/debug"
	"strings"
)

// The build's stamps, set at build time with -ldflags "-X
// github.com/kvconf/kvconf/cli.version=v1.2.3" and so on; make build sets
// them from git. Empty, -version prints what the go command stamped in
// the build information (the module version, and the VCS revision and
// time unless built with -buildvcs=false).
var (
	version  = "" // the release version, such as v1.2.3
	revision = "" // the VCS revision
	revTime  = "" // the revision's time, RFC 3339
	modified = "" // "true" when the tree had changes
)

// versionString is what -version prints after "kvconf ".
func versionString() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = &debug.BuildInfo{}
	}
	// The stamps of the linker win over the go command's.
	for k, v := range map[string]string{"vcs.revision": revision, "vcs.time": revTime, "vcs.modified": modified} {
		if v != "" {
			bi.Settings = append(bi.Settings, debug.BuildSetting{Key: k, Value: v})
		}
	}
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
	dirty := false
	for _, s := range bi.Settings { // the last of each key wins
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
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
	if dirty {
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
