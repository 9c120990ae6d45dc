package metrics

import (
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kvconf/kvconf/resource"
)

// TestApplies counts both paths of a resource's applier.
func TestApplies(t *testing.T) {
	t.Parallel()
	m := New()
	m.Expect([]Resource{{"h", "/out/h"}}, nil)
	for _, k := range []resource.EventKind{resource.EventApplied, resource.EventApplied, resource.EventApplyFallback} {
		var err error
		if k == resource.EventApplyFallback {
			err = errors.New("haproxy: unsupported")
		}
		m.ObserveResource(resource.Event{Kind: k, Resource: "h", Dest: "/out/h", Err: err})
	}
	if got := testutil.ToFloat64(m.applies.WithLabelValues("h", "runtime")); got != 2 {
		t.Errorf("applies{path=runtime} = %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.applies.WithLabelValues("h", "reload")); got != 1 {
		t.Errorf("applies{path=reload} = %v, want 1", got)
	}
	m.deleteResource("h")
	if n := testutil.CollectAndCount(m.applies); n != 0 {
		t.Errorf("%d applies series after the resource went, want 0", n)
	}
}
