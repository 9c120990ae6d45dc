package resource

import (
	"context"
	"io"
	"time"

	"github.com/kvconf/kvconf/funcs"
)

// EventKind says what an [Event] reports.
type EventKind int

// The events of a resource, in the order of the steps of [Resource.Apply].
// An attempt to bring dest up to date sends EventRendered, then either
// EventUnchanged or (after EventCheck, when there is a check_cmd)
// EventWritten (preceded, with an applier, by EventApplied, or by
// EventApplyFallback), EventReload and maybe EventRolledBack, and ends with
// EventDone. An attempt that fails stops sending at the failed step and
// still ends with EventDone, whose Err is the attempt's error.
const (
	// EventRendered: the template was executed; Duration is how long it
	// took and Err, when not nil, is the template's error.
	EventRendered EventKind = iota + 1
	// EventUnchanged: dest already held the output, so nothing was
	// written.
	EventUnchanged
	// EventCheck: check_cmd ran on the stage file; Duration is how long it
	// ran and Err, when not nil, is its [*HookError].
	EventCheck
	// EventWritten: the stage file replaced dest.
	EventWritten
	// EventReload: reload_cmd ran; Duration is how long it ran and Err,
	// when not nil, is its [*HookError].
	EventReload
	// EventRolledBack: reload_cmd failed and dest's previous state was
	// restored.
	EventRolledBack
	// EventDone: an attempt to bring dest up to date ended; Err is its
	// error, nil when dest is up to date.
	EventDone
	// EventApplied: the resource's applier ([template.apply]) brought the
	// service up to date without reload_cmd; Duration is how long it
	// took. Sent before EventWritten.
	EventApplied
	// EventApplyFallback: the resource's applier could not apply the
	// change; Err says why, and reload_cmd (EventReload) follows.
	EventApplyFallback
)

// String returns the event's name, such as "rendered".
func (k EventKind) String() string {
	switch k {
	case EventRendered:
		return "rendered"
	case EventUnchanged:
		return "unchanged"
	case EventCheck:
		return "check"
	case EventWritten:
		return "written"
	case EventReload:
		return "reload"
	case EventRolledBack:
		return "rolled back"
	case EventDone:
		return "done"
	case EventApplied:
		return "applied"
	case EventApplyFallback:
		return "apply fallback"
	}
	return "unknown"
}

// Event is one step of a resource's pipeline, as an observer sees
// it. It never holds rendered content or KV values.
type Event struct {
	// Kind is what happened.
	Kind EventKind
	// Resource is the resource's [Resource.Name].
	Resource string
	// Dest is the resource's dest.
	Dest string
	// Duration is how long the step took, for EventRendered, EventCheck
	// and EventReload.
	Duration time.Duration
	// Err is the step's error, or nil.
	Err error
}

// Observer receives the [Event]s of the resources loaded
// with it in [Options.Observer]: metrics and readiness tracking hang off
// it. ObserveResource is called from the goroutine that applies the
// resource, concurrently for different resources, so it must be safe for
// concurrent use and return promptly; it cannot change what happens.
type Observer interface {
	ObserveResource(Event)
}

// BackendEventKind says what a [BackendEvent] reports.
type BackendEventKind int

// The events of the backend of a [Run].
const (
	// BackendSnapshot: a full read of the prefixes succeeded; Rev is its
	// revision.
	BackendSnapshot BackendEventKind = iota + 1
	// BackendUpdate: a watch returned an update; Rev is the revision now
	// seen.
	BackendUpdate
	// BackendError: a read or a watch failed; Err is why.
	BackendError
	// BackendDown: the backend started failing (after an answer, or
	// before the first).
	BackendDown
	// BackendUp: the backend answered again after BackendDown.
	BackendUp
)

// String returns the event's name, such as "snapshot".
func (k BackendEventKind) String() string {
	switch k {
	case BackendSnapshot:
		return "snapshot"
	case BackendUpdate:
		return "update"
	case BackendError:
		return "error"
	case BackendDown:
		return "down"
	case BackendUp:
		return "up"
	}
	return "unknown"
}

// BackendEvent is one thing the backend of a [Run] did.
type BackendEvent struct {
	// Kind is what happened.
	Kind BackendEventKind
	// Rev is the revision last seen.
	Rev uint64
	// Err is the failure, for BackendError and BackendDown.
	Err error
}

// BackendObserver receives the [BackendEvent]s of one [Run], given in
// [RunOptions.Observer]; one Run has one backend, so the observer knows
// which backend it watches. It is called from the Run's backend loop and
// must return promptly; it cannot change what happens.
type BackendObserver interface {
	ObserveBackend(BackendEvent)
}

// observe sends an event about r to its observer, if it has one.
func (r *Resource) observe(k EventKind, d time.Duration, err error) {
	if o := r.opts.Observer; o != nil {
		o.ObserveResource(Event{Kind: k, Resource: r.Name, Dest: r.dest, Duration: d, Err: err})
	}
}

// render executes the template on s into w and sends EventRendered.
func (r *Resource) render(ctx context.Context, w io.Writer, s *funcs.Store) error {
	if r.opts.Observer == nil {
		return r.tmpl.Render(ctx, w, s)
	}
	start := time.Now()
	err := r.tmpl.Render(ctx, w, s)
	r.observe(EventRendered, time.Since(start), err)
	return err
}

// hook runs a hook with [Resource.runHook] and sends its event: EventCheck
// for check_cmd, EventReload for reload_cmd.
func (r *Resource) hook(ctx context.Context, hook, command string) error {
	if r.opts.Observer == nil {
		return r.runHook(ctx, hook, command)
	}
	start := time.Now()
	err := r.runHook(ctx, hook, command)
	k := EventReload
	if hook == "check_cmd" {
		k = EventCheck
	}
	r.observe(k, time.Since(start), err)
	return err
}

// observe sends an event about the backend to the Run's observer, if it
// has one.
func (d *daemon) observe(k BackendEventKind, err error) {
	if o := d.opts.Observer; o != nil {
		o.ObserveBackend(BackendEvent{Kind: k, Rev: d.rev, Err: err})
	}
}
