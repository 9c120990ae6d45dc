package test

import (
	"context"
	"fmt"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kvconf/kvconf/backends/etcd"
)

// BenchmarkEtcdSnapshot reads every key under one prefix holding 1,000,
// 10,000 and 100,000 keys of 64 bytes, from an embedded etcd.
func BenchmarkEtcdSnapshot(b *testing.B) {
	m := startEtcd(b, nil)
	cli := rawClient(b, clientv3.Config{Endpoints: urls(m)})
	c := openEtcd(b, etcd.Config{Nodes: urls(m)})
	for _, n := range []int{1_000, 10_000, 100_000} {
		prefix := fmt.Sprintf("/bench%d", n)
		load(b, cli, prefix, n, 64)
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s, err := c.Snapshot(b.Context(), []string{prefix + "/"})
				if err != nil {
					b.Fatal(err)
				}
				if len(s.KVs) != n {
					b.Fatalf("Snapshot has %d keys, want %d", len(s.KVs), n)
				}
			}
			b.ReportMetric(float64(n), "keys")
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "keys/s")
		})
	}
}

// BenchmarkEtcdWatchDelta puts one key under a prefix of 10,000 keys and
// times until Watch returns the change: the cost of a one-key change,
// which must not grow with the keys under the prefix.
func BenchmarkEtcdWatchDelta(b *testing.B) {
	m := startEtcd(b, nil)
	cli := rawClient(b, clientv3.Config{Endpoints: urls(m)})
	c := openEtcd(b, etcd.Config{Nodes: urls(m)})
	const prefix = "/delta"
	load(b, cli, prefix, 10_000, 64)
	prefixes := []string{prefix + "/"}
	u, err := c.Watch(b.Context(), prefixes, 0)
	if err != nil {
		b.Fatal(err)
	}
	after := u.Rev
	ctx := context.WithoutCancel(b.Context())
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		key := fmt.Sprintf("%s/%08d", prefix, i%10_000)
		i++
		if _, err := cli.Put(ctx, key, "changed"); err != nil {
			b.Fatal(err)
		}
		u, err := c.Watch(ctx, prefixes, after)
		if err != nil {
			b.Fatal(err)
		}
		if u.Full != nil || len(u.Changes) != 1 || u.Changes[0].Key != key {
			b.Fatalf("Watch = %+v, want the change to %s", u, key)
		}
		after = u.Rev
	}
}
