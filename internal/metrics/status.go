package metrics

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/kvconf/kvconf/resource"
)

// Status tracks, from the events of the resources and backends, whether
// kvconf is ready: every expected resource was brought up to date at
// least once (rendered, or found up to date) and every expected backend
// answered at least once. It also knows whether the loops run (health)
// and whether every resource has had a first attempt. It is safe for
// concurrent use.
type Status struct {
	mu        sync.Mutex
	resources map[string]*resourceState
	backends  map[string]*backendState
	running   bool
	attempted chan struct{} // closed once every expected resource had an attempt
	now       func() time.Time
}

type resourceState struct {
	dest        string
	expected    bool // during Expect
	attempted   bool
	lastSuccess time.Time
	lastFailure time.Time
	lastError   string
}

type backendState struct {
	expected   bool // during Expect
	answered   bool
	up         bool
	rev        uint64
	lastUpdate time.Time
	lastError  string
}

// NewStatus returns a Status that expects nothing yet: it is ready, but
// not running.
func NewStatus() *Status {
	return &Status{
		resources: map[string]*resourceState{},
		backends:  map[string]*backendState{},
		attempted: make(chan struct{}),
		now:       time.Now,
	}
}

// Resource names a resource that Status expects, with its dest.
type Resource struct {
	// Name is the resource's [resource.Resource.Name], its file.
	Name string
	// Dest is its dest.
	Dest string
}

// Expect sets the resources and backends that must have succeeded once
// for kvconf to be ready, such as after a reload of conf.d: what Status
// knew of the ones that stay is kept, the others are forgotten.
func (s *Status) Expect(rs []Resource, backends []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range s.resources {
		st.expected = false
	}
	for _, r := range rs {
		st := s.resources[r.Name]
		if st == nil {
			st = &resourceState{}
			s.resources[r.Name] = st
		}
		st.dest, st.expected = r.Dest, true
	}
	for n, st := range s.resources {
		if !st.expected {
			delete(s.resources, n)
		}
	}
	for _, st := range s.backends {
		st.expected = false
	}
	for _, b := range backends {
		st := s.backends[b]
		if st == nil {
			st = &backendState{}
			s.backends[b] = st
		}
		st.expected = true
	}
	for n, st := range s.backends {
		if !st.expected {
			delete(s.backends, n)
		}
	}
	s.checkAttempted()
}

// SetRunning records whether the loops that keep the resources up to date
// are running.
func (s *Status) SetRunning(on bool) {
	s.mu.Lock()
	s.running = on
	s.mu.Unlock()
}

// Running reports whether the loops run.
func (s *Status) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running
}

// Attempted is closed once every expected resource has had a first
// attempt, successful or not (systemd's READY=1 waits for it).
func (s *Status) Attempted() <-chan struct{} { return s.attempted }

// ObserveResource implements [resource.Observer]: EventDone
// records a success or a failure (an attempt cut short by kvconf
// stopping records nothing).
func (s *Status) ObserveResource(e resource.Event) {
	if e.Kind != resource.EventDone || errors.Is(e.Err, context.Canceled) {
		return
	}
	s.done(e, s.now())
}

// done records the EventDone e, observed at now.
func (s *Status) done(e resource.Event, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.resources[e.Resource]
	if st == nil {
		return // not expected: of a set replaced by a reload
	}
	if e.Err == nil {
		st.lastSuccess = now
		st.lastError = ""
	} else {
		st.lastFailure = now
		st.lastError = e.Err.Error()
	}
	if !st.attempted {
		st.attempted = true
		s.checkAttempted()
	}
}

// checkAttempted closes attempted when every expected resource had an
// attempt. s.mu is held.
func (s *Status) checkAttempted() {
	select {
	case <-s.attempted:
		return
	default:
	}
	for _, st := range s.resources {
		if st.expected && !st.attempted {
			return
		}
	}
	close(s.attempted)
}

// Backend returns the observer of the named backend's events.
func (s *Status) Backend(name string) resource.BackendObserver {
	return backendStatus{s: s, name: name}
}

type backendStatus struct {
	s    *Status
	name string
}

func (b backendStatus) ObserveBackend(e resource.BackendEvent) {
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	st := b.s.backends[b.name]
	if st == nil {
		return // not expected
	}
	switch e.Kind {
	case resource.BackendSnapshot, resource.BackendUpdate, resource.BackendUp:
		st.answered, st.up, st.rev = true, true, e.Rev
		st.lastUpdate = b.s.now()
		st.lastError = ""
	case resource.BackendError, resource.BackendDown:
		st.up = false
		if e.Err != nil {
			st.lastError = e.Err.Error()
		}
	}
}

// Report is the state of kvconf as /ready and /health show it.
type Report struct {
	// Ready: every resource succeeded once and every backend answered.
	Ready bool `json:"ready"`
	// Running: the loops run.
	Running bool `json:"running"`
	// NotReady names what keeps kvconf from being ready.
	NotReady []string `json:"not_ready,omitempty"`
	// Resources are the expected resources, by name; only in verbose
	// reports.
	Resources []ResourceReport `json:"resources,omitempty"`
	// Backends are the expected backends, by name; only in verbose
	// reports.
	Backends []BackendReport `json:"backends,omitempty"`
}

// ResourceReport is one resource in a [Report].
type ResourceReport struct {
	// File is the resource's name, its file.
	File string `json:"file"`
	// Dest is its dest.
	Dest string `json:"dest"`
	// Ready: it was brought up to date at least once.
	Ready bool `json:"ready"`
	// LastSuccess is when it was last brought up to date.
	LastSuccess *time.Time `json:"last_success"`
	// LastFailure is when its last failure happened.
	LastFailure *time.Time `json:"last_failure"`
	// LastError is the error of the last attempt, if it failed.
	LastError string `json:"last_error"`
}

// BackendReport is one backend in a [Report].
type BackendReport struct {
	// Name is how kvconf names the backend.
	Name string `json:"name"`
	// Answered: it answered at least once.
	Answered bool `json:"answered"`
	// Up: its last read or watch succeeded.
	Up bool `json:"up"`
	// Revision is the revision or index last seen.
	Revision uint64 `json:"revision"`
	// LastUpdate is when it last answered.
	LastUpdate *time.Time `json:"last_update"`
	// LastError is its last error, while it is down.
	LastError string `json:"last_error"`
}

// Report returns the current state; verbose adds every resource and
// backend.
func (s *Status) Report(verbose bool) Report {
	s.mu.Lock()
	defer s.mu.Unlock()
	rep := Report{Ready: true, Running: s.running}
	for _, n := range sortedKeys(s.backends) {
		st := s.backends[n]
		if !st.answered {
			rep.Ready = false
			rep.NotReady = append(rep.NotReady, "backend "+n+": no answer yet")
		}
		if verbose {
			rep.Backends = append(rep.Backends, BackendReport{
				Name: n, Answered: st.answered, Up: st.up, Revision: st.rev,
				LastUpdate: timePtr(st.lastUpdate), LastError: st.lastError,
			})
		}
	}
	for _, n := range sortedKeys(s.resources) {
		st := s.resources[n]
		ok := !st.lastSuccess.IsZero()
		if !ok {
			rep.Ready = false
			why := "resource " + n + ": not rendered yet"
			if st.lastError != "" {
				why = "resource " + n + ": failing"
			}
			rep.NotReady = append(rep.NotReady, why)
		}
		if verbose {
			rep.Resources = append(rep.Resources, ResourceReport{
				File: n, Dest: st.dest, Ready: ok,
				LastSuccess: timePtr(st.lastSuccess), LastFailure: timePtr(st.lastFailure), LastError: st.lastError,
			})
		}
	}
	return rep
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
