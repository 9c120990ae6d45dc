package resource

import (
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
)

// recorder keeps every event it observes.
type recorder struct {
	mu  sync.Mutex
	res []Event
	be  []BackendEvent
}

func (r *recorder) ObserveResource(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.res = append(r.res, e)
}

func (r *recorder) ObserveBackend(e BackendEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.be = append(r.be, e)
}

// kinds returns the kinds of the events of the named resource, with "!"
// after the failed ones.
func (r *recorder) kinds(name string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.res {
		if e.Resource == name {
			k := e.Kind.String()
			if e.Err != nil {
				k += "!"
			}
			out = append(out, k)
		}
	}
	return out
}

func (r *recorder) backendKinds() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.be {
		out = append(out, e.Kind.String())
	}
	return out
}

// TestEvents runs each step of the pipeline once, through Once, and checks
// the events the observer gets, in order, with their durations.
func TestEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rec := &recorder{}
	e.opts.Observer = rec
	if err := os.WriteFile(e.dest("same"), []byte("v"), 0o644); err != nil {
		t.Fatal(err)
	}
	rs := []*Resource{
		e.resource("ok", `{{getv "/k"}}`, "dest = "+q(e.dest("ok")), `check_cmd = "true"`, `reload_cmd = "true"`),
		e.resource("same", `{{getv "/k"}}`, "dest = "+q(e.dest("same")), `mode = "0644"`),
		e.resource("bad", `{{getv "/missing"}}`, "dest = "+q(e.dest("bad"))),
		e.resource("check", `{{getv "/k"}}`, "dest = "+q(e.dest("check")), `check_cmd = "false"`),
		e.resource("reload", `{{getv "/k"}}`, "dest = "+q(e.dest("reload")), `reload_cmd = "exit 3"`),
	}
	_, b := newBackend(map[string]string{"/k": "v"})
	if err := Once(t.Context(), b, rs); err == nil {
		t.Fatal("Once = nil, want the failures of bad, check and reload")
	}
	want := map[string][]string{
		"ok":     {"rendered", "check", "written", "reload", "done"},
		"same":   {"rendered", "unchanged", "done"},
		"bad":    {"rendered!", "done!"},
		"check":  {"rendered", "check!", "done!"},
		"reload": {"rendered", "written", "reload!", "rolled back", "done!"},
	}
	for _, r := range rs {
		w := want[strings.TrimSuffix(strings.TrimPrefix(r.Name, "conf.d/"), ".toml")]
		if got := rec.kinds(r.Name); !slices.Equal(got, w) {
			t.Errorf("%s: events %v, want %v", r.Name, got, w)
		}
	}
	for _, ev := range rec.res {
		timed := ev.Kind == EventRendered || ev.Kind == EventCheck || ev.Kind == EventReload
		if timed && ev.Duration <= 0 {
			t.Errorf("%s %s: no duration", ev.Resource, ev.Kind)
		}
		if ev.Dest == "" {
			t.Errorf("%s %s: no dest", ev.Resource, ev.Kind)
		}
		var he *HookError
		if ev.Kind == EventCheck && ev.Err != nil && !errors.As(ev.Err, &he) {
			t.Errorf("check event error %v is not a *HookError", ev.Err)
		}
	}
}

// TestRunBackendEvents follows a Run through a snapshot, a watch update,
// an outage and the recovery.
func TestRunBackendEvents(t *testing.T) {
	t.Parallel()
	e := newDaemonEnv(t)
	rec := &recorder{}
	e.opts.Observer = rec
	e.fake.Set("/k", "v1")
	r := e.resource("a", `{{getv "/k"}}`, "dest = "+q(e.dest("a")), `keys = ["/k"]`)
	opts := e.runOptions()
	opts.Observer = rec
	e.start(e.fake, []*Resource{r}, opts)
	waitFor(t, e.dest("a"), "v1")
	e.fake.Set("/k", "v2")
	waitFor(t, e.dest("a"), "v2")
	e.fake.Fail(errors.New("connection refused"))
	eventually(t, deadline, "a backend error", func() bool { return slices.Contains(rec.backendKinds(), "down") })
	e.fake.Recover()
	e.fake.Set("/k", "v3")
	waitFor(t, e.dest("a"), "v3")
	got := slices.Compact(rec.backendKinds())
	// snapshot, update(s), error(s) and down, up, then the reads after
	// the outage: a snapshot (the resync) and maybe updates.
	if len(got) < 6 || got[0] != "snapshot" || got[1] != "update" || !slices.Contains(got, "down") ||
		!slices.Contains(got, "error") {
		t.Errorf("backend events %v, want snapshot, update, error and down..., up, snapshot", got)
	}
	up := slices.Index(got, "up")
	if up < slices.Index(got, "down") || !slices.Contains(got[up:], "snapshot") {
		t.Errorf("backend events %v: want down, then up, then a snapshot", got)
	}
	rec.mu.Lock()
	last := rec.be[len(rec.be)-1]
	rec.mu.Unlock()
	if last.Rev == 0 {
		t.Error("update event without a revision")
	}
	// The file is in place before the attempt's EventDone is sent.
	eventually(t, deadline, "the last render's done event", func() bool {
		k := rec.kinds(r.Name)
		return len(k) >= 3 && k[len(k)-1] == "done"
	})
}
