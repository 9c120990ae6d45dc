package backends

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/kvconf/kvconf/internal/registry"
)

// ErrClosed is returned by the methods of a backend after Close.
var ErrClosed = errors.New("backends: closed")

// Snapshot is the content of a backend under some prefixes at one revision.
// Keys are full, absolute paths such as "/app/db/host".
//
// It is one of two shapes of the same content, on purpose. Snapshot, a
// map, is what every backend returns: most gather keys in no order (a
// decoded YAML or JSON document, the environment), and
// a map is what they build anyway; [Update].Full and [Diff] take it too.
// [List], the pairs sorted by key, is what a [Lister] returns as well, a
// backend that reads keys in order (etcd): the store keeps such a list as
// it is, where a map of 100,000 keys would cost building the map and
// sorting its keys.
type Snapshot struct {
	// Rev is the revision the snapshot was read at (0 if unknown).
	Rev uint64
	// KVs maps every key found under the requested prefixes to its value.
	KVs map[string]string
}

// KV is one key and its value, as a backend reads them: the element of a
// [List]. Templates see another type with the same fields, funcs.KV,
// whose key is relative to the resource's prefix (its doc says why the
// two stay apart).
type KV struct {
	// Key is the full key.
	Key string
	// Value is the key's value.
	Value string
}

// List is a [Snapshot] held as a list sorted by key rather than as a map,
// for the backends that read keys in order (see [Lister], and [Snapshot]
// for why both shapes exist).
type List struct {
	// Rev is the revision the list was read at (0 if unknown).
	Rev uint64
	// KVs holds every key found under the requested prefixes with its
	// value, sorted by key (byte-wise, as [strings.Compare]), each key
	// once.
	KVs []KV
}

// Change is one key that was set or deleted.
type Change struct {
	// Key is the full key.
	Key string
	// Value is the new value; it is empty when Deleted is set.
	Value string
	// Deleted reports that the key was removed.
	Deleted bool
}

// Diff returns the changes that turn the keys and values old into cur,
// sorted by key: for a backend that only reads whole snapshots, what a
// [Watcher] returns as an [Update]'s changes.
func Diff(old, cur map[string]string) []Change {
	var changes []Change
	for k, v := range cur {
		if ov, ok := old[k]; !ok || ov != v {
			changes = append(changes, Change{Key: k, Value: v})
		}
	}
	for k := range old {
		if _, ok := cur[k]; !ok {
			changes = append(changes, Change{Key: k, Deleted: true})
		}
	}
	slices.SortFunc(changes, func(a, b Change) int { return strings.Compare(a.Key, b.Key) })
	return changes
}

// Update is what [Watcher.Watch] returns: the state after some revision,
// either as a list of changes to apply or as a full snapshot that replaces
// everything under the watched prefixes.
type Update struct {
	// Rev is the revision the update brings the watcher to.
	Rev uint64
	// Changes lists the keys that changed, in order; unused when Full is set.
	Changes []Change
	// Full, when not nil, replaces the whole content under the prefixes.
	Full *Snapshot
}

// Backend is a source of key/value data.
type Backend interface {
	// Snapshot returns every key under any of prefixes. A prefix matches
	// keys by plain string prefix, as confd does: "/app/db" matches
	// "/app/db/host" and "/app/dbx". "/" matches every key.
	Snapshot(ctx context.Context, prefixes []string) (Snapshot, error)
	// Close releases the backend. It is idempotent.
	Close() error
}

// Lister is implemented by backends that read keys in order, as etcd
// returns its ranges sorted by key. A consumer that keeps the keys sorted
// anyway asks for a [List] and so skips building a map and sorting it.
type Lister interface {
	// List returns the same keys, values and revision as Snapshot with
	// the same prefixes would, as a List. The List's KVs are read-only:
	// the backend may keep them (a watch starts from them), and the
	// caller must not change them.
	List(ctx context.Context, prefixes []string) (List, error)
}

// Watcher is implemented by backends that can wait for changes.
type Watcher interface {
	// Watch blocks until a key under prefixes changed after revision
	// after, then returns what changed. With after == 0 it returns at once
	// with the current revision.
	Watch(ctx context.Context, prefixes []string, after uint64) (Update, error)
}

// Config holds a backend's options and opens it.
type Config interface {
	// Open connects to the backend described by the config.
	Open(ctx context.Context) (Backend, error)
}

// Validator is implemented by configs that can check themselves before Open.
type Validator interface {
	// Validate reports the first problem with the options, if any.
	Validate() error
}

// LogSetter is implemented by configs of backends that log, such as etcd's
// client: the core hands them its logger, with the backend named, before
// Open. Without a call, they log nothing.
type LogSetter interface {
	// SetLogger sets the logger of the backend that Open returns.
	SetLogger(l *slog.Logger)
}

// Refuser is implemented by backends whose server can refuse a request
// over a limit of its own, such as a Consul agent over its connections
// per client (HTTP 429): the backend retries with backoff, and metrics
// count the refusals.
type Refuser interface {
	// Refused returns how many requests the server refused so far.
	Refused() uint64
}

// Describer is implemented by configs that describe their backend in one
// line, for listings such as "kvconf plugins".
type Describer interface {
	// Description returns a short, one-line description.
	Description() string
}

// Sampler is implemented by configs that can show a sample configuration:
// a commented [backends.NAME] TOML table with type = "NAME" and every
// option, as the config file takes it.
type Sampler interface {
	// Sample returns the sample configuration.
	Sample() string
}

// factories holds the registered backends' Config factories.
var factories = registry.New[func() Config]("backends")

// Register makes a backend available under name. It is meant to be
// called from the init function of the backend's package, and panics if
// name is empty, newConfig is nil or name is already registered.
func Register(name string, newConfig func() Config) {
	factories.Register(name, newConfig, newConfig == nil)
}

// Names returns the names of the registered backends, sorted.
func Names() []string { return factories.Names() }

// NewConfig returns a fresh, default Config for the named backend. A name
// that no backend is registered under is an [*UnknownError].
func NewConfig(name string) (Config, error) {
	newConfig, ok := factories.Lookup(name)
	if !ok {
		return nil, &UnknownError{Name: name, Known: Names()}
	}
	return newConfig(), nil
}

// UnknownError reports a backend name that no backend is registered
// under. Its message, meant for whoever assembles a binary, hints at the
// missing import; a command line that knows better (what its users can
// add, the names its config file defines) tells them with errors.As.
type UnknownError struct {
	// Name is the name asked for.
	Name string
	// Known lists the registered names, sorted.
	Known []string
}

func (e *UnknownError) Error() string {
	return fmt.Sprintf("backends: unknown backend %q (known: %s; missing import of backends/all?)", e.Name, strings.Join(e.Known, ", "))
}

// OptionKind is the type of a backend option's value.
type OptionKind int

// The kinds of [Option].
const (
	// StringOption is an option with one text value.
	StringOption OptionKind = iota
	// BoolOption is a switch: a flag that takes no value, true or false in the
	// environment and the config file.
	BoolOption
	// ListOption is a list of strings: a flag given once per element,
	// comma-separated in the environment, a TOML array (or one string) in
	// the config file.
	ListOption
)

// Option declares one option of a backend as a command line takes it: a
// flag, an environment variable and a key of its config file, which
// goes into the backend's [Config] under Key. A backend declares its
// options with [Flagger]; a command line asks for them with [Flags],
// so that a new backend brings its own flags.
type Option struct {
	// Flag is the command-line flag, without dashes, in confd's spelling
	// where confd has the option: "client-ca-keys". The environment
	// variable KVCONF_<FLAG> (upper case, dashes as underscores) sets it
	// too.
	Flag string
	// Key is the option's TOML key in the backend's Config, which is
	// also its key in the config file: "client_cakeys".
	Key string
	// Kind is the type of the value.
	Kind OptionKind
	// Usage is the one-line help of the option.
	Usage string
	// Env lists the other environment variables that set the option,
	// confd's aliases such as "CONFD_CLIENT_CAKEYS", in order of
	// precedence after KVCONF_<FLAG>.
	Env []string
}

// Flagger is implemented by configs that declare their options for the
// command line, as flags, environment variables and config file keys;
// see [Option]. Several backends may declare the same flag: it must then
// have the same Key and Kind in each, and the value goes to whichever
// backend is selected.
type Flagger interface {
	// Flags returns the backend's options, in the order a help text
	// lists them.
	Flags() []Option
}

// Flags returns the options that the named backend declares with
// [Flagger], or none if its config does not implement it. A name that no
// backend is registered under is an [*UnknownError].
func Flags(name string) ([]Option, error) {
	cfg, err := NewConfig(name)
	if err != nil {
		return nil, err
	}
	if f, ok := cfg.(Flagger); ok {
		return f.Flags(), nil
	}
	return nil, nil
}

// OptionError reports an option that the named backend does not take.
type OptionError struct {
	// Backend is the backend's registered name.
	Backend string
	// Key is the option's name, as written in TOML.
	Key string
}

func (e *OptionError) Error() string {
	return fmt.Sprintf("backends: backend %q does not take option %q", e.Backend, e.Key)
}

// Decode builds the Config of the named backend from options keyed by their
// TOML names (the keys of confd.toml, such as "nodes" or "file"). An option
// the backend does not take is an [*OptionError]; a config that implements
// [Validator] is validated.
func Decode(name string, opts map[string]any) (Config, error) {
	cfg, err := NewConfig(name)
	if err != nil {
		return nil, err
	}
	var buf strings.Builder
	if err := toml.NewEncoder(&buf).Encode(opts); err != nil {
		return nil, fmt.Errorf("backends: %s: encode options: %w", name, err)
	}
	md, err := toml.Decode(buf.String(), cfg)
	if err != nil {
		return nil, fmt.Errorf("backends: %s: %w", name, err)
	}
	var errs []error
	var reported []string
	for _, k := range md.Undecoded() {
		key := k.String()
		if slices.ContainsFunc(reported, func(p string) bool { return strings.HasPrefix(key, p+".") }) {
			continue // inside an unknown table already reported
		}
		reported = append(reported, key)
		errs = append(errs, &OptionError{Backend: name, Key: key})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if v, ok := cfg.(Validator); ok {
		if err := v.Validate(); err != nil {
			return nil, &InvalidError{Backend: name, Err: err}
		}
	}
	return cfg, nil
}

// InvalidError reports options that the named backend's [Validator]
// rejected. Its message is the validator's, which names the backend
// itself ("file: no file given (option file)"); without that prefix, the
// backend's name is put in front.
type InvalidError struct {
	// Backend is the backend's registered name.
	Backend string
	// Err is Validate's error.
	Err error
}

func (e *InvalidError) Error() string {
	msg := e.Err.Error()
	if strings.HasPrefix(msg, e.Backend+": ") {
		return msg
	}
	return e.Backend + ": " + msg
}

// Unwrap returns Err.
func (e *InvalidError) Unwrap() error { return e.Err }

// Open decodes opts for the named backend (see [Decode]) and opens it.
func Open(ctx context.Context, name string, opts map[string]any) (Backend, error) {
	cfg, err := Decode(name, opts)
	if err != nil {
		return nil, err
	}
	b, err := cfg.Open(ctx)
	if err != nil {
		return nil, fmt.Errorf("backends: open %s: %w", name, err)
	}
	return b, nil
}
