package test

import (
	"fmt"
	"testing"

	"github.com/kvconf/kvconf/backends/consul"
)

// consulBenchKVs returns n keys under /bench/, about 40 bytes of value each.
func consulBenchKVs(n int) map[string]string {
	kvs := make(map[string]string, n)
	for i := range n {
		kvs[fmt.Sprintf("/bench/svc%03d/key%06d", i%100, i)] = fmt.Sprintf("value of key %06d, some forty bytes", i)
	}
	return kvs
}

// BenchmarkConsulSnapshot reads all keys under one prefix of a dev agent
// holding 1,000, 10,000 or 100,000 keys, loaded in transactions of 64.
func BenchmarkConsulSnapshot(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			a := startConsul(b, false)
			consulLoad(b, a.client(b, ""), consulBenchKVs(n))
			c := openConsul(b, consul.Config{Nodes: []string{a.http}})
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				s, err := c.Snapshot(b.Context(), []string{"/bench/"})
				if err != nil {
					b.Fatal(err)
				}
				if len(s.KVs) != n {
					b.Fatalf("Snapshot has %d keys, want %d", len(s.KVs), n)
				}
			}
		})
	}
}

// BenchmarkConsulWatchDelta changes one key under a prefix of 10,000 keys
// and waits for Watch to return it as a change. Each iteration includes
// the put and Watch's pacing of at least 100 ms between queries on a
// prefix, so the time per operation is mostly that pacing; the
// allocations show the cost of the listing and the comparison.
func BenchmarkConsulWatchDelta(b *testing.B) {
	const n = 10_000
	a := startConsul(b, false)
	cli := a.client(b, "")
	consulLoad(b, cli, consulBenchKVs(n))
	c := openConsul(b, consul.Config{Nodes: []string{a.http}})
	prefixes := []string{"/bench/"}
	s, err := c.Snapshot(b.Context(), prefixes)
	if err != nil {
		b.Fatal(err)
	}
	after := s.Rev
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		i++
		consulPut(b, cli, "/bench/svc000/key000000", fmt.Sprint(i))
		u, err := c.Watch(b.Context(), prefixes, after)
		if err != nil {
			b.Fatal(err)
		}
		if u.Full != nil || len(u.Changes) != 1 {
			b.Fatalf("Watch = %d changes, full %t; want 1 change", len(u.Changes), u.Full != nil)
		}
		after = u.Rev
	}
}
