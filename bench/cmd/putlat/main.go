// Command putlat measures the latency from an etcd put to the file that a
// running kvconf renders from it: it puts a new value, then waits (with
// fsnotify on the file's directory) until the file holds it, -n times, and
// prints the median, p95 and p99.
//
//	putlat -endpoint 127.0.0.1:2379 -key /bench/k/000042 -file out/bench.conf -n 200
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/fsnotify/fsnotify"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func main() {
	endpoint := flag.String("endpoint", "127.0.0.1:2379", "etcd endpoint")
	key := flag.String("key", "/bench/k/000042", "key to put")
	file := flag.String("file", "", "file kvconf renders the key's value into")
	n := flag.Int("n", 200, "number of puts")
	timeout := flag.Duration("timeout", 10*time.Second, "longest wait for one update")
	flag.Parse()
	lat, err := measure(*endpoint, *key, *file, *n, *timeout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "putlat:", err)
		os.Exit(1)
	}
	slices.Sort(lat)
	q := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1))] }
	fmt.Printf("puts=%d median=%s p95=%s p99=%s max=%s\n", len(lat), q(0.5), q(0.95), q(0.99), lat[len(lat)-1])
}

func measure(endpoint, key, file string, n int, timeout time.Duration) ([]time.Duration, error) {
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	defer func() { _ = c.Close() }() // a benchmark tool exiting anyway
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	defer func() { _ = w.Close() }() // a benchmark tool exiting anyway
	if err := w.Add(filepath.Dir(file)); err != nil {
		return nil, err
	}
	run := time.Now().UnixNano()
	var lat []time.Duration
	for i := 0; i < n; i++ {
		value := fmt.Sprintf("lat-%d-%d", run, i)
		start := time.Now()
		if _, err := c.Put(context.Background(), key, value); err != nil {
			return nil, fmt.Errorf("put: %w", err)
		}
		if err := waitFor(w, file, []byte(value), timeout); err != nil {
			return nil, fmt.Errorf("put %d: %w", i, err)
		}
		lat = append(lat, time.Since(start))
	}
	return lat, nil
}

// waitFor returns once file contains want, re-reading it on every event in
// its directory.
func waitFor(w *fsnotify.Watcher, file string, want []byte, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		if b, err := os.ReadFile(file); err == nil && bytes.Contains(b, want) {
			return nil
		}
		select {
		case <-w.Events:
		case err := <-w.Errors:
			return err
		case <-deadline.C:
			return fmt.Errorf("%s did not get the new value within %s", file, timeout)
		}
	}
}
