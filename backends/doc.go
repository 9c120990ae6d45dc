// Package backends defines the contract between kvconf and its data sources,
// and the registry through which data sources plug in.
//
// A backend is opened from a [Config], itself made by the factory that the
// backend's package gave to [Register] from its init function. The core
// decodes the backend's options (from flags, environment, the config file or
// a [backends.NAME] table of the config file) into that Config with [Decode], then calls Open.
//
// # Revisions
//
// Every [Snapshot] carries a revision. A revision only grows while the
// backend stays the same store: a later snapshot has a revision at least as
// high as an earlier one. Backends that read every prefix at one revision
// (etcd) do so; the others report the highest index they saw (Consul) or a
// counter of their own (file, env). A revision of 0 means "unknown"; a
// backend that implements [Watcher] never reports 0, since the core passes
// the last revision back to Watch and 0 there asks for the current one.
//
// # Watching
//
// A backend that can wait for changes also implements [Watcher]. Watch blocks
// until something under the prefixes changed after the given revision, then
// returns an [Update]: either the changed keys (a delta the core applies to
// its store) or a full snapshot (when the backend only knows that something
// changed, or after a compaction or reconnect gap). A call with after == 0
// returns at once with the current revision and no changes. Spurious wake-ups
// are allowed: the core renders again and writes nothing when the output is
// unchanged. A backend without a native watch does not implement Watcher and
// the core polls it instead.
//
// # Listing
//
// A backend that reads keys in order, as etcd returns its ranges sorted by
// key, may also implement [Lister]: List returns what Snapshot would, as
// a [List] of pairs sorted by key. The core keeps its store sorted, so
// from a List it builds the store without a map or a sort, which counts
// with 100,000 keys. It asks for a List when the backend has one, and for
// a Snapshot otherwise.
//
// # Concurrency, context and Close
//
// Backend methods are safe for concurrent use. Every blocking method takes a
// context as its first argument and returns promptly, with an error wrapping
// ctx.Err(), once the context is done. Close releases the backend's resources;
// it is idempotent, and calls made after it return [ErrClosed].
package backends
