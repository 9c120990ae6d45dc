// Command loadetcd fills an etcd server with benchmark keys:
// <prefix>/k/000000 … <prefix>/k/<n-1>, each with a short value, written in
// transactions of up to 128 puts.
//
//	loadetcd -endpoint 127.0.0.1:2379 -prefix /bench -n 100000
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kvconf/kvconf/bench/cmd/internal/benchkv"
)

func main() {
	endpoint := flag.String("endpoint", "127.0.0.1:2379", "etcd endpoint")
	prefix := flag.String("prefix", "/bench", "key prefix")
	n := flag.Int("n", 1000, "number of keys")
	flag.Parse()
	if err := load(*endpoint, *prefix, *n); err != nil {
		fmt.Fprintln(os.Stderr, "loadetcd:", err)
		os.Exit(1)
	}
}

func load(endpoint, prefix string, n int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() { _ = c.Close() }() // a benchmark tool exiting anyway
	const batch = 128                // etcd's default --max-txn-ops
	ops := make([]clientv3.Op, 0, batch)
	for i := 0; i < n; i++ {
		ops = append(ops, clientv3.OpPut(benchkv.Key(prefix, i), benchkv.Value(i)))
		if len(ops) == batch || i == n-1 {
			if _, err := c.Txn(ctx).Then(ops...).Commit(); err != nil {
				return fmt.Errorf("put: %w", err)
			}
			ops = ops[:0]
		}
	}
	return nil
}
