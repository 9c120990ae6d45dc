package test

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// consulMgmtToken is the initial management token of the agents started
// with ACLs.
const consulMgmtToken = "3f8a1c52-6f0e-4d2b-9a77-0c1e5b2d4e61"

// consulAgent is a `consul agent -dev` run by a test on loopback ports of
// its own. Dev agents keep their data in memory: a restart empties the
// store and starts its index again from the beginning.
type consulAgent struct {
	bin    string
	dir    string
	config string // the -config-file
	http   string // host:port of the HTTP API
	acl    bool

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	log  bytes.Buffer
}

// consulBin returns the consul binary of $CONSUL_BIN. Unset or missing, it
// fails the test under CI and skips it elsewhere.
func consulBin(t testing.TB) string {
	t.Helper()
	return binFromEnv(t, "CONSUL_BIN", `set CONSUL_BIN="$(./scripts/consul-bin)" (it builds consul v1.19.2 once), or run make test`)
}

// startConsul starts a dev agent, with ACLs (default deny, management
// token [consulMgmtToken]) if acl and the agent configuration extraHCL
// (HCL blocks) added, and stops it when the test ends.
func startConsul(t testing.TB, acl bool, extraHCL ...string) *consulAgent {
	t.Helper()
	a := &consulAgent{bin: consulBin(t), dir: t.TempDir(), acl: acl}
	port := func() int {
		_, p, _ := net.SplitHostPort(freePort(t))
		n, _ := strconv.Atoi(p)
		return n
	}
	httpPort := port()
	a.http = net.JoinHostPort("127.0.0.1", strconv.Itoa(httpPort))
	hcl := fmt.Sprintf(`ports {
  http = %d
  https = -1
  dns = -1
  grpc = -1
  grpc_tls = -1
  serf_lan = %d
  serf_wan = -1
  server = %d
}
`, httpPort, port(), port())
	if acl {
		hcl += `acl {
  enabled = true
  default_policy = "deny"
  tokens {
    initial_management = "` + consulMgmtToken + `"
  }
}
`
	}
	hcl += strings.Join(extraHCL, "\n")
	a.config = filepath.Join(a.dir, "agent.hcl")
	if err := os.WriteFile(a.config, []byte(hcl), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		a.stop(t)
		if t.Failed() {
			a.mu.Lock()
			t.Logf("consul agent log:\n%s", a.log.String())
			a.mu.Unlock()
		}
	})
	a.start(t)
	return a
}

// start runs the agent and waits until it has a leader and takes writes.
func (a *consulAgent) start(t testing.TB) {
	t.Helper()
	cmd := exec.Command(a.bin, "agent", "-dev", "-bind", "127.0.0.1", "-client", "127.0.0.1",
		"-config-file", a.config, "-log-level", "warn")
	a.mu.Lock()
	cmd.Stdout, cmd.Stderr = &lockedWriter{a}, &lockedWriter{a}
	a.mu.Unlock()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait() // its status tells nothing: stop kills it
		close(done)
	}()
	a.mu.Lock()
	a.cmd, a.done = cmd, done
	a.mu.Unlock()

	cli := a.client(t, consulMgmtToken)
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := cli.KV().Put(&api.KVPair{Key: "kvconf-ready", Value: []byte("1")}, nil)
		if err == nil {
			break
		}
		select {
		case <-done:
			t.Fatalf("consul agent exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("consul agent not ready after 60s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := cli.KV().Delete("kvconf-ready", nil); err != nil {
		t.Fatal(err)
	}
}

// stop stops the agent, if running, and waits for it to exit.
func (a *consulAgent) stop(t testing.TB) {
	t.Helper()
	a.mu.Lock()
	cmd, done := a.cmd, a.done
	a.cmd = nil
	a.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill() // an error means it has exited already
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Errorf("consul agent still running 30s after SIGKILL")
	}
}

// restart stops the agent and starts it again on the same ports, with an
// empty store.
func (a *consulAgent) restart(t testing.TB) {
	t.Helper()
	a.stop(t)
	a.start(t)
}

// client returns an API client of the agent with token.
func (a *consulAgent) client(t testing.TB, token string) *api.Client {
	t.Helper()
	cli, err := api.NewClient(&api.Config{Address: a.http, Scheme: "http", Token: token,
		HttpClient: &http.Client{Timeout: 30 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	return cli
}

// lockedWriter appends to the agent's log under its lock.
type lockedWriter struct{ a *consulAgent }

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.a.mu.Lock()
	defer w.a.mu.Unlock()
	return w.a.log.Write(p)
}

// consulPut sets key, a template key, in Consul.
func consulPut(t testing.TB, cli *api.Client, key, value string) {
	t.Helper()
	if _, err := cli.KV().Put(&api.KVPair{Key: strings.TrimPrefix(key, "/"), Value: []byte(value)}, nil); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

// consulDelete deletes key, a template key, from Consul; with tree, every
// key under it.
func consulDelete(t testing.TB, cli *api.Client, key string, tree bool) {
	t.Helper()
	var err error
	if tree {
		_, err = cli.KV().DeleteTree(strings.TrimPrefix(key, "/"), nil)
	} else {
		_, err = cli.KV().Delete(strings.TrimPrefix(key, "/"), nil)
	}
	if err != nil {
		t.Fatalf("delete %s: %v", key, err)
	}
}

// consulLoad writes kvs to Consul in transactions of 64 operations.
func consulLoad(tb testing.TB, cli *api.Client, kvs map[string]string) {
	tb.Helper()
	var ops api.TxnOps
	flush := func() {
		if len(ops) == 0 {
			return
		}
		ok, resp, _, err := cli.Txn().Txn(ops, nil)
		if err != nil || !ok {
			tb.Fatalf("txn: ok %t, %v, %v", ok, err, resp)
		}
		ops = ops[:0]
	}
	for k, v := range kvs {
		ops = append(ops, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVSet, Key: strings.TrimPrefix(k, "/"), Value: []byte(v)}})
		if len(ops) == 64 {
			flush()
		}
	}
	flush()
}
