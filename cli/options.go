package cli

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

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

// option is one setting: a flag, its confd.toml key, its environment
// variables and, for backend options, the key the backend decodes.
type option struct {
	flag    string   // flag name, e.g. "client-ca-keys"
	key     string   // confd.toml key, e.g. "client_cakeys"
	env     []string // extra environment names (confd's), after KVCONF_<FLAG>
	kind    kind
	def     string // default, in flag syntax
	usage   string
	backend bool // passed to the backend as option key
}

// options lists every setting kvconf takes, in confd's names. Backend
// options are passed to the selected backend, which rejects the ones it
// does not take.
var options = []option{
	{flag: "confdir", key: "confdir", def: "/etc/confd", usage: "directory holding conf.d/ and templates/"},
	{flag: "config-file", key: "", def: "/etc/confd/confd.toml", usage: "kvconf/confd config file (TOML); a missing default file is ignored"},
	{flag: "backend", key: "backend", def: "etcd", usage: "backend to use"},
	{flag: "prefix", key: "prefix", usage: "key prefix joined before every resource's prefix"},
	{flag: "onetime", key: "onetime", kind: kBool, usage: "render every resource once and exit"},
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

	{flag: "node", key: "nodes", kind: kList, backend: true, usage: "backend node address (repeatable)"},
	{flag: "file", key: "file", kind: kList, backend: true, usage: "YAML or JSON file or directory for the file backend (repeatable)"},
	{flag: "filter", key: "filter", backend: true, usage: "glob of file names taken from -file directories (file backend)"},
	{flag: "scheme", key: "scheme", backend: true, usage: "URI scheme for nodes found by DNS SRV (http or https)"},
	{flag: "srv-domain", key: "srv_domain", backend: true, usage: "domain to look up backend nodes in by DNS SRV"},
	{flag: "srv-record", key: "srv_record", backend: true, usage: "SRV record to look up backend nodes in, e.g. _etcd-client._tcp.example.com"},
	{flag: "client-cert", key: "client_cert", env: []string{"CONFD_CLIENT_CERT"}, backend: true, usage: "TLS client certificate file"},
	{flag: "client-key", key: "client_key", env: []string{"CONFD_CLIENT_KEY"}, backend: true, usage: "TLS client key file"},
	{flag: "client-ca-keys", key: "client_cakeys", env: []string{"CONFD_CLIENT_CAKEYS"}, backend: true, usage: "TLS CA certificate file"},
	{flag: "client-insecure", key: "client_insecure", kind: kBool, backend: true, usage: "skip TLS certificate verification"},
	{flag: "basic-auth", key: "basic_auth", kind: kBool, backend: true, usage: "authenticate with -username and -password"},
	{flag: "username", key: "username", backend: true, usage: "user name to authenticate as"},
	{flag: "password", key: "password", backend: true, usage: "password to authenticate with"},
	{flag: "auth-token", key: "auth_token", backend: true, usage: "auth token (e.g. a Consul ACL token)"},
	{flag: "auth-type", key: "auth_type", backend: true, usage: "Vault auth method"},
	{flag: "app-id", key: "app_id", backend: true, usage: "Vault app-id"},
	{flag: "user-id", key: "user_id", backend: true, usage: "Vault user-id"},
	{flag: "role-id", key: "role_id", backend: true, usage: "Vault role-id"},
	{flag: "secret-id", key: "secret_id", backend: true, usage: "Vault secret-id"},
	{flag: "path", key: "path", backend: true, usage: "Vault mount path of the auth method"},
	{flag: "table", key: "table", backend: true, usage: "DynamoDB table"},
	{flag: "separator", key: "separator", backend: true, usage: "separator that replaces / in keys (Redis)"},
	{flag: "header", key: "headers", kind: kList, backend: true, usage: "extra HTTP request header \"Name: value\" (repeatable; metadata backend); values are never logged"},
	{flag: "request-timeout", key: "request_timeout", backend: true, usage: "time limit of each backend request, such as 10s (etcd, consul, metadata)"},
	{flag: "consul-datacenter", key: "datacenter", backend: true, usage: "Consul datacenter to read from (consul backend; default: the agent's)"},
	{flag: "consul-consistency", key: "consistency", backend: true, usage: "consistency of Consul reads: default, stale or consistent (consul backend)"},
	{flag: "metadata-mode", key: "metadata_mode", backend: true, usage: "how the metadata backend watches: auto, longpoll, conditional or poll"},
	{flag: "metadata-poll-interval", key: "metadata_poll_interval", backend: true, usage: "time between reads of the metadata backend's conditional and poll modes, such as 5s"},
	{flag: "metadata-max-wait", key: "metadata_max_wait", backend: true, usage: "longest wait of a metadata long poll on the server, in whole seconds, such as 60s"},
}

// envName is the KVCONF_ environment variable of a flag.
func envName(flagName string) string {
	return "KVCONF_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// source says where a setting's value came from, for error messages.
type source string

// setting is the resolved value of one option.
type setting struct {
	opt   *option
	value any // string, bool, int or []string
	from  source
}

// settings is the merged configuration: defaults < config file < env < flags.
type settings map[string]*setting

func (s settings) str(name string) string    { v, _ := s[name].value.(string); return v }
func (s settings) boolean(name string) bool  { v, _ := s[name].value.(bool); return v }
func (s settings) integer(name string) int   { v, _ := s[name].value.(int); return v }
func (s settings) list(name string) []string { v, _ := s[name].value.([]string); return v }
func (s settings) isSet(name string) bool    { return s[name].from != "default" }
func (s settings) origin(name string) source { return s[name].from }

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

// newFlagSet declares every option on a fresh FlagSet. Values land in the
// returned map, keyed by flag name.
func newFlagSet(name string) (*flag.FlagSet, map[string]any) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	vals := map[string]any{}
	for i := range options {
		o := &options[i]
		switch o.kind {
		case kBool:
			vals[o.flag] = fs.Bool(o.flag, false, o.usage)
		case kInt:
			d, _ := strconv.Atoi(o.def)
			vals[o.flag] = fs.Int(o.flag, d, o.usage)
		case kList:
			v := new([]string)
			fs.Var(listFlag{v}, o.flag, o.usage)
			vals[o.flag] = v
		default:
			vals[o.flag] = fs.String(o.flag, o.def, o.usage)
		}
	}
	return fs, vals
}

// resolve merges defaults, the config file, the environment and the flags
// that were set on the command line, in that order of precedence.
func resolve(fs *flag.FlagSet, vals map[string]any, getenv func(string) (string, bool)) (settings, error) {
	s := settings{}
	for i := range options {
		o := &options[i]
		v, err := parseValue(o, o.def)
		if err != nil || o.def == "" && o.kind != kString {
			v = zero(o.kind)
		}
		s[o.flag] = &setting{opt: o, value: v, from: "default"}
	}
	cmdline := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { cmdline[f.Name] = true })

	// The config file's own path comes from the flag or the environment.
	if err := applyEnv(s, getenv, "config-file"); err != nil {
		return nil, err
	}
	if cmdline["config-file"] {
		s["config-file"].value, s["config-file"].from = *vals["config-file"].(*string), "flag -config-file"
	}
	if err := applyFile(s, s.str("config-file"), s.isSet("config-file")); err != nil {
		return nil, err
	}
	for i := range options {
		if name := options[i].flag; name != "config-file" {
			if err := applyEnv(s, getenv, name); err != nil {
				return nil, err
			}
		}
	}
	for name := range cmdline {
		st, ok := s[name]
		if !ok {
			continue // a flag of a subcommand, not an option
		}
		switch p := vals[name].(type) {
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
	return s, nil
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

// applyFile sets options from a confd.toml file. A missing file is an
// error only when it was asked for explicitly.
func applyFile(s settings, path string, explicit bool) error {
	data, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) && !explicit {
			return nil
		}
		return fmt.Errorf("config file: %w", err)
	}
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
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
	for _, k := range keys {
		if k == namedKey {
			named, err := decodeNamed(path, raw[k])
			if err != nil {
				return err
			}
			s[namedKey] = &setting{opt: &namedOption, value: named, from: source("config file " + path)}
			continue
		}
		st, ok := byKey[k]
		if !ok {
			return fmt.Errorf("config file %s: unknown key %q", path, k)
		}
		v, err := fileValue(st.opt, raw[k])
		if err != nil {
			return fmt.Errorf("config file %s: key %q: %w", path, k, err)
		}
		st.value, st.from = v, source("config file key "+k)
	}
	return nil
}

// namedKey is the config file's table of named backends, [backends.NAME].
// Its decoded []namedBackend is kept in settings under this name, with
// namedOption, which is neither a flag nor a backend option.
const namedKey = "backends"

var namedOption = option{flag: namedKey}

// named returns the named backends of the config file, sorted by name.
func (s settings) named() []namedBackend {
	if st, ok := s[namedKey]; ok {
		v, _ := st.value.([]namedBackend)
		return v
	}
	return nil
}

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
		if err != nil {
			for _, e := range unjoin(err) {
				var oe *backends.OptionError
				if errors.As(e, &oe) {
					errs = append(errs, fmt.Errorf("%s: key %q: not an option of backend %q", where, oe.Key, typ))
					continue
				}
				errs = append(errs, fmt.Errorf("%s: %w", where, e))
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

// backendOptions returns the backend options that were set anywhere,
// keyed by their TOML names.
func (s settings) backendOptions() map[string]any {
	out := map[string]any{}
	for _, st := range s {
		if st.opt.backend && st.from != "default" {
			out[st.opt.key] = st.value
		}
	}
	return out
}

// byKey returns the setting of a confd.toml key.
func (s settings) byKey(key string) *setting {
	for _, st := range s {
		if st.opt.key == key {
			return st
		}
	}
	return nil
}

// duration returns the interval as a duration.
func (s settings) interval() time.Duration { return time.Duration(s.integer("interval")) * time.Second }
