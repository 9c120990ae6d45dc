package metrics

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/resource"
)

// feed sends the events of one successful update of a, a failed check of
// b, a failed reload (rolled back) of c, and a backend's snapshot, update
// and outage.
func feed(m *Metrics) {
	ev := func(k resource.EventKind, name string, d time.Duration, err error) {
		m.ObserveResource(resource.Event{Kind: k, Resource: name, Dest: "/out/" + name, Duration: d, Err: err})
	}
	failure := errors.New("exit status 1")
	ev(resource.EventRendered, "a", time.Millisecond, nil)
	ev(resource.EventCheck, "a", 20*time.Millisecond, nil)
	ev(resource.EventWritten, "a", 0, nil)
	ev(resource.EventReload, "a", 30*time.Millisecond, nil)
	ev(resource.EventDone, "a", 0, nil)
	ev(resource.EventRendered, "a", time.Millisecond, nil)
	ev(resource.EventUnchanged, "a", 0, nil)
	ev(resource.EventDone, "a", 0, nil)

	ev(resource.EventRendered, "b", time.Millisecond, nil)
	ev(resource.EventCheck, "b", 5*time.Millisecond, failure)
	ev(resource.EventDone, "b", 0, failure)

	ev(resource.EventRendered, "c", time.Millisecond, nil)
	ev(resource.EventWritten, "c", 0, nil)
	ev(resource.EventReload, "c", time.Millisecond, failure)
	ev(resource.EventRolledBack, "c", 0, nil)
	ev(resource.EventDone, "c", 0, failure)
	ev(resource.EventRendered, "c", time.Millisecond, errors.New("template: x"))
	ev(resource.EventDone, "c", 0, failure)

	be := m.Backend("etcd")
	be.ObserveBackend(resource.BackendEvent{Kind: resource.BackendSnapshot, Rev: 7})
	be.ObserveBackend(resource.BackendEvent{Kind: resource.BackendUpdate, Rev: 9})
	be.ObserveBackend(resource.BackendEvent{Kind: resource.BackendUpdate, Rev: 12})
	be.ObserveBackend(resource.BackendEvent{Kind: resource.BackendError, Rev: 12, Err: failure})
	be.ObserveBackend(resource.BackendEvent{Kind: resource.BackendDown, Rev: 12, Err: failure})
}

func TestCounters(t *testing.T) {
	t.Parallel()
	m := New()
	m.Expect([]Resource{{"a", "/out/a"}, {"b", "/out/b"}, {"c", "/out/c"}}, []string{"etcd"})
	feed(m)
	tests := []struct {
		metric string
		labels []string
		want   float64
	}{
		{"renders", []string{"a"}, 2},
		{"unchanged", []string{"a"}, 1},
		{"writes", []string{"a"}, 1},
		{"checks", []string{"a"}, 1},
		{"reloads", []string{"a"}, 1},
		{"failures", []string{"a"}, 0},
		{"checkFailures", []string{"b"}, 1},
		{"writes", []string{"b"}, 0},
		{"reloadFailures", []string{"c"}, 1},
		{"rollbacks", []string{"c"}, 1},
		{"renderErrors", []string{"c"}, 1},
		{"failures", []string{"c"}, 2},
		{"snapshots", []string{"etcd"}, 1},
		{"updates", []string{"etcd"}, 2},
		{"errs", []string{"etcd"}, 1},
		{"revision", []string{"etcd"}, 12},
		{"up", []string{"etcd"}, 0},
	}
	get := map[string]func(...string) float64{
		"renders":        func(l ...string) float64 { return testutil.ToFloat64(m.renders.WithLabelValues(l...)) },
		"unchanged":      func(l ...string) float64 { return testutil.ToFloat64(m.unchanged.WithLabelValues(l...)) },
		"writes":         func(l ...string) float64 { return testutil.ToFloat64(m.writes.WithLabelValues(l...)) },
		"checks":         func(l ...string) float64 { return testutil.ToFloat64(m.checks.WithLabelValues(l...)) },
		"reloads":        func(l ...string) float64 { return testutil.ToFloat64(m.reloads.WithLabelValues(l...)) },
		"failures":       func(l ...string) float64 { return testutil.ToFloat64(m.failures.WithLabelValues(l...)) },
		"checkFailures":  func(l ...string) float64 { return testutil.ToFloat64(m.checkFailures.WithLabelValues(l...)) },
		"reloadFailures": func(l ...string) float64 { return testutil.ToFloat64(m.reloadFailures.WithLabelValues(l...)) },
		"rollbacks":      func(l ...string) float64 { return testutil.ToFloat64(m.rollbacks.WithLabelValues(l...)) },
		"renderErrors":   func(l ...string) float64 { return testutil.ToFloat64(m.renderErrors.WithLabelValues(l...)) },
		"snapshots":      func(l ...string) float64 { return testutil.ToFloat64(m.snapshots.WithLabelValues(l...)) },
		"updates":        func(l ...string) float64 { return testutil.ToFloat64(m.updates.WithLabelValues(l...)) },
		"errs":           func(l ...string) float64 { return testutil.ToFloat64(m.errs.WithLabelValues(l...)) },
		"revision":       func(l ...string) float64 { return testutil.ToFloat64(m.revision.WithLabelValues(l...)) },
		"up":             func(l ...string) float64 { return testutil.ToFloat64(m.up.WithLabelValues(l...)) },
	}
	for _, tt := range tests {
		if got := get[tt.metric](tt.labels...); got != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.metric, tt.labels, got, tt.want)
		}
	}
	if s := testutil.ToFloat64(m.lastSuccess.WithLabelValues("a")); s < float64(time.Now().Add(-time.Hour).Unix()) {
		t.Errorf("last success of a = %v, want about now", s)
	}
	if s := testutil.ToFloat64(m.lastSuccess.WithLabelValues("b")); s != 0 {
		t.Errorf("last success of b = %v, want 0 (never)", s)
	}
	if n := testutil.CollectAndCount(m.hookSeconds); n != 4 {
		t.Errorf("hook duration series = %d, want 4 (a check, a reload, b check, c reload)", n)
	}
}

// TestLint lints a full gathering, Go and process collectors included,
// with promlint, the linter of promtool check metrics.
func TestLint(t *testing.T) {
	t.Parallel()
	m := New()
	m.Expect([]Resource{{"a", "/out/a"}, {"b", "/out/b"}, {"c", "/out/c"}}, []string{"etcd"})
	feed(m)
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	all := strings.Join(names, " ")
	for _, want := range []string{"go_goroutines", "process_cpu_seconds_total", "kvconf_backend_seconds_since_update",
		"kvconf_resource_hook_duration_seconds", "kvconf_resource_last_failure_timestamp_seconds"} {
		if !strings.Contains(all, want) {
			t.Errorf("no %s in %s", want, all)
		}
	}
}

// TestExpectDropsGone checks that a reload that removes a resource removes
// its series and its readiness.
func TestExpectDropsGone(t *testing.T) {
	t.Parallel()
	m := New()
	m.Expect([]Resource{{"a", "/out/a"}, {"b", "/out/b"}}, []string{"etcd"})
	m.ObserveResource(resource.Event{Kind: resource.EventRendered, Resource: "b"})
	m.Expect([]Resource{{"a", "/out/a"}}, []string{"etcd"})
	if n := testutil.CollectAndCount(m.renders); n != 1 {
		t.Errorf("render series after b was removed = %d, want 1", n)
	}
	if rep := m.Status().Report(true); len(rep.Resources) != 1 || rep.Resources[0].File != "a" {
		t.Errorf("report after reload = %+v, want only a", rep.Resources)
	}
}

func TestStatus(t *testing.T) {
	t.Parallel()
	s := NewStatus()
	s.Expect([]Resource{{"a", "/out/a"}, {"b", "/out/b"}}, []string{"etcd"})
	rep := s.Report(false)
	if rep.Ready || len(rep.NotReady) != 3 {
		t.Fatalf("report before anything = %+v, want not ready naming 3 things", rep)
	}
	select {
	case <-s.Attempted():
		t.Fatal("attempted before any attempt")
	default:
	}
	s.Backend("etcd").ObserveBackend(resource.BackendEvent{Kind: resource.BackendSnapshot, Rev: 3})
	s.ObserveResource(resource.Event{Kind: resource.EventDone, Resource: "a"})
	s.ObserveResource(resource.Event{Kind: resource.EventDone, Resource: "b", Err: errors.New("check_cmd failed")})
	select {
	case <-s.Attempted():
	default:
		t.Fatal("not attempted after both resources had an attempt")
	}
	rep = s.Report(true)
	if rep.Ready || len(rep.NotReady) != 1 || !strings.Contains(rep.NotReady[0], "b") {
		t.Fatalf("report = %+v, want not ready because of b", rep)
	}
	if rep.Resources[1].LastError != "check_cmd failed" || rep.Resources[1].LastFailure == nil || rep.Resources[0].LastSuccess == nil {
		t.Errorf("verbose resources = %+v", rep.Resources)
	}
	if !rep.Backends[0].Answered || rep.Backends[0].Revision != 3 {
		t.Errorf("verbose backends = %+v", rep.Backends)
	}
	s.ObserveResource(resource.Event{Kind: resource.EventDone, Resource: "b"})
	if rep := s.Report(false); !rep.Ready {
		t.Errorf("report = %+v, want ready", rep)
	}
}

// refuser is a backend that counts refusals, as Consul's does: a stand-in
// for a real backend, since the metrics only read the count.
type refuser struct {
	backends.Backend
	n uint64
}

func (r *refuser) Refused() uint64 { return r.n }

// TestRefusals exports the refusals of a backend that counts them, and
// none for one that does not.
func TestRefusals(t *testing.T) {
	t.Parallel()
	m := New()
	r := &refuser{n: 3}
	m.Refusals("consul", r)
	m.Refusals("etcd", struct{ backends.Backend }{})
	const want = `
# HELP kvconf_backend_refused_total Requests the backend's server refused over a limit of its own, such as a Consul agent's limits.http_max_conns_per_client (HTTP 429); kvconf retried them with backoff.
# TYPE kvconf_backend_refused_total counter
kvconf_backend_refused_total{backend="consul"} 3
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "kvconf_backend_refused_total"); err != nil {
		t.Fatal(err)
	}
	r.n = 5
	m.Refusals("consul", r) // again, as after a reload: one series still
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(strings.Replace(want, "} 3", "} 5", 1)), "kvconf_backend_refused_total"); err != nil {
		t.Fatal(err)
	}
}
