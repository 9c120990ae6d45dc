//go:build unix

package file

import (
	"fmt"
	"syscall"
	"testing"
	"time"
)

// BenchmarkFlatten measures flatten on one map of 40,000 and 200,000
// entries (the shape that was quadratic), and on as many entries in
// sub-maps of ten.
func BenchmarkFlatten(b *testing.B) {
	for _, n := range []int{40_000, 200_000} {
		for _, shape := range []struct {
			name string
			doc  func(int) []byte
		}{{"flat", flatDoc}, {"nested", bigDoc}} {
			data := shape.doc(n)
			b.Run(fmt.Sprintf("%s-%dk", shape.name, n/1000), func(b *testing.B) {
				b.SetBytes(int64(len(data)))
				start := cpuTime(b)
				for b.Loop() {
					kvs := make(map[string]string, n)
					if err := flatten(b.Context(), data, kvs); err != nil {
						b.Fatal(err)
					}
					if len(kvs) != n {
						b.Fatalf("%d keys, want %d", len(kvs), n)
					}
				}
				// CPU time, all threads (GC included): on a shared,
				// loaded machine, wall time says more about the load.
				b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/op")
			})
		}
	}
}

// cpuTime returns the CPU time the process used so far, user and system.
func cpuTime(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
