package cli

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/kvconf/kvconf/backends"
)

// kind is the type of an option's value.
type kind int

const (
	kString kind = iota
	kBool
	kInt
	kList // repeatable flag; comma-separated in the environment
)

// option is one setting: a flag, its config file key and its environment
// variables. The core options are kvconf's own; the backend options come
// from the backends' declarations ([backends.Flagger]).
type option struct {
	flag  string   // flag name, e.g. "client-ca-keys"
	key   string   // config file key, e.g. "client_cakeys"; "" for none
	env   []string // extra environment names (confd's), after KVCONF_<FLAG>
	kind  kind
	def   string // default, in flag syntax
	usage string
	// backend marks an option of one or more compiled-in backends: its
	// value goes to the selected backend, under key.
	backend bool
	// lacking, when set, is the confd backend, not built in, whose
	// option this is: it is recognised only to say so.
	lacking string
}

// coreOptions are kvconf's own settings, in confd's names.
var coreOptions = []option{
	{flag: "confdir", key: "confdir", def: "/etc/confd", usage: "directory holding conf.d/ and templates/"},
	{flag: "config-file", key: "", def: "/etc/confd/confd.toml", usage: "kvconf/confd config file (TOML); a missing default file is ignored"},
	{flag: "backend", key: "backend", def: "etcd", usage: "the default backend: a compiled-in one (kvconf backends lists them) or a [backends.NAME] table of the config file"},
	{flag: "plugin-dir", key: "plugin_dir", kind: kList, usage: "directory where -backend NAME, when NAME is not built in, looks for the plugin kvconf-backend-NAME before PATH (repeatable; default: kvconf's own directory, then " + systemPluginDir + ")"},
	{flag: "prefix", key: "prefix", usage: "key prefix joined before every resource's prefix"},
	{flag: "onetime", key: "onetime", kind: kBool, usage: "render every resource once and exit (-watch and -interval are then ignored)"},
	{flag: "interval", key: "interval", kind: kInt, def: "600", usage: "seconds between polls of the backend; with -watch, between full reconciliations (none unless set)"},
	{flag: "watch", key: "watch", kind: kBool, usage: "wait for changes instead of polling (backends with watch support only)"},
	{flag: "wait", key: "wait", usage: "let changes settle before rendering: min[:max] such as 2s:10s (max defaults to 4×min); resources may set their own"},
	{flag: "noop", key: "noop", kind: kBool, usage: "write nothing and run no command; print a diff of what would change"},
	{flag: "sync-only", key: "sync-only", kind: kBool, usage: "write files but run no check_cmd or reload_cmd"},
	{flag: "keep-stage-file", key: "keep-stage-file", kind: kBool, usage: "keep staged files"},
	{flag: "log-level", key: "log-level", def: "info", usage: "log level: debug, info, warn or error"},
	{flag: "log-format", key: "log-format", def: "text", usage: "log format: text (key=value) or json (one object per line)"},
	{flag: "listen", key: "listen", usage: "serve /metrics, /health and /ready on this host:port, such as 127.0.0.1:9120 (off when empty)"},
	{flag: "version", kind: kBool, usage: "print version and exit"},
}

// confdBackends lists confd's backends, each with the flags that only it
// takes. The ones no backend of this binary is registered under are "not
// built in" ([lackingBackends]): -help says how to add them, and their
// flags are recognised only to say so.
var confdBackends = []struct {
	name  string
	flags []string
}{
	{name: "consul"},
	{name: "dynamodb", flags: []string{"table"}},
	{name: "env"},
	{name: "etcd"},
	{name: "etcdv3"},
	{name: "file"},
	{name: "rancher"},
	{name: "redis", flags: []string{"separator"}},
	{name: "ssm"},
	{name: "vault", flags: []string{"auth-type", "app-id", "user-id", "role-id", "secret-id", "path"}},
	{name: "zookeeper"},
}

// lackingBackends returns confd's backends that are not compiled in,
// sorted.
func lackingBackends() []string {
	have := backends.Names()
	var out []string
	for _, b := range confdBackends {
		if !slices.Contains(have, b.name) {
			out = append(out, b.name)
		}
	}
	return out
}

// backendGroup is a compiled-in backend and the options it declares;
// names holds the names it is registered under with the same options
// (etcd and etcdv3).
type backendGroup struct {
	names []string
	opts  []backends.Option
}

// backendGroups returns the compiled-in backends with their options, the
// names that share their options merged, sorted by name.
func backendGroups() []backendGroup {
	var out []backendGroup
	for _, name := range backends.Names() {
		opts, err := backends.Flags(name)
		if err != nil {
			continue // registered a moment ago: cannot happen
		}
		if i := slices.IndexFunc(out, func(g backendGroup) bool { return sameOptions(g.opts, opts) && sameConfigType(g.names[0], name) }); i >= 0 {
			out[i].names = append(out[i].names, name)
			continue
		}
		out = append(out, backendGroup{names: []string{name}, opts: opts})
	}
	return out
}

// sameOptions reports whether a and b declare the same flags, keys and
// kinds.
func sameOptions(a, b []backends.Option) bool {
	return slices.EqualFunc(a, b, func(x, y backends.Option) bool {
		return x.Flag == y.Flag && x.Key == y.Key && x.Kind == y.Kind
	})
}

// sameConfigType reports whether the backends registered as a and b have
// configs of the same type, as the names of one backend do.
func sameConfigType(a, b string) bool {
	ca, err1 := backends.NewConfig(a)
	cb, err2 := backends.NewConfig(b)
	return err1 == nil && err2 == nil && fmt.Sprintf("%T", ca) == fmt.Sprintf("%T", cb)
}

// allOptions returns every option the command line takes: the core ones,
// the options of every compiled-in backend (each flag once, as the first
// backend in name order declares it) and the confd options of backends
// that are not built in.
func allOptions() []option {
	out := slices.Clone(coreOptions)
	seen := map[string]bool{}
	for _, o := range coreOptions {
		seen[o.flag] = true
	}
	for _, g := range backendGroups() {
		for _, bo := range g.opts {
			if seen[bo.Flag] || bo.Flag == "" {
				continue
			}
			seen[bo.Flag] = true
			out = append(out, option{flag: bo.Flag, key: bo.Key, env: bo.Env, kind: backendKind(bo.Kind), usage: bo.Usage, backend: true})
		}
	}
	for _, name := range lackingBackends() {
		for _, b := range confdBackends {
			if b.name != name {
				continue
			}
			for _, f := range b.flags {
				if seen[f] {
					continue
				}
				seen[f] = true
				out = append(out, option{flag: f, key: strings.ReplaceAll(f, "-", "_"), lacking: name,
					usage: "an option of confd's " + name + " backend, which is not built in"})
			}
		}
	}
	return out
}

// backendKind is the option kind of a backend option's kind.
func backendKind(k backends.OptionKind) kind {
	switch k {
	case backends.BoolOption:
		return kBool
	case backends.ListOption:
		return kList
	default:
		return kString
	}
}

// envName is the KVCONF_ environment variable of a flag.
func envName(flagName string) string {
	return "KVCONF_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// source says where a setting's value came from, for error messages.
type source string

// setting is the merged value of one option.
type setting struct {
	opt   *option
	value any // string, bool, int or []string
	from  source
}

// settings holds every option's merged value, by flag name: defaults <
// config file < env < flags. Only [load] reads it, to build a [config].
type settings map[string]*setting

// parseValue converts text in flag/env syntax to an option's value type.
func parseValue(o *option, text string) (any, error) {
	switch o.kind {
	case kBool:
		return strconv.ParseBool(text)
	case kInt:
		return strconv.Atoi(text)
	case kList:
		var out []string
		for _, p := range strings.Split(text, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
		return out, nil
	default:
		return text, nil
	}
}

// listFlag collects a repeatable flag.
type listFlag struct{ v *[]string }

func (l listFlag) String() string {
	if l.v == nil {
		return ""
	}
	return strings.Join(*l.v, ",")
}

func (l listFlag) Set(s string) error { *l.v = append(*l.v, s); return nil }

// flags is a FlagSet with every option declared on it, and where their
// values land.
type flags struct {
	*flag.FlagSet
	opts []option
	vals map[string]any // by flag name: *string, *bool, *int or *[]string
}

// newFlagSet declares every option of [allOptions] on a fresh FlagSet.
func newFlagSet(name string) *flags {
	f := &flags{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError), opts: allOptions(), vals: map[string]any{}}
	for i := range f.opts {
		o := &f.opts[i]
		switch o.kind {
		case kBool:
			f.vals[o.flag] = f.Bool(o.flag, false, o.usage)
		case kInt:
			d, _ := strconv.Atoi(o.def)
			f.vals[o.flag] = f.Int(o.flag, d, o.usage)
		case kList:
			v := new([]string)
			f.Var(listFlag{v}, o.flag, o.usage)
			f.vals[o.flag] = v
		default:
			f.vals[o.flag] = f.String(o.flag, o.def, o.usage)
		}
	}
	return f
}

// resolve merges defaults, the config file, the environment and the flags
// that were set on the command line, in that order of precedence.
func (f *flags) resolve(getenv func(string) (string, bool)) (settings, []namedBackend, error) {
	s := settings{}
	for i := range f.opts {
		o := &f.opts[i]
		v, err := parseValue(o, o.def)
		if err != nil || o.def == "" && o.kind != kString {
			v = zero(o.kind)
		}
		s[o.flag] = &setting{opt: o, value: v, from: "default"}
	}
	cmdline := map[string]bool{}
	f.Visit(func(fl *flag.Flag) { cmdline[fl.Name] = true })

	// The config file's own path comes from the flag or the environment.
	if err := applyEnv(s, getenv, "config-file"); err != nil {
		return nil, nil, err
	}
	if cmdline["config-file"] {
		s["config-file"].value, s["config-file"].from = *f.vals["config-file"].(*string), "flag -config-file"
	}
	cf := s["config-file"]
	named, err := applyFile(s, cf.value.(string), cf.from != "default")
	if err != nil {
		return nil, nil, err
	}
	for i := range f.opts {
		if name := f.opts[i].flag; name != "config-file" {
			if err := applyEnv(s, getenv, name); err != nil {
				return nil, nil, err
			}
		}
	}
	for name := range cmdline {
		st, ok := s[name]
		if !ok {
			continue // a flag of a subcommand, not an option
		}
		switch p := f.vals[name].(type) {
		case *string:
			st.value = *p
		case *bool:
			st.value = *p
		case *int:
			st.value = *p
		case *[]string:
			st.value = *p
		}
		st.from = source("flag -" + name)
	}
	return s, named, nil
}

func zero(k kind) any {
	switch k {
	case kBool:
		return false
	case kInt:
		return 0
	case kList:
		return []string(nil)
	default:
		return ""
	}
}

// applyEnv sets an option from KVCONF_<FLAG> or, failing that, from its
// confd environment names.
func applyEnv(s settings, getenv func(string) (string, bool), name string) error {
	st := s[name]
	for _, e := range append([]string{envName(name)}, st.opt.env...) {
		text, ok := getenv(e)
		if !ok {
			continue
		}
		v, err := parseValue(st.opt, text)
		if err != nil {
			return fmt.Errorf("environment %s: %w", e, err)
		}
		st.value, st.from = v, source("environment "+e)
		return nil
	}
	return nil
}

// applyFile sets options from a confd.toml file, and returns its named
// backends. A missing file is an error only when it was asked for
// explicitly.
func applyFile(s settings, path string, explicit bool) ([]namedBackend, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) && !explicit {
			return nil, nil
		}
		return nil, fmt.Errorf("config file: %w", err)
	}
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	byKey := map[string]*setting{}
	for _, st := range s {
		if st.opt.key != "" {
			byKey[st.opt.key] = st
		}
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var named []namedBackend
	for _, k := range keys {
		if k == namedKey {
			if named, err = decodeNamed(path, raw[k]); err != nil {
				return nil, err
			}
			continue
		}
		st, ok := byKey[k]
		if !ok {
			return nil, fmt.Errorf("config file %s: unknown key %q", path, k)
		}
		v, err := fileValue(st.opt, raw[k])
		if err != nil {
			return nil, fmt.Errorf("config file %s: key %q: %w", path, k, err)
		}
		st.value, st.from = v, source("config file key "+k)
	}
	return named, nil
}

// namedKey is the config file's table of named backends, [backends.NAME].
const namedKey = "backends"

// decodeNamed decodes the [backends.NAME] tables of the config file at
// path: each has a type key, a registered backend name, and that backend's
// options, which [backends.Decode] checks. Errors name the file, the table
// and the key.
func decodeNamed(path string, v any) ([]namedBackend, error) {
	tables, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("config file %s: key %q: want tables [backends.NAME], got %T", path, namedKey, v)
	}
	names := make([]string, 0, len(tables))
	for n := range tables {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []namedBackend
	var errs []error
	for _, name := range names {
		where := fmt.Sprintf("config file %s: [backends.%s]", path, name)
		t, ok := tables[name].(map[string]any)
		if !ok {
			errs = append(errs, fmt.Errorf("%s: want a table, got %T", where, tables[name]))
			continue
		}
		typ, ok := t["type"].(string)
		if !ok {
			errs = append(errs, fmt.Errorf("%s: key \"type\": want the backend's type as a string, such as \"etcd\" (kvconf backends lists them)", where))
			continue
		}
		opts := map[string]any{}
		for k, v := range t {
			if k != "type" {
				opts[k] = v
			}
		}
		cfg, err := backends.Decode(typ, opts)
		if _, builtIn := backends.NewConfig(typ); builtIn != nil && pluginName.MatchString(typ) {
			// Maybe a plugin's: looked for once the plugin directories
			// are known (see [config.resolvePlugins]).
			out = append(out, namedBackend{name: name, typ: typ, pluginOpts: opts, where: where})
			continue
		}
		if err != nil {
			for _, e := range unjoin(err) {
				var oe *backends.OptionError
				var ue *backends.UnknownError
				switch {
				case errors.As(e, &oe):
					errs = append(errs, fmt.Errorf("%s: key %q: not an option of backend %q", where, oe.Key, typ))
				case errors.As(e, &ue):
					errs = append(errs, fmt.Errorf("%s: key \"type\": %w", where, unknownBackend(typ, nil)))
				default:
					errs = append(errs, &layerError{msg: where + ": " + backendProblem(typ, e, tableKeys(opts)), err: e})
				}
			}
			continue
		}
		out = append(out, namedBackend{name: name, typ: typ, cfg: cfg})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// tableKeys returns how an error names the keys of a [backends.NAME]
// table: every key mentioned is one of the table, set or not.
func tableKeys(set map[string]any) func(key string) (string, bool) {
	return func(key string) (string, bool) {
		_, ok := set[key]
		return fmt.Sprintf("key %q", key), ok
	}
}

// fileValue converts a decoded TOML value to an option's value type.
func fileValue(o *option, v any) (any, error) {
	switch o.kind {
	case kBool:
		if b, ok := v.(bool); ok {
			return b, nil
		}
		return nil, fmt.Errorf("want a boolean, got %T", v)
	case kInt:
		if n, ok := v.(int64); ok {
			return int(n), nil
		}
		return nil, fmt.Errorf("want an integer, got %T", v)
	case kList:
		switch x := v.(type) {
		case string:
			return []string{x}, nil
		case []any:
			out := make([]string, 0, len(x))
			for _, e := range x {
				str, ok := e.(string)
				if !ok {
					return nil, fmt.Errorf("want a list of strings, got an element of type %T", e)
				}
				out = append(out, str)
			}
			return out, nil
		}
		return nil, fmt.Errorf("want a list of strings, got %T", v)
	default:
		if str, ok := v.(string); ok {
			return str, nil
		}
		return nil, fmt.Errorf("want a string, got %T", v)
	}
}
