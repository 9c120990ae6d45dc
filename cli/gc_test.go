package cli

import (
	"os"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"
)

// gcSettings returns the GOGC (-1 for off) and the memory limit in force.
func gcSettings() (gogc, limit int64) {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}, {Name: "/gc/gomemlimit:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64()), int64(s[1].Value.Uint64())
}

// TestGCFloor checks that gcFloor collects at the limit while the live
// heap is small, goes back to GOGC once the live heap passes half the
// limit, and that its restore function puts the settings back. It changes
// process-wide settings, so it does not run in parallel.
func TestGCFloor(t *testing.T) {
	for _, v := range []string{"GOGC", "GOMEMLIMIT"} {
		if _, ok := os.LookupEnv(v); ok {
			t.Skipf("%s is set", v)
		}
	}
	gogc, limit := gcSettings()
	const floor = 64 << 20
	restore := gcFloor(floor)
	if g, l := gcSettings(); g != -1 || l != floor {
		t.Errorf("with a small heap: GOGC %d, limit %d; want off and %d", g, l, floor)
	}

	// A live heap over half the limit: after the next collection, GOGC
	// is back.
	big := make([]byte, floor*3/4)
	for i := range big {
		big[i] = 1
	}
	stop := time.Now().Add(10 * time.Second)
	for {
		runtime.GC()
		if g, l := gcSettings(); g == gogc && l == limit {
			break
		}
		if time.Now().After(stop) {
			g, l := gcSettings()
			t.Fatalf("with a big heap: GOGC %d, limit %d; want %d and %d", g, l, gogc, limit)
		}
		time.Sleep(time.Millisecond)
	}
	runtime.KeepAlive(big)

	restore()
	if g, l := gcSettings(); g != gogc || l != limit {
		t.Errorf("after restore: GOGC %d, limit %d; want %d and %d", g, l, gogc, limit)
	}
	runtime.GC() // a pending cleanup must not tune again
	time.Sleep(10 * time.Millisecond)
	if g, l := gcSettings(); g != gogc || l != limit {
		t.Errorf("after restore and a collection: GOGC %d, limit %d; want %d and %d", g, l, gogc, limit)
	}
}

// TestGCFloorUserSettings checks that gcFloor leaves the collector alone
// when the user set GOGC or GOMEMLIMIT.
func TestGCFloorUserSettings(t *testing.T) {
	for _, v := range []string{"GOGC", "GOMEMLIMIT"} {
		t.Run(v, func(t *testing.T) {
			t.Setenv(v, "200")
			gogc, limit := gcSettings()
			restore := gcFloor(64 << 20)
			if g, l := gcSettings(); g != gogc || l != limit {
				t.Errorf("with %s set: GOGC %d, limit %d; want them untouched", v, g, l)
			}
			restore()
		})
	}
}
