// Package appliers holds the registry of appliers: the ways a resource
// brings a running service up to date once its dest has a new, checked
// content. Without an applier a resource runs its reload_cmd, as confd
// does; with one, chosen by a [template.apply] table, the applier goes
// first and reload_cmd is the fallback taken when it cannot apply the
// change:
//
//	[template.apply]
//	type = "haproxy-runtime"
//	socket = "/run/haproxy/admin.sock"
//
// An applier registers itself from its package's init function, as
// backends do: appliers.Register("haproxy-runtime", func() appliers.Config
// { return new(Config) }). This package registers "command" and "signal";
// package appliers/haproxy registers "haproxy-runtime".
package appliers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/kvconf/kvconf/internal/registry"
)

// ErrUnsupported is wrapped by the error of an applier that cannot apply a
// change by its nature (a change outside what it handles, no previous
// content to compare with), as opposed to one that failed on the way. Both
// lead to the fallback reload.
var ErrUnsupported = errors.New("appliers: change needs a reload")

// Change is a new content of a resource's dest, checked by check_cmd and
// not yet renamed over dest.
type Change struct {
	// Resource names the resource, for messages.
	Resource string
	// Dest is the resource's dest.
	Dest string
	// Stage is the stage file that holds New and becomes dest.
	Stage string
	// Old is dest's content before the change; nil when dest did not exist.
	Old []byte
	// New is the new content. Appliers must not change Old or New.
	New []byte
}

// Env is what the resource pipeline lends an applier.
type Env struct {
	// Run runs a shell command the way hooks run (timeout, process group,
	// grace period), with {{.src}} and {{.dest}} both dest.
	Run func(ctx context.Context, name, cmd string) error
	// Signal sends a signal to the service, when kvconf supervises it
	// (exec mode); nil otherwise.
	Signal func(os.Signal) error
	// Logger receives the applier's messages; never nil.
	Logger *slog.Logger
}

// Applier brings a running service up to date with a [Change].
type Applier interface {
	// Apply applies c. A nil error means the service now runs with
	// c.New and no reload is needed. Any error makes the resource take
	// its fallback, reload_cmd; an error wrapping [ErrUnsupported] says
	// that the change is not one the applier handles. Apply must not
	// write dest: the resource renames the stage file afterwards, in both
	// cases. Apply is called with ctx bounded by the resource's timeout.
	Apply(ctx context.Context, c Change, env Env) error
}

// Config holds an applier's options, decoded from the [template.apply]
// table (every key but type), and makes the applier.
type Config interface {
	// New returns the applier the options describe.
	New() (Applier, error)
}

// Validator is implemented by configs that check their options at load.
type Validator interface {
	// Validate reports the first problem with the options, if any, as an
	// [*OptionError] when one key is at fault.
	Validate() error
}

// OptionError reports a bad value of one option of an applier.
type OptionError struct {
	// Key is the option's key, such as "socket".
	Key string
	// Err is the problem.
	Err error
}

func (e *OptionError) Error() string { return e.Key + ": " + e.Err.Error() }

// Unwrap returns Err.
func (e *OptionError) Unwrap() error { return e.Err }

// factories holds the registered appliers' Config factories.
var factories = registry.New[func() Config]("appliers")

// Register makes an applier available under name. It is meant to be
// called from the init function of the applier's package, and panics if
// name is empty, newConfig is nil or name is already registered.
func Register(name string, newConfig func() Config) {
	factories.Register(name, newConfig, newConfig == nil)
}

// Names returns the names of the registered appliers, sorted.
func Names() []string { return factories.Names() }

// NewConfig returns a fresh, default Config for the named applier.
func NewConfig(name string) (Config, error) {
	newConfig, ok := factories.Lookup(name)
	if !ok {
		return nil, fmt.Errorf("unknown applier %q (known: %s)", name, strings.Join(Names(), ", "))
	}
	return newConfig(), nil
}
