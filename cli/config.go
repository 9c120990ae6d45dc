package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/resource"
)

// config is the command line's configuration: the flags, the environment
// (KVCONF_*, confd's CONFD_CLIENT_*) and the config file, merged with
// precedence flag > environment > config file > default, then parsed and
// checked once, by [load].
type config struct {
	ConfigFile    string
	ConfDir       string
	Backend       string // -backend: a compiled-in backend or a named one
	Prefix        string
	Onetime       bool
	Watch         bool
	Interval      time.Duration // the period of polls, or with Watch of reconciliations (0: none)
	Wait          resource.Wait
	Noop          bool
	SyncOnly      bool
	KeepStageFile bool
	LogLevel      slog.Level
	LogFormat     string // "text" or "json"
	Listen        string // -listen: host:port of /metrics, /health and /ready; "" for none
	Version       bool

	// BackendOpts holds the backend options that were set anywhere, by
	// their config file key, for the default backend.
	BackendOpts map[string]any
	// Named holds the [backends.NAME] tables of the config file, sorted
	// by name.
	Named []namedBackend
	// PluginDirs are the directories of -plugin-dir (see [pluginDirs]).
	PluginDirs []string
	// Ignored lists the settings that -onetime makes kvconf ignore
	// (-watch, -interval), by where they were set.
	Ignored []source

	// lacking holds the options of confd backends that are not built in
	// that were set, by key: a plugin found for -backend takes them.
	lacking map[string]any
	path    string // the PATH searched for plugins after PluginDirs

	from    map[string]source // where each option's value came from, by flag name
	keyFrom map[string]source // the same for the backend options, by key
	keyFlag map[string]string // the flag of each backend option, by key
}

// origin says where the named option's value came from.
func (c *config) origin(flagName string) source { return c.from[flagName] }

// isSet reports whether the named option was set anywhere.
func (c *config) isSet(flagName string) bool { return c.from[flagName] != "default" }

// load parses args (after f's options were declared) with the
// environment of getenv and the config file they name into a config.
// Errors name the flag, variable or config file key at fault.
func load(f *flags, getenv func(string) (string, bool)) (*config, error) {
	s, named, err := f.resolve(getenv)
	if err != nil {
		return nil, err
	}
	c := &config{
		ConfigFile:    s["config-file"].value.(string),
		ConfDir:       s["confdir"].value.(string),
		Backend:       s["backend"].value.(string),
		Prefix:        s["prefix"].value.(string),
		Onetime:       s["onetime"].value.(bool),
		Watch:         s["watch"].value.(bool),
		Noop:          s["noop"].value.(bool),
		SyncOnly:      s["sync-only"].value.(bool),
		KeepStageFile: s["keep-stage-file"].value.(bool),
		Version:       s["version"].value.(bool),
		Named:         named,
		PluginDirs:    s["plugin-dir"].value.([]string),
		BackendOpts:   map[string]any{},
		from:          map[string]source{},
		keyFrom:       map[string]source{},
		keyFlag:       map[string]string{},
	}
	for name, st := range s {
		c.from[name] = st.from
		if st.opt.backend {
			c.keyFlag[st.opt.key] = name
			if st.from != "default" {
				c.BackendOpts[st.opt.key] = st.value
				c.keyFrom[st.opt.key] = st.from
			}
		}
		if st.opt.lacking != "" && st.from != "default" {
			if c.lacking == nil {
				c.lacking = map[string]any{}
			}
			c.lacking[st.opt.key] = st.value
			c.keyFrom[st.opt.key] = st.from
		}
	}
	c.path, _ = getenv("PATH")
	if c.Version {
		return c, nil
	}
	if err := c.resolvePlugins(); err != nil {
		return nil, err
	}
	if c.LogLevel, err = parseLevel(s["log-level"].value.(string)); err != nil {
		return nil, fmt.Errorf("%s: %w", c.origin("log-level"), err)
	}
	if c.LogFormat, err = parseLogFormat(s["log-format"].value.(string)); err != nil {
		return nil, fmt.Errorf("%s: %w", c.origin("log-format"), err)
	}
	if c.Listen, err = parseListen(s["listen"].value.(string)); err != nil {
		return nil, fmt.Errorf("%s: %w", c.origin("listen"), err)
	}
	interval := s["interval"].value.(int)
	if interval <= 0 {
		return nil, fmt.Errorf("%s: interval must be a positive number of seconds, got %d", c.origin("interval"), interval)
	}
	c.Interval = time.Duration(interval) * time.Second
	if c.ConfDir == "" {
		return nil, fmt.Errorf("%s: confdir must not be empty", c.origin("confdir"))
	}
	if c.Wait, err = resource.ParseWait(s["wait"].value.(string)); err != nil {
		return nil, fmt.Errorf("%s: %w", c.origin("wait"), err)
	}
	switch {
	case c.Onetime:
		// confd lets -onetime win over -watch and -interval.
		for _, name := range []string{"watch", "interval"} {
			if c.isSet(name) && (name != "watch" || c.Watch) {
				c.Ignored = append(c.Ignored, c.origin(name))
			}
		}
		c.Watch = false
	case c.Watch && !c.isSet("interval"):
		c.Interval = 0 // watch alone: no periodic reconciliation
	}
	return c, nil
}

// resolvePlugins gives each [backends.NAME] table whose type is not built
// in the config of the plugin kvconf-backend-TYPE found in the plugin
// directories or PATH, with the table's other keys as its options. A type
// with no plugin is an error naming the table.
func (c *config) resolvePlugins() error {
	var errs []error
	for i := range c.Named {
		n := &c.Named[i]
		if n.cfg != nil {
			continue
		}
		from := make(map[string]source, len(n.pluginOpts))
		for k := range n.pluginOpts {
			from[k] = source(fmt.Sprintf("key %q", k))
		}
		cfg, err := c.pluginBackend(context.Background(), n.typ, n.pluginOpts, from)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: type %q: %w", n.where, n.typ, err))
		case cfg == nil:
			errs = append(errs, fmt.Errorf("%s: key \"type\": %w", n.where, unknownBackend(n.typ, nil)))
		default:
			n.cfg, n.pluginOpts = cfg, nil
		}
	}
	return errors.Join(errs...)
}

// parseLevel parses a log level name.
func parseLevel(name string) (slog.Level, error) {
	switch strings.ToLower(name) {
	case "debug":
		return slog.LevelDebug, nil
	case "info", "":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error", "fatal", "panic":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("unknown log level %q (want debug, info, warn or error)", name)
}

// runOptions returns the daemon's settings.
func (c *config) runOptions(log *slog.Logger) resource.RunOptions {
	return resource.RunOptions{Watch: c.Watch, Interval: c.Interval, Wait: c.Wait, Logger: log}
}

// resourceOptions returns the settings of the resources.
func (c *config) resourceOptions(log *slog.Logger) resource.Options {
	return resource.Options{
		ConfDir:       c.ConfDir,
		Prefix:        c.Prefix,
		Noop:          c.Noop,
		SyncOnly:      c.SyncOnly,
		KeepStageFile: c.KeepStageFile,
		Logger:        log,
	}
}

// defaultBackend returns the type and the config of the default backend:
// the [backends.NAME] table that -backend names, if there is one (the
// backend options must then be set there), else the compiled-in backend,
// configured by the backend options. Errors name the flag, variable or
// config file key at fault.
func (c *config) defaultBackend() (name, typ string, cfg backends.Config, err error) {
	if i := slices.IndexFunc(c.Named, func(n namedBackend) bool { return n.name == c.Backend }); i >= 0 {
		n := c.Named[i]
		var set []string
		for k := range c.BackendOpts {
			set = append(set, string(c.keyFrom[k]))
		}
		if err := c.lackingSet(); err != nil {
			return "", "", nil, err
		}
		if len(set) > 0 {
			slices.Sort(set)
			return "", "", nil, fmt.Errorf("%s: the default backend is the config file's [backends.%s] table: set its options there (%s)",
				c.origin("backend"), n.name, strings.Join(set, ", "))
		}
		return n.name, n.typ, n.cfg, nil
	}
	if _, err := backends.NewConfig(c.Backend); err != nil && !slices.ContainsFunc(c.Named, func(n namedBackend) bool { return n.name == c.Backend }) {
		// Not built in: a plugin kvconf-backend-NAME, if there is one,
		// takes every backend option given.
		opts := maps.Clone(c.BackendOpts)
		maps.Copy(opts, c.lacking)
		cfg, err := c.pluginBackend(context.Background(), c.Backend, opts, c.keyFrom)
		if err != nil {
			return "", "", nil, fmt.Errorf("backend %s: %w", c.Backend, err)
		}
		if cfg != nil {
			return "", c.Backend, cfg, nil
		}
	}
	if err := c.lackingSet(); err != nil {
		return "", "", nil, err
	}
	cfg, err = backends.Decode(c.Backend, c.BackendOpts)
	if err == nil {
		return "", c.Backend, cfg, nil
	}
	var msgs []string
	for _, e := range unjoin(err) {
		var oe *backends.OptionError
		var ue *backends.UnknownError
		switch {
		case errors.As(e, &oe):
			if from, ok := c.keyFrom[oe.Key]; ok {
				msgs = append(msgs, fmt.Sprintf("%s: not an option of backend %q", from, c.Backend))
				continue
			}
			msgs = append(msgs, e.Error())
		case errors.As(e, &ue):
			return "", "", nil, fmt.Errorf("%s: %w", c.origin("backend"), unknownBackend(c.Backend, c.Named))
		default:
			msgs = append(msgs, backendProblem(c.Backend, e, c.optionSource))
		}
	}
	return "", "", nil, fmt.Errorf("backend %s: %s", c.Backend, strings.Join(msgs, "; "))
}

// lackingSet returns the error for the options of confd backends that
// are not built in, when one was set and no plugin takes it: the first,
// in key order, saying where it was set.
func (c *config) lackingSet() error {
	keys := slices.Sorted(maps.Keys(c.lacking))
	for _, k := range keys {
		for _, b := range confdBackends {
			if slices.Contains(b.flags, strings.ReplaceAll(k, "_", "-")) {
				return fmt.Errorf("%s: %s", c.keyFrom[k], notBuiltIn(b.name))
			}
		}
	}
	return nil
}

// optionSource says how an error names the backend option key: where it
// was set, or, when it was not, how to set it.
func (c *config) optionSource(key string) (string, bool) {
	if from, ok := c.keyFrom[key]; ok {
		return string(from), true
	}
	if fl, ok := c.keyFlag[key]; ok {
		return fmt.Sprintf("-%s, %s or key %s in the config file", fl, envName(fl), key), false
	}
	return "key " + key, false
}

// unknownBackend is the error for a backend name that is neither compiled
// in nor, when named is not nil, a [backends.NAME] table: it says what is
// available and, for a confd backend, how to add it.
func unknownBackend(name string, named []namedBackend) error {
	avail := "built in: " + strings.Join(backends.Names(), ", ")
	if len(named) > 0 {
		ns := make([]string, len(named))
		for i, n := range named {
			ns[i] = n.name
		}
		avail += "; in the config file: " + strings.Join(ns, ", ")
	}
	if slices.Contains(lackingBackends(), name) {
		return fmt.Errorf("unknown backend %q: %s (%s)", name, notBuiltIn(name), avail)
	}
	return fmt.Errorf("unknown backend %q (%s; no plugin %s%s in -plugin-dir or PATH, see docs/plugins.md)", name, avail, pluginPrefix, name)
}

// quoted matches a double-quoted string of an error message, such as a
// value, in which no option key is looked for.
var quoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

// word matches a word that may be an option key.
var word = regexp.MustCompile(`[a-z][a-z0-9_]*`)

// backendProblem rewrites a backend's error about its options for the
// user: without the backend's own name in front (the caller says which
// backend), and naming each option key the message mentions the way the
// user sets it: where it was set (name returns set), else how to set it.
func backendProblem(typ string, err error, name func(key string) (string, bool)) string {
	msg := err.Error()
	var ie *backends.InvalidError
	if !errors.As(err, &ie) {
		return msg
	}
	msg = strings.TrimPrefix(msg, typ+": ")
	opts, _ := backends.Flags(typ)
	keys := map[string]bool{}
	for _, o := range opts {
		keys[o.Key] = true
	}
	var set, unset []string
	bare := quoted.ReplaceAllString(msg, `""`)
	for _, w := range word.FindAllString(bare, -1) {
		if !keys[w] {
			continue
		}
		delete(keys, w) // each once
		if n, ok := name(w); ok {
			set = append(set, n)
		} else {
			unset = append(unset, n)
		}
		msg = strings.ReplaceAll(msg, " (option "+w+")", "")
	}
	switch {
	case len(set) > 0:
		return msg + " (" + strings.Join(set, "; ") + ")"
	case len(unset) > 0:
		return msg + " (set with " + strings.Join(unset, "; ") + ")"
	}
	return msg
}

// layerError is an error whose message reads better than its cause's
// (say, without a prefix the caller says already), and which still
// unwraps to it.
type layerError struct {
	msg string
	err error
}

func (e *layerError) Error() string { return e.msg }
func (e *layerError) Unwrap() error { return e.err }
