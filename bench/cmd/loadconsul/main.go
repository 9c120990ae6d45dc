// Command loadconsul fills a Consul agent's KV store with benchmark keys:
// the keys and values of loadetcd, without the leading "/" that Consul
// keys lack (the template key /bench/k/000042 is the Consul key
// bench/k/000042). It writes them in transactions of 64 sets, Consul's
// most operations per transaction, several transactions at a time.
//
//	loadconsul -endpoint 127.0.0.1:8500 -prefix /bench -n 100000
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
	"golang.org/x/sync/errgroup"

	"github.com/kvconf/kvconf/bench/cmd/internal/benchkv"
)

// maxTxnOps is Consul's limit on the operations of one transaction.
const maxTxnOps = 64

func main() {
	endpoint := flag.String("endpoint", "127.0.0.1:8500", "Consul HTTP address")
	prefix := flag.String("prefix", "/bench", "key prefix, as a template key")
	n := flag.Int("n", 1000, "number of keys")
	workers := flag.Int("workers", 8, "transactions in flight at once")
	flag.Parse()
	if err := load(*endpoint, strings.TrimPrefix(*prefix, "/"), *n, max(*workers, 1)); err != nil {
		fmt.Fprintln(os.Stderr, "loadconsul:", err)
		os.Exit(1)
	}
}

func load(endpoint, prefix string, n, workers int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cfg := api.DefaultConfig()
	cfg.Address = endpoint
	cfg.Transport.MaxIdleConnsPerHost = workers
	c, err := api.NewClient(cfg)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	for lo := 0; lo < n; lo += maxTxnOps {
		hi := min(lo+maxTxnOps, n)
		ops := make(api.TxnOps, 0, hi-lo)
		for i := lo; i < hi; i++ {
			ops = append(ops, &api.TxnOp{KV: &api.KVTxnOp{
				Verb: api.KVSet, Key: benchkv.Key(prefix, i), Value: []byte(benchkv.Value(i)),
			}})
		}
		g.Go(func() error {
			ok, resp, _, err := c.Txn().Txn(ops, (&api.QueryOptions{}).WithContext(gctx))
			switch {
			case err != nil:
				return fmt.Errorf("txn of keys %d-%d: %w", lo, hi-1, err)
			case !ok:
				errs := make([]error, 0, len(resp.Errors))
				for _, e := range resp.Errors {
					errs = append(errs, fmt.Errorf("op %d: %s", e.OpIndex, e.What))
				}
				return fmt.Errorf("txn of keys %d-%d rolled back: %w", lo, hi-1, errors.Join(errs...))
			}
			return nil
		})
	}
	return g.Wait()
}
