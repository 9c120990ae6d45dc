// Command fakeplugin is a test subject of the kvconf-backend protocol: a
// plugin that the tests of package plugin build and run. It is not a
// backend anyone should use.
//
// Its store is a JSON file, {"rev":N,"kvs":{KEY:VALUE,...}}, named by the
// option "store", that the test rewrites (by rename) at every change and
// whose rev it bumps; the plugin reports revision N+1, and polls the file
// every 5ms while a watch waits. At configure it writes its pid to the
// file named by the option "pidfile", if any.
//
// Flags make it misbehave: -protocol and -version change its greeting,
// -nowatch answers every watch "unsupported", and -linger makes it ignore
// the end of its stdin (it must then be killed).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

type request struct {
	ID       uint64            `json:"id"`
	Method   string            `json:"method"`
	Prefixes []string          `json:"prefixes"`
	After    uint64            `json:"after"`
	Target   uint64            `json:"target"`
	Options  map[string]string `json:"options"`
}

type change struct {
	Key     string `json:"key"`
	Value   string `json:"value"`
	Deleted bool   `json:"deleted"`
}

type response struct {
	ID      uint64            `json:"id"`
	Rev     uint64            `json:"rev,omitempty"`
	KVs     map[string]string `json:"kvs,omitempty"`
	Changes []change          `json:"changes,omitempty"`
	Full    map[string]string `json:"full,omitempty"`
	Error   string            `json:"error,omitempty"`
}

type store struct {
	Rev uint64            `json:"rev"`
	KVs map[string]string `json:"kvs"`
}

type plugin struct {
	nowatch bool
	outMu   sync.Mutex
	out     *bufio.Writer

	mu      sync.Mutex
	path    string
	seen    map[uint64]map[string]string // every state read, by revision
	cancels map[uint64]context.CancelFunc
}

func main() {
	protocol := flag.String("protocol", "kvconf-backend", "protocol of the greeting")
	version := flag.Int("version", 1, "version of the greeting")
	nowatch := flag.Bool("nowatch", false, "answer watch with unsupported")
	linger := flag.Bool("linger", false, "ignore the end of stdin")
	flag.Parse()

	p := &plugin{nowatch: *nowatch, out: bufio.NewWriter(os.Stdout), seen: map[uint64]map[string]string{}, cancels: map[uint64]context.CancelFunc{}}
	g, _ := json.Marshal(map[string]any{"protocol": *protocol, "version": *version})
	p.send(g)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(nil, 1<<24)
	for in.Scan() {
		var req request
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			fmt.Fprintln(os.Stderr, "fakeplugin: bad request:", err)
			os.Exit(2)
		}
		switch req.Method {
		case "configure":
			p.configure(req)
		case "snapshot":
			p.snapshot(req)
		case "watch":
			wctx, wcancel := context.WithCancel(ctx)
			p.mu.Lock()
			p.cancels[req.ID] = wcancel
			p.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				p.watch(wctx, req)
				p.mu.Lock()
				delete(p.cancels, req.ID)
				p.mu.Unlock()
				wcancel()
			}()
		case "cancel":
			p.mu.Lock()
			if c := p.cancels[req.Target]; c != nil {
				c()
			}
			p.mu.Unlock()
		default:
			p.reply(response{ID: req.ID, Error: "unsupported"})
		}
	}
	cancel()
	wg.Wait()
	if *linger {
		select {}
	}
}

func (p *plugin) send(b []byte) {
	p.outMu.Lock()
	defer p.outMu.Unlock()
	p.out.Write(append(b, '\n'))
	p.out.Flush()
}

func (p *plugin) reply(r response) {
	b, err := json.Marshal(r)
	if err != nil {
		panic(err)
	}
	p.send(b)
}

func (p *plugin) configure(req request) {
	p.mu.Lock()
	p.path = req.Options["store"]
	p.mu.Unlock()
	if f := req.Options["pidfile"]; f != "" {
		if err := os.WriteFile(f, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
			p.reply(response{ID: req.ID, Error: err.Error()})
			return
		}
	}
	p.reply(response{ID: req.ID})
}

// read reads the store and returns its revision and keys under prefixes.
func (p *plugin) read(prefixes []string) (uint64, map[string]string, error) {
	p.mu.Lock()
	path := p.path
	p.mu.Unlock()
	var s store
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return 0, nil, err
	}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &s); err != nil {
			return 0, nil, err
		}
	}
	rev := s.Rev + 1
	p.mu.Lock()
	p.seen[rev] = s.KVs
	p.mu.Unlock()
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

func (p *plugin) snapshot(req request) {
	rev, kvs, err := p.read(req.Prefixes)
	if err != nil {
		p.reply(response{ID: req.ID, Error: err.Error()})
		return
	}
	p.reply(response{ID: req.ID, Rev: rev, KVs: kvs})
}

func (p *plugin) watch(ctx context.Context, req request) {
	if p.nowatch {
		p.reply(response{ID: req.ID, Error: "unsupported"})
		return
	}
	for {
		rev, kvs, err := p.read(req.Prefixes)
		if err != nil {
			p.reply(response{ID: req.ID, Error: err.Error()})
			return
		}
		if req.After == 0 {
			p.reply(response{ID: req.ID, Rev: rev})
			return
		}
		if rev > req.After {
			p.mu.Lock()
			old, known := p.seen[req.After]
			p.mu.Unlock()
			if !known {
				p.reply(response{ID: req.ID, Rev: rev, Full: kvs})
				return
			}
			if chs := diff(under(old, req.Prefixes), kvs); len(chs) > 0 {
				p.reply(response{ID: req.ID, Rev: rev, Changes: chs})
				return
			}
		}
		select {
		case <-ctx.Done():
			p.reply(response{ID: req.ID, Error: "canceled"})
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func diff(old, cur map[string]string) []change {
	var chs []change
	for k, v := range cur {
		if o, ok := old[k]; !ok || o != v {
			chs = append(chs, change{Key: k, Value: v})
		}
	}
	for k := range old {
		if _, ok := cur[k]; !ok {
			chs = append(chs, change{Key: k, Deleted: true})
		}
	}
	return chs
}
