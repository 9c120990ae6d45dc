package cli

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// oneShotMemory is the memory a -onetime run lets the Go runtime use
// before it collects garbage, as long as its live heap stays under half of
// it; see [gcFloor]. With the binary's own pages, that keeps a run over
// 100,000 small keys at about 50 MiB of resident memory.
const oneShotMemory = 36 << 20

// gcFloor makes the garbage collector wait until the Go runtime uses limit
// bytes of memory before it collects, as long as the live heap stays
// under limit/2; above that, GOGC=100 applies, as by default. It returns
// a function that puts the previous settings back. It does nothing when
// GOGC or GOMEMLIMIT is set in the environment: the user's settings win.
//
// A -onetime run is short and allocates much more than it keeps (the
// decoded pages of a snapshot, the temporaries of template execution),
// so with GOGC=100, whose heap goal is twice the live heap but at least
// 4 MiB, it collects many times while its live heap is a few MiB. With
// GOGC off and a memory limit instead, it collects when it reaches the
// limit only, and the runtime returns freed memory to stay under it; but
// a fixed limit makes the collector run continuously once the live heap
// nears it. So after each collection gcFloor looks at the live heap and
// picks one of the two: the limit while the live heap is under half of
// it, where both collect about as often, GOGC=100 beyond. The data sets
// the live heap: a snapshot of 100,000 small keys stays under the limit,
// a much bigger one goes on with GOGC=100.
func gcFloor(limit int64) (restore func()) {
	_, gogc := os.LookupEnv("GOGC")
	_, memlimit := os.LookupEnv("GOMEMLIMIT")
	if gogc || memlimit {
		return func() {}
	}
	t := &gcTuner{limit: limit, gogc: debug.SetGCPercent(-1), memlimit: debug.SetMemoryLimit(limit)}
	t.mu.Lock()
	t.tune()
	t.mu.Unlock()
	return t.stop
}

// gcTuner switches the collector between a memory limit and GOGC after
// each collection; see [gcFloor].
type gcTuner struct {
	limit    int64
	gogc     int   // GOGC before the tuner
	memlimit int64 // memory limit before the tuner

	mu      sync.Mutex
	stopped bool
}

// tune sets the collector for the live heap of the last collection and
// arranges to be called again after the next one. It is called with t.mu
// held.
func (t *gcTuner) tune() {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(sample)
	var live uint64
	if sample[0].Value.Kind() == metrics.KindUint64 {
		live = sample[0].Value.Uint64()
	}
	if live < uint64(t.limit/2) {
		debug.SetMemoryLimit(t.limit)
		debug.SetGCPercent(-1)
	} else {
		debug.SetGCPercent(t.gogc)
		debug.SetMemoryLimit(t.memlimit)
	}
	// A cleanup runs once the collector found its object unreachable:
	// after the next collection.
	runtime.AddCleanup(new(gcSentinel), func(t *gcTuner) {
		t.mu.Lock()
		defer t.mu.Unlock()
		if !t.stopped {
			t.tune()
		}
	}, t)
}

// gcSentinel is the object whose cleanup marks a collection. It holds a
// pointer so that it is not batched with other tiny objects, whose
// cleanups may not run.
type gcSentinel struct{ _ *int }

// stop ends the tuning and puts back the settings it found.
func (t *gcTuner) stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopped = true
	debug.SetGCPercent(t.gogc)
	debug.SetMemoryLimit(t.memlimit)
}
