package cli

import (
	"context"
	"errors"
	"fmt"

	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/backends/plugin/sdk"
	"github.com/kvconf/kvconf/funcs"
)

// pluginPrefix starts the file name of a plugin that -backend NAME finds:
// kvconf-backend-NAME.
const pluginPrefix = "kvconf-backend-"

// systemPluginDir is the plugin directory of packages, searched by
// default after the directory of the kvconf binary.
const systemPluginDir = "/usr/lib/kvconf/plugins"

// probeTimeout bounds the wait for a plugin's greeting when kvconf looks
// at it before starting it for good.
const probeTimeout = 10 * time.Second

// pluginName matches the backend names discovery looks for: no path
// separator, no leading dot or dash.
var pluginName = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)

// pluginDirs returns the directories searched for plugins, in order: those
// of -plugin-dir, or by default the directory of the kvconf binary and
// [systemPluginDir]; PATH comes after them.
func pluginDirs(set []string) []string {
	if len(set) > 0 {
		return set
	}
	var dirs []string
	if exe, err := os.Executable(); err == nil {
		dirs = append(dirs, filepath.Dir(exe))
	}
	return append(dirs, systemPluginDir)
}

// searchPath returns the directories of the PATH value path.
func searchPath(path string) []string {
	var out []string
	for _, d := range filepath.SplitList(path) {
		if d != "" && filepath.IsAbs(d) {
			out = append(out, d)
		}
	}
	return out
}

// findPlugin returns the path of the executable kvconf-backend-NAME in the
// first of dirs, then of PATH, that has one, or "" when none has. A file
// that others than its owner may write is refused: kvconf runs it, often
// as root.
func findPlugin(name string, dirs []string, path string) (string, error) {
	if !pluginName.MatchString(name) {
		return "", nil
	}
	for _, d := range append(slices.Clone(dirs), searchPath(path)...) {
		p := filepath.Join(d, pluginPrefix+name)
		fi, err := os.Stat(p)
		if err != nil || !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
			continue
		}
		if fi.Mode()&0o022 != 0 {
			return "", fmt.Errorf("plugin %s: refused: writable by group or others (mode %v)", p, fi.Mode().Perm())
		}
		return p, nil
	}
	return "", nil
}

// plugins returns every plugin found in dirs and then PATH, by name, the
// first of each name.
func plugins(dirs []string, path string) map[string]string {
	out := map[string]string{}
	for _, d := range append(slices.Clone(dirs), searchPath(path)...) {
		ents, err := os.ReadDir(d)
		if err != nil {
			continue // a missing directory has no plugin
		}
		for _, e := range ents {
			name, ok := strings.CutPrefix(e.Name(), pluginPrefix)
			if !ok || out[name] != "" || !pluginName.MatchString(name) {
				continue
			}
			if p, err := findPlugin(name, []string{d}, ""); p != "" || err != nil {
				out[name] = filepath.Join(d, e.Name())
			}
		}
	}
	return out
}

// pluginBackend returns the config of the plugin backend running the
// plugin found for -backend name, with the backend options that were set
// (opts, by key; where each was set in from) as its options. It returns
// nil, nil when no plugin has that name. The plugin is probed first: an
// option it does not declare is an error naming where it was set.
func (c *config) pluginBackend(ctx context.Context, name string, opts map[string]any, from map[string]source) (backends.Config, error) {
	path, err := findPlugin(name, pluginDirs(c.PluginDirs), c.path)
	if err != nil || path == "" {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	g, err := sdk.Probe(pctx, path)
	if err != nil {
		return nil, err
	}
	strs := map[string]string{}
	keys := make([]string, 0, len(opts))
	for k := range opts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var errs []error
	for _, k := range keys {
		if len(g.Options) > 0 && !slices.ContainsFunc(g.Options, func(o sdk.Option) bool { return o.Key == k }) {
			takes := make([]string, len(g.Options))
			for i, o := range g.Options {
				takes[i] = o.Key
			}
			errs = append(errs, fmt.Errorf("%s: not an option of plugin %s (it takes %s)", from[k], path, strings.Join(takes, ", ")))
			continue
		}
		switch v := opts[k].(type) {
		case string:
			strs[k] = v
		case bool:
			strs[k] = strconv.FormatBool(v)
		case []string:
			strs[k] = strings.Join(v, ",")
		case []any: // a config file's array
			parts := make([]string, len(v))
			for i, x := range v {
				parts[i] = fmt.Sprint(x)
			}
			strs[k] = strings.Join(parts, ",")
		default:
			strs[k] = fmt.Sprint(v)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	cfg, err := backends.Decode("plugin", map[string]any{"command": []string{path}, "options": strs})
	var ue *backends.UnknownError
	if errors.As(err, &ue) {
		return nil, fmt.Errorf("plugin %s found, but this kvconf has no plugin backend to run it (import backends/plugin)", path)
	}
	return cfg, err
}

// notBuiltIn is the one line that says a confd backend is not compiled in
// and how to add it.
func notBuiltIn(name string) string {
	return fmt.Sprintf("confd's %s backend is not built into this kvconf: add it as a plugin, an executable %s%s "+
		"that -backend %s finds in -plugin-dir (default: kvconf's directory, %s) or PATH, written with the plugin SDK "+
		"(package backends/plugin/sdk), or build a kvconf with it (docs/plugins.md)",
		name, pluginPrefix, name, name, systemPluginDir)
}

// plugins is "kvconf plugins": what is compiled in, one per line: every
// backend as "backend\tNAME\tdescription", every function set as
// "funcs\tNAME\tdescription", then every plugin found for -backend NAME as
// "plugin\tNAME\tdescription (protocol version, path)". It takes kvconf's
// flags, of which -plugin-dir and -config-file matter.
func (c command) plugins(ctx context.Context, args []string) int {
	fs := newFlagSet("kvconf plugins")
	fs.SetOutput(c.stderr)
	fs.Usage = func() { fmt.Fprintln(c.stderr, "Usage: kvconf plugins [-plugin-dir DIR]... [-config-file FILE]") }
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		fs.Usage()
		return exitUsage
	}
	cfg, err := load(fs, c.getenv)
	if err != nil {
		fmt.Fprintf(c.stderr, "kvconf plugins: %v\n", err)
		return exitUsage
	}
	for _, name := range backends.Names() {
		fmt.Fprintf(c.stdout, "backend\t%s\t%s\n", name, backendDescription(name))
	}
	for _, name := range funcs.Names() {
		fmt.Fprintf(c.stdout, "funcs\t%s\t%s\n", name, funcs.Description(name))
	}
	found := plugins(pluginDirs(cfg.PluginDirs), cfg.path)
	names := make([]string, 0, len(found))
	for n := range found {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		path := found[name]
		if slices.Contains(backends.Names(), name) {
			fmt.Fprintf(c.stdout, "plugin\t%s\tshadowed by the built-in backend %s (%s)\n", name, name, path)
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, probeTimeout)
		g, err := sdk.Probe(pctx, path)
		cancel()
		if err != nil {
			fmt.Fprintf(c.stdout, "plugin\t%s\tunusable: %s\n", name, printable(oneLine(err.Error())))
			continue
		}
		desc := g.Description
		if desc == "" {
			desc = "no description"
		}
		fmt.Fprintf(c.stdout, "plugin\t%s\t%s (%s version %d, %s)\n", name, printable(oneLine(desc)), g.Protocol, g.Version, path)
	}
	return exitOK
}

// oneLine replaces the line breaks of s with spaces.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
