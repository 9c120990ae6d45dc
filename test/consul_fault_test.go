package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestConsulFault runs kvconf -watch with 50 resources on 50 prefixes of
// a dev agent, then kills the agent (SIGKILL) and starts it again, at
// once or after an outage of 10 s. A dev agent starts empty, with its
// index from the beginning again: the test loads the keys again with new
// values, and checks that kvconf reports the backend down while the agent
// is gone (Watch returns the error instead of waiting on a dead query),
// and up again, and that every file catches up; it logs how long the
// catch-up took from the end of the load.
func TestConsulFault(t *testing.T) {
	tests := []struct {
		name   string
		outage time.Duration
	}{
		{name: "kill -9 and restart", outage: 0},
		{name: "outage of 10s", outage: 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const n = 50
			a := startConsul(t, false)
			cli := consulClientFrom(t, a.http, "127.0.0.2")
			load := func(gen int) {
				kvs := make(map[string]string, 1000)
				for k := range 1000 {
					kvs[fmt.Sprintf("/fault/p%02d/k%04d", k%n, k)] = fmt.Sprintf("g%d-v%d", gen, k)
				}
				consulLoad(t, cli, kvs)
			}
			load(1)
			dir, file := faultConfdir(t, n)
			p := start(t, []string{kvconfBin, "-watch", "-config-file", os.DevNull, "-confdir", dir,
				"-backend", "consul", "-node", a.http, "-log-level", "info"}, nil, "CONSUL_HTTP_ADDR=", "CONSUL_HTTP_TOKEN=")
			waitAll := func(what, want string) time.Duration {
				t.Helper()
				t0 := time.Now()
				deadline := t0.Add(60 * time.Second)
				for i := range n {
					for !fileHas(file(i), want) {
						if time.Now().After(deadline) {
							t.Fatalf("%s: %s lacks %q after 60s\nkvconf stderr:\n%s", what, file(i), want, p.stderr)
						}
						time.Sleep(20 * time.Millisecond)
					}
				}
				return time.Since(t0)
			}
			waitAll("first render", "=g1-")
			time.Sleep(500 * time.Millisecond) // every group's query blocking

			a.stop(t) // SIGKILL
			waitLog(t, p, "backend down", 30*time.Second)
			time.Sleep(tt.outage)
			a.start(t)
			load(2)
			took := waitAll("catch-up", "=g2-")
			t.Logf("%s: every file caught up %v after the keys were loaded again", tt.name, took.Round(time.Millisecond))
			waitLog(t, p, "backend up", 30*time.Second)

			// And it goes on watching.
			consulPut(t, cli, "/fault/p07/k0007", "after")
			deadline := time.Now().Add(30 * time.Second)
			for !fileHas(file(7), "=after\n") {
				if time.Now().After(deadline) {
					t.Fatalf("a change after the catch-up did not show\nkvconf stderr:\n%s", p.stderr)
				}
				time.Sleep(20 * time.Millisecond)
			}
			if strings.Contains(p.stderr.String(), "panic") {
				t.Errorf("kvconf stderr mentions a panic:\n%s", p.stderr)
			}
		})
	}
}

// faultConfdir writes n resources; resource i reads the prefix
// /fault/pNN (i, two digits) and writes out/rNN.conf. It returns the
// confdir and the path of resource i's file.
func faultConfdir(t *testing.T, n int) (string, func(int) string) {
	t.Helper()
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	for _, d := range []string{"conf.d", "templates", "out"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tmpl := `{{range gets "/*"}}{{.Key}}={{.Value}}` + "\n{{end}}"
	if err := os.WriteFile(filepath.Join(dir, "templates", "r.tmpl"), []byte(tmpl), 0o644); err != nil {
		t.Fatal(err)
	}
	file := func(i int) string { return filepath.Join(out, fmt.Sprintf("r%02d.conf", i)) }
	for i := range n {
		toml := fmt.Sprintf("[template]\nsrc = \"r.tmpl\"\ndest = %q\nprefix = \"/fault/p%02d\"\nkeys = [\"/\"]\n", file(i), i)
		if err := os.WriteFile(filepath.Join(dir, "conf.d", fmt.Sprintf("r%02d.toml", i)), []byte(toml), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir, file
}

// waitLog waits until kvconf's stderr holds msg.
func waitLog(t *testing.T, p *proc, msg string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(p.stderr.String(), msg) {
		if time.Now().After(deadline) {
			t.Fatalf("kvconf did not log %q within %v\nkvconf stderr:\n%s", msg, timeout, p.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
