// Command putlat measures the latency from a put to the file that a
// running kvconf renders from it: it puts a new value into etcd, Consul or
// ZooKeeper, then waits (with fsnotify on the file's directory) until the
// file holds it, -n times, and prints the median, p95 and p99.
//
//	putlat -backend etcd -endpoint 127.0.0.1:2379 -key /bench/k/000042 -file out/bench.conf -n 200
//	putlat -backend consul -endpoint 127.0.0.1:8500 -key /bench/k/000042 -file out/bench.conf -n 200
//
// Keys are template keys: for Consul, /bench/k/000042 is the Consul key
// bench/k/000042, as kvconf maps them. With -gap, putlat waits that long
// after each update before the next put, so that a backend that paces its
// watch (Consul's blocking queries are at least 100 ms apart) is measured
// on puts that do not come right after the previous one.
//
// -key and -file may list several keys and files, separated by commas, as
// many of each: put i goes to key i mod n and is waited for in file i mod n,
// so that the puts spread over several prefixes and resources.
//
// Each latency is measured twice: from the moment putlat sends the put,
// and from the moment the store answered it (the put committed); the
// second line of output gives the latter. With -by-key, putlat also prints
// the median of each key, which shows how a key's place among the watched
// prefixes weighs on it.
package main

import (
	"bytes"
	"cmp"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// store is a key-value store putlat puts into.
type store interface {
	Put(ctx context.Context, key, value string) error
	Close() error
}

// open connects to the store of backend at endpoint, or at the backend's
// default address when endpoint is empty.
func open(backend, endpoint string) (store, error) {
	switch backend {
	case "etcd":
		return openEtcd(cmp.Or(endpoint, "127.0.0.1:2379"))
	case "consul":
		return openConsul(cmp.Or(endpoint, "127.0.0.1:8500"))
	case "zookeeper":
		return openZookeeper(cmp.Or(endpoint, "127.0.0.1:2181"))
	}
	return nil, fmt.Errorf("unknown backend %q (etcd, consul or zookeeper)", backend)
}

func main() {
	backend := flag.String("backend", "etcd", "store to put into: etcd, consul or zookeeper")
	endpoint := flag.String("endpoint", "", "address of the store (default: 127.0.0.1:2379 for etcd, 127.0.0.1:8500 for consul)")
	key := flag.String("key", "/bench/k/000042", "template key to put (or several, separated by commas)")
	file := flag.String("file", "", "file kvconf renders the key's value into (or one per key, separated by commas)")
	n := flag.Int("n", 200, "number of puts")
	gap := flag.Duration("gap", 0, "pause after each update before the next put")
	timeout := flag.Duration("timeout", 10*time.Second, "longest wait for one update")
	byKey := flag.Bool("by-key", false, "also print the median latency of each key")
	flag.Parse()
	keys := strings.Split(*key, ",")
	ms, err := run(*backend, *endpoint, keys, strings.Split(*file, ","), *n, *gap, *timeout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "putlat:", err)
		os.Exit(1)
	}
	fromPut := make([]time.Duration, len(ms))
	fromAnswer := make([]time.Duration, len(ms))
	for i, m := range ms {
		fromPut[i], fromAnswer[i] = m.fromPut, m.fromAnswer
	}
	fmt.Printf("puts=%d from put:    %s\n", len(ms), summary(fromPut))
	fmt.Printf("puts=%d from answer: %s\n", len(ms), summary(fromAnswer))
	if *byKey {
		for k, key := range keys {
			var lat []time.Duration
			for i := k; i < len(ms); i += len(keys) {
				lat = append(lat, ms[i].fromAnswer)
			}
			slices.Sort(lat)
			fmt.Printf("  %s: median from answer %s\n", key, lat[len(lat)/2])
		}
	}
}

// summary returns the median, p95, p99 and max of lat, which it sorts.
func summary(lat []time.Duration) string {
	slices.Sort(lat)
	q := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1))] }
	return fmt.Sprintf("median=%s p95=%s p99=%s max=%s", q(0.5), q(0.95), q(0.99), lat[len(lat)-1])
}

// measure is the latency of one put: from the moment it was sent, and from
// the moment the store answered it.
type measure struct {
	fromPut, fromAnswer time.Duration
}

func run(backend, endpoint string, keys, files []string, n int, gap, timeout time.Duration) ([]measure, error) {
	if n < 1 {
		return nil, fmt.Errorf("-n %d: want at least one put", n)
	}
	if len(keys) != len(files) {
		return nil, fmt.Errorf("%d keys and %d files: want one file per key", len(keys), len(files))
	}
	s, err := open(backend, endpoint)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	defer func() { _ = s.Close() }() // a benchmark tool exiting anyway
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	defer func() { _ = w.Close() }() // a benchmark tool exiting anyway
	dirs := map[string]bool{}
	for _, f := range files {
		if d := filepath.Dir(f); !dirs[d] {
			dirs[d] = true
			if err := w.Add(d); err != nil {
				return nil, err
			}
		}
	}
	id := time.Now().UnixNano()
	var lat []measure
	for i := range n {
		if i > 0 && gap > 0 {
			time.Sleep(gap)
		}
		key, file := keys[i%len(keys)], files[i%len(files)]
		value := fmt.Sprintf("lat-%d-%d|", id, i)
		start := time.Now()
		if err := s.Put(context.Background(), key, value); err != nil {
			return nil, fmt.Errorf("put: %w", err)
		}
		answered := time.Now()
		if err := waitFor(w, file, []byte(value), timeout); err != nil {
			return nil, fmt.Errorf("put %d: %w", i, err)
		}
		done := time.Now()
		lat = append(lat, measure{fromPut: done.Sub(start), fromAnswer: done.Sub(answered)})
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
