// Package metrics turns the events of kvconf's resources and backends
// ([resource.Event], [resource.BackendEvent]) into Prometheus
// metrics, with github.com/prometheus/client_golang, and into the
// readiness [Status] that /ready serves.
//
// Every metric is named kvconf_*; counters end in _total and durations
// in _seconds. Resource metrics carry the label resource (the resource's
// file, such as "conf.d/haproxy.toml"); backend metrics the label backend
// (the backend's name, such as "etcd" or "meta (consul)"). The registry
// also holds the standard Go and process collectors.
package metrics

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/resource"
)

// Metrics is kvconf's metrics registry and the observer that feeds it.
// It implements [resource.Observer]; [Metrics.Backend] returns the
// observer of one backend. It is safe for concurrent use.
type Metrics struct {
	reg    *prometheus.Registry
	status *Status

	renders        *prometheus.CounterVec
	renderErrors   *prometheus.CounterVec
	unchanged      *prometheus.CounterVec
	writes         *prometheus.CounterVec
	checks         *prometheus.CounterVec
	checkFailures  *prometheus.CounterVec
	reloads        *prometheus.CounterVec
	reloadFailures *prometheus.CounterVec
	rollbacks      *prometheus.CounterVec
	failures       *prometheus.CounterVec
	lastSuccess    *prometheus.GaugeVec
	lastFailure    *prometheus.GaugeVec
	renderSeconds  *prometheus.HistogramVec
	hookSeconds    *prometheus.HistogramVec
	applies        *prometheus.CounterVec // by resource and path: runtime or reload

	up         *prometheus.GaugeVec
	snapshots  *prometheus.CounterVec
	updates    *prometheus.CounterVec
	errs       *prometheus.CounterVec
	revision   *prometheus.GaugeVec
	lastUpdate *prometheus.GaugeVec
	refused    *refusedCollector
	age        *ageCollector
	now        func() time.Time
	series     sync.Map // resource name → *resourceSeries
}

// resourceSeries are the series of one resource, looked up once rather
// than by label at each event.
type resourceSeries struct {
	renders, renderErrors, unchanged, writes, checks, checkFailures,
	reloads, reloadFailures, rollbacks, failures prometheus.Counter
	lastSuccess, lastFailure prometheus.Gauge
	renderSeconds            prometheus.Observer
	// The hook durations are looked up at each hook, rare and slow
	// anyway, so that a resource without hooks has no hook series.
}

// New returns a registry with kvconf's metrics, the Go and process
// collectors, and a [Status] fed by the same events.
func New() *Metrics {
	const ns = "kvconf"
	res := []string{"resource"}
	be := []string{"backend"}
	counter := func(name, help string, labels []string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: name, Help: help}, labels)
	}
	gauge := func(name, help string, labels []string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: name, Help: help}, labels)
	}
	m := &Metrics{
		reg:    prometheus.NewRegistry(),
		status: NewStatus(),
		now:    time.Now,

		renders:        counter("resource_renders_total", "Template executions of the resource, failed or not.", res),
		renderErrors:   counter("resource_render_errors_total", "Template executions of the resource that failed.", res),
		unchanged:      counter("resource_unchanged_total", "Renders whose output dest already held: nothing was written.", res),
		writes:         counter("resource_writes_total", "Times dest was replaced with a new output.", res),
		checks:         counter("resource_checks_total", "Runs of the resource's check_cmd.", res),
		checkFailures:  counter("resource_check_failures_total", "Runs of check_cmd that rejected the output.", res),
		reloads:        counter("resource_reloads_total", "Runs of the resource's reload_cmd.", res),
		reloadFailures: counter("resource_reload_failures_total", "Runs of reload_cmd that failed.", res),
		rollbacks:      counter("resource_rollbacks_total", "Times dest was restored after reload_cmd failed.", res),
		applies: counter("resource_applies_total", "Changes given to the resource's applier ([template.apply]), by path: "+
			"runtime (applied without reload_cmd) or reload (the applier could not; reload_cmd followed).", []string{"resource", "path"}),
		failures:    counter("resource_failures_total", "Attempts to bring dest up to date that failed.", res),
		lastSuccess: gauge("resource_last_success_timestamp_seconds", "Unix time dest was last brought up to date (0: never).", res),
		lastFailure: gauge("resource_last_failure_timestamp_seconds", "Unix time of the last failed attempt (0: never).", res),
		renderSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Name: "resource_render_duration_seconds",
			Help:    "Time to execute the resource's template.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10), // 100µs to 26s
		}, res),
		hookSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Name: "resource_hook_duration_seconds",
			Help:    "Run time of the resource's check_cmd and reload_cmd.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10), // 1ms to 262s
		}, []string{"resource", "hook"}),

		up:         gauge("backend_up", "1 when the backend's last read or watch succeeded, else 0.", be),
		snapshots:  counter("backend_snapshots_total", "Full reads of the backend's prefixes.", be),
		updates:    counter("backend_watch_updates_total", "Updates returned by the backend's watch.", be),
		errs:       counter("backend_errors_total", "Failed reads and watches of the backend.", be),
		revision:   gauge("backend_revision", "Revision or index of the backend last seen.", be),
		lastUpdate: gauge("backend_last_update_timestamp_seconds", "Unix time the backend last answered with data (0: never).", be),
		refused: &refusedCollector{
			desc: prometheus.NewDesc(ns+"_backend_refused_total",
				"Requests the backend's server refused over a limit of its own, such as a Consul agent's "+
					"limits.http_max_conns_per_client (HTTP 429); kvconf retried them with backoff.", be, nil),
			by: map[string]backends.Refuser{},
		},
		age: &ageCollector{
			desc: prometheus.NewDesc(ns+"_backend_seconds_since_update",
				"Seconds since the backend last answered with data (absent before its first answer).", be, nil),
			last: map[string]time.Time{},
			now:  time.Now,
		},
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.renders, m.renderErrors, m.unchanged, m.writes, m.checks, m.checkFailures,
		m.reloads, m.reloadFailures, m.rollbacks, m.failures, m.lastSuccess, m.lastFailure,
		m.renderSeconds, m.hookSeconds, m.applies,
		m.up, m.snapshots, m.updates, m.errs, m.revision, m.lastUpdate, m.age, m.refused,
	)
	return m
}

// Registry returns the registry to serve, with [promhttp.HandlerFor].
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Status returns the readiness fed by the same events.
func (m *Metrics) Status() *Status { return m.status }

// Expect declares the resources and backends of a run, such as after a
// reload: their series start at zero, so that a scrape before the first
// event already shows them, and [Status] waits for them. Series of
// resources that are gone are removed.
func (m *Metrics) Expect(rs []Resource, backends []string) {
	next := make(map[string]bool, len(rs))
	for _, r := range rs {
		next[r.Name] = true
		m.resource(r.Name)
	}
	m.series.Range(func(k, _ any) bool {
		if n := k.(string); !next[n] {
			m.deleteResource(n)
		}
		return true
	})
	for _, b := range backends {
		m.up.WithLabelValues(b)
		m.snapshots.WithLabelValues(b)
		m.updates.WithLabelValues(b)
		m.errs.WithLabelValues(b)
		m.revision.WithLabelValues(b)
		m.lastUpdate.WithLabelValues(b)
	}
	m.status.Expect(rs, backends)
}

// resource returns the series of the resource called name, creating
// them (at zero) on first use.
func (m *Metrics) resource(name string) *resourceSeries {
	if s, ok := m.series.Load(name); ok {
		return s.(*resourceSeries)
	}
	s := &resourceSeries{
		renders:        m.renders.WithLabelValues(name),
		renderErrors:   m.renderErrors.WithLabelValues(name),
		unchanged:      m.unchanged.WithLabelValues(name),
		writes:         m.writes.WithLabelValues(name),
		checks:         m.checks.WithLabelValues(name),
		checkFailures:  m.checkFailures.WithLabelValues(name),
		reloads:        m.reloads.WithLabelValues(name),
		reloadFailures: m.reloadFailures.WithLabelValues(name),
		rollbacks:      m.rollbacks.WithLabelValues(name),
		failures:       m.failures.WithLabelValues(name),
		lastSuccess:    m.lastSuccess.WithLabelValues(name),
		lastFailure:    m.lastFailure.WithLabelValues(name),
		renderSeconds:  m.renderSeconds.WithLabelValues(name),
	}
	got, _ := m.series.LoadOrStore(name, s)
	return got.(*resourceSeries)
}

// deleteResource removes every series of the resource called name.
func (m *Metrics) deleteResource(name string) {
	m.series.Delete(name)
	l := prometheus.Labels{"resource": name}
	for _, c := range []*prometheus.CounterVec{m.renders, m.renderErrors, m.unchanged, m.writes, m.checks,
		m.checkFailures, m.reloads, m.reloadFailures, m.rollbacks, m.failures} {
		c.Delete(l)
	}
	m.lastSuccess.Delete(l)
	m.lastFailure.Delete(l)
	m.renderSeconds.Delete(l)
	m.hookSeconds.DeletePartialMatch(l)
	m.applies.DeletePartialMatch(l)
}

// ObserveResource implements [resource.Observer].
func (m *Metrics) ObserveResource(e resource.Event) {
	s := m.resource(e.Resource)
	switch e.Kind {
	case resource.EventRendered:
		s.renders.Inc()
		s.renderSeconds.Observe(e.Duration.Seconds())
		if e.Err != nil {
			s.renderErrors.Inc()
		}
	case resource.EventUnchanged:
		s.unchanged.Inc()
	case resource.EventCheck:
		s.checks.Inc()
		m.hookSeconds.WithLabelValues(e.Resource, "check_cmd").Observe(e.Duration.Seconds())
		if e.Err != nil {
			s.checkFailures.Inc()
		}
	case resource.EventWritten:
		s.writes.Inc()
	case resource.EventReload:
		s.reloads.Inc()
		m.hookSeconds.WithLabelValues(e.Resource, "reload_cmd").Observe(e.Duration.Seconds())
		if e.Err != nil {
			s.reloadFailures.Inc()
		}
	case resource.EventRolledBack:
		s.rollbacks.Inc()
	case resource.EventApplied:
		m.applies.WithLabelValues(e.Resource, "runtime").Inc()
	case resource.EventApplyFallback:
		m.applies.WithLabelValues(e.Resource, "reload").Inc()
	case resource.EventDone:
		if errors.Is(e.Err, context.Canceled) {
			return // cut short by kvconf stopping
		}
		now := m.now()
		m.status.done(e, now)
		unix := float64(now.UnixNano()) / 1e9
		if e.Err == nil {
			s.lastSuccess.Set(unix)
			return
		}
		s.failures.Inc()
		s.lastFailure.Set(unix)
	}
}

// Backend returns the observer of the named backend, for
// [resource.RunOptions.Observer].
func (m *Metrics) Backend(name string) resource.BackendObserver {
	return &backendMetrics{
		m:      m,
		status: m.status.Backend(name),
		name:   name,
		up:     m.up.WithLabelValues(name),
		snaps:  m.snapshots.WithLabelValues(name),
		upds:   m.updates.WithLabelValues(name),
		errs:   m.errs.WithLabelValues(name),
		rev:    m.revision.WithLabelValues(name),
		last:   m.lastUpdate.WithLabelValues(name),
	}
}

// backendMetrics is the observer of one backend, with its series looked
// up once.
type backendMetrics struct {
	m                 *Metrics
	status            resource.BackendObserver
	name              string
	up, rev, last     prometheus.Gauge
	snaps, upds, errs prometheus.Counter
}

func (b *backendMetrics) ObserveBackend(e resource.BackendEvent) {
	b.status.ObserveBackend(e)
	switch e.Kind {
	case resource.BackendSnapshot, resource.BackendUpdate:
		if e.Kind == resource.BackendSnapshot {
			b.snaps.Inc()
		} else {
			b.upds.Inc()
		}
		now := b.m.now()
		b.up.Set(1)
		b.rev.Set(float64(e.Rev))
		b.last.Set(float64(now.UnixNano()) / 1e9)
		b.m.age.set(b.name, now)
	case resource.BackendUp:
		b.up.Set(1)
	case resource.BackendError:
		b.errs.Inc()
		b.up.Set(0)
	case resource.BackendDown:
		b.up.Set(0)
	}
}

// Refusals makes the backend called name export the refusals of its
// server, when b counts them (see [backends.Refuser]); b replaces the
// backend's earlier one, such as after a reload.
func (m *Metrics) Refusals(name string, b backends.Backend) {
	r, ok := b.(backends.Refuser)
	if !ok {
		return
	}
	m.refused.mu.Lock()
	m.refused.by[name] = r
	m.refused.mu.Unlock()
}

// refusedCollector exports, at each scrape, the refusals of each backend
// that counts them.
type refusedCollector struct {
	desc *prometheus.Desc
	mu   sync.Mutex
	by   map[string]backends.Refuser
}

// Describe implements [prometheus.Collector].
func (r *refusedCollector) Describe(ch chan<- *prometheus.Desc) { ch <- r.desc }

// Collect implements [prometheus.Collector].
func (r *refusedCollector) Collect(ch chan<- prometheus.Metric) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for name, b := range r.by {
		ch <- prometheus.MustNewConstMetric(r.desc, prometheus.CounterValue, float64(b.Refused()), name)
	}
}

// ageCollector exports, at each scrape, the seconds since each backend
// last answered.
type ageCollector struct {
	desc *prometheus.Desc
	now  func() time.Time
	mu   sync.Mutex
	last map[string]time.Time
}

func (a *ageCollector) set(backend string, t time.Time) {
	a.mu.Lock()
	a.last[backend] = t
	a.mu.Unlock()
}

// Describe implements [prometheus.Collector].
func (a *ageCollector) Describe(ch chan<- *prometheus.Desc) { ch <- a.desc }

// Collect implements [prometheus.Collector].
func (a *ageCollector) Collect(ch chan<- prometheus.Metric) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	for b, t := range a.last {
		ch <- prometheus.MustNewConstMetric(a.desc, prometheus.GaugeValue, now.Sub(t).Seconds(), b)
	}
}
