// Command loadzk fills a ZooKeeper server with benchmark keys, the same as
// the other loaders: znodes <prefix>/k/000000 … <prefix>/k/<n-1>, each
// with a short value, created (or set) in multi requests of up to 500.
// With -read it reads them back instead, with the raw client: the children
// of <prefix>/k, then every child's data, 64 requests in flight, and
// prints the number of keys and bytes read; the reference that kvconf's
// one-shot render is compared with.
//
//	loadzk -endpoint 127.0.0.1:2181 -prefix /bench -n 100000
//	loadzk -endpoint 127.0.0.1:2181 -prefix /bench -read
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/kvconf/kvconf/bench/cmd/internal/benchkv"
)

func main() {
	endpoint := flag.String("endpoint", "127.0.0.1:2181", "ZooKeeper server")
	prefix := flag.String("prefix", "/bench", "key prefix")
	n := flag.Int("n", 1000, "number of keys")
	read := flag.Bool("read", false, "read the keys under prefix instead of writing them")
	flag.Parse()
	conn, _, err := zk.Connect([]string{*endpoint}, 30*time.Second, zk.WithLogInfo(false))
	if err == nil {
		defer conn.Close()
		if *read {
			err = readAll(conn, *prefix+"/k")
		} else {
			err = load(conn, *prefix, *n)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadzk:", err)
		os.Exit(1)
	}
}

// load creates (or sets) the n benchmark keys under prefix.
func load(conn *zk.Conn, prefix string, n int) error {
	acl := zk.WorldACL(zk.PermAll)
	for _, p := range []string{prefix, prefix + "/k"} {
		if _, err := conn.Create(p, nil, 0, acl); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return fmt.Errorf("create %s: %w", p, err)
		}
	}
	kids, _, err := conn.Children(prefix + "/k")
	if err != nil {
		return err
	}
	have := make(map[string]bool, len(kids))
	for _, k := range kids {
		have[prefix+"/k/"+k] = true
	}
	const batch = 500
	ops := make([]any, 0, batch)
	for i := range n {
		key, value := benchkv.Key(prefix, i), []byte(benchkv.Value(i))
		if have[key] {
			ops = append(ops, &zk.SetDataRequest{Path: key, Data: value, Version: -1})
		} else {
			ops = append(ops, &zk.CreateRequest{Path: key, Data: value, Acl: acl})
		}
		if len(ops) == batch || i == n-1 {
			if _, err := conn.Multi(ops...); err != nil {
				return fmt.Errorf("multi: %w", err)
			}
			ops = ops[:0]
		}
	}
	return nil
}

// readAll reads the data of every child of dir, 64 requests at a time.
func readAll(conn *zk.Conn, dir string) error {
	kids, _, err := conn.Children(dir)
	if err != nil {
		return fmt.Errorf("children %s: %w", dir, err)
	}
	var bytes atomic.Int64
	var first atomic.Pointer[error]
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for _, k := range kids {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			data, _, err := conn.Get(dir + "/" + k)
			if err != nil {
				first.CompareAndSwap(nil, &err)
				return
			}
			bytes.Add(int64(len(data)))
		}()
	}
	wg.Wait()
	if err := first.Load(); err != nil {
		return *err
	}
	fmt.Printf("keys=%d bytes=%d\n", len(kids), bytes.Load())
	return nil
}
