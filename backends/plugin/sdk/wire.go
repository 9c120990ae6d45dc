// Package sdk is the kvconf-backend protocol in one place: its wire types,
// shared by kvconf (package plugin, the host side) and by plugins, and
// [Serve], which runs a plugin around a backend written in Go:
//
//	func main() { sdk.Serve(myBackend) }
//
// Serve greets kvconf, decodes the options of the configure request, answers
// snapshot and watch requests from the backend's methods (several at once,
// each with its own context), cancels a watch on a cancel request, and
// returns once kvconf closes the plugin's stdin. docs/plugins.md describes
// the protocol for plugins written in other languages.
package sdk

// Protocol and Version name the protocol; a plugin greets with them, and
// kvconf refuses any other protocol or version.
const (
	Protocol = "kvconf-backend"
	Version  = 1
)

// The methods of a [Request].
const (
	MethodConfigure = "configure"
	MethodSnapshot  = "snapshot"
	MethodWatch     = "watch"
	MethodCancel    = "cancel"
)

// The error messages of a [Response] that kvconf understands: Unsupported
// for a method the plugin does not offer (kvconf then reports
// errors.ErrUnsupported), Canceled for a request ended by a cancel
// request.
const (
	Unsupported = "unsupported"
	Canceled    = "canceled"
)

// Greeting is the first line a plugin writes. Protocol and Version are
// required; the other fields are optional and describe the plugin for
// "kvconf plugins" and for the options of -backend NAME.
type Greeting struct {
	// Protocol is [Protocol].
	Protocol string `json:"protocol"`
	// Version is [Version].
	Version int `json:"version"`
	// Description is a one-line description of the backend.
	Description string `json:"description,omitempty"`
	// Options lists the options the plugin takes, by their keys. When the
	// list is not empty, kvconf refuses an option that is not in it
	// before starting the plugin for -backend NAME.
	Options []Option `json:"options,omitempty"`
}

// Option declares one option a plugin takes.
type Option struct {
	// Key is the option's key in the configure request. kvconf's generic
	// flags set the keys of kvconf's backends: -node sets "nodes" (a
	// comma-separated list), -password "password", -username "username",
	// -separator "separator", -table "table", -client-cert "client_cert",
	// and so on.
	Key string `json:"key"`
	// Usage is a one-line help of the option.
	Usage string `json:"usage,omitempty"`
}

// Request is one line kvconf writes to a plugin.
type Request struct {
	// ID identifies the request; its response repeats it.
	ID uint64 `json:"id"`
	// Method is one of the Method constants.
	Method string `json:"method"`
	// Prefixes are the key prefixes of a snapshot or a watch.
	Prefixes []string `json:"prefixes,omitempty"`
	// After is the revision a watch waits to pass; 0 asks for the
	// current revision at once.
	After uint64 `json:"after,omitempty"`
	// Target is the ID of the request a cancel request ends.
	Target uint64 `json:"target,omitempty"`
	// Options are the options of a configure request, by key.
	Options map[string]string `json:"options,omitempty"`
}

// Change is one key that a watch reports as set or deleted.
type Change struct {
	// Key is the full key.
	Key string `json:"key"`
	// Value is the new value; empty when Deleted is set.
	Value string `json:"value"`
	// Deleted reports that the key was removed.
	Deleted bool `json:"deleted"`
}

// Response is one line a plugin writes, the answer to the request of the
// same ID. A non-empty Error makes it an error answer; otherwise a snapshot
// sets Rev and KVs, a watch sets Rev and either Changes or Full, and a
// configure sets nothing else.
type Response struct {
	// ID is the request's ID.
	ID uint64 `json:"id"`
	// Rev is the revision of the answer, 1 or more.
	Rev uint64 `json:"rev,omitempty"`
	// KVs are the keys of a snapshot.
	KVs map[string]string `json:"kvs,omitempty"`
	// Changes are the changes of a watch after its revision.
	Changes []Change `json:"changes,omitempty"`
	// Full, when not null, is the whole content under a watch's
	// prefixes, replacing what kvconf knew (an empty object is a
	// snapshot without keys, hence no omitempty).
	Full map[string]string `json:"full"`
	// Error is the error message of a failed request: [Unsupported],
	// [Canceled] or any other text.
	Error string `json:"error,omitempty"`
}
