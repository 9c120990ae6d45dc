// Command fakeplugin is a test subject of the kvconf-backend protocol: a
// plugin that the tests of package plugin build and run, served by package
// sdk. It is not a backend anyone should use.
//
// Its store is a JSON file, {"rev":N,"kvs":{KEY:VALUE,...}}, named by the
// option "store", that the test rewrites (by rename) at every change and
// whose rev it bumps; the plugin reports revision N+1, and polls the file
// every 5ms while a watch waits. At configure it writes its pid to the
// file named by the option "pidfile", if any.
//
// Flags make it misbehave: -protocol and -version change its greeting
// (it then answers nothing), -nowatch serves a backend without Watch, and
// -linger makes it ignore the end of its stdin (it must then be killed).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/backends/plugin/sdk"
)

type store struct {
	Rev uint64            `json:"rev"`
	KVs map[string]string `json:"kvs"`
}

// fake reads the store file.
type fake struct {
	mu   sync.Mutex
	path string
	seen map[uint64]map[string]string // every state read, by revision
}

// watching is a fake that can watch.
type watching struct{ *fake }

func main() {
	protocol := flag.String("protocol", sdk.Protocol, "protocol of the greeting")
	version := flag.Int("version", sdk.Version, "version of the greeting")
	nowatch := flag.Bool("nowatch", false, "serve a backend that cannot watch")
	linger := flag.Bool("linger", false, "ignore the end of stdin")
	flag.Parse()

	if *protocol != sdk.Protocol || *version != sdk.Version {
		g, _ := json.Marshal(sdk.Greeting{Protocol: *protocol, Version: *version})
		fmt.Printf("%s\n", g)
		_, _ = io.Copy(io.Discard, bufio.NewReader(os.Stdin))
		return
	}
	f := &fake{seen: map[uint64]map[string]string{}}
	var b sdk.Backend = watching{f}
	if *nowatch {
		b = f
	}
	err := sdk.ServeIO(context.Background(), b, os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fakeplugin:", err)
		os.Exit(2)
	}
	if *linger {
		select {}
	}
}

func (f *fake) Configure(_ context.Context, opts map[string]string) error {
	f.mu.Lock()
	f.path = opts["store"]
	f.mu.Unlock()
	if p := opts["pidfile"]; p != "" {
		return os.WriteFile(p, []byte(strconv.Itoa(os.Getpid())), 0o644)
	}
	return nil
}

// read reads the store and returns its revision and keys under prefixes.
func (f *fake) read(prefixes []string) (uint64, map[string]string, error) {
	f.mu.Lock()
	path := f.path
	f.mu.Unlock()
	var s store
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, nil, err
	}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &s); err != nil {
			return 0, nil, err
		}
	}
	rev := s.Rev + 1
	f.mu.Lock()
	f.seen[rev] = s.KVs
	f.mu.Unlock()
	return rev, under(s.KVs, prefixes), nil
}

func under(kvs map[string]string, prefixes []string) map[string]string {
	out := map[string]string{}
	for k, v := range kvs {
		for _, pr := range prefixes {
			if strings.HasPrefix(k, pr) {
				out[k] = v
				break
			}
		}
	}
	return out
}

func (f *fake) Snapshot(_ context.Context, prefixes []string) (backends.Snapshot, error) {
	rev, kvs, err := f.read(prefixes)
	return backends.Snapshot{Rev: rev, KVs: kvs}, err
}

func (w watching) Watch(ctx context.Context, prefixes []string, after uint64) (backends.Update, error) {
	for {
		rev, kvs, err := w.read(prefixes)
		if err != nil {
			return backends.Update{}, err
		}
		if after == 0 {
			return backends.Update{Rev: rev}, nil
		}
		if rev > after {
			w.mu.Lock()
			old, known := w.seen[after]
			w.mu.Unlock()
			if !known {
				return backends.Update{Rev: rev, Full: &backends.Snapshot{Rev: rev, KVs: kvs}}, nil
			}
			if chs := backends.Diff(under(old, prefixes), kvs); len(chs) > 0 {
				return backends.Update{Rev: rev, Changes: chs}, nil
			}
		}
		select {
		case <-ctx.Done():
			return backends.Update{}, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}
