package test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
)

// faultServer is a backend server that the fault suite takes down and
// brings back, run as a process of its own. The suite's cases run against
// each one in faultServers (etcd, ZooKeeper); another server (Consul)
// plugs in with an implementation and an entry there. A server that keeps
// no history of changes says so from compact, and the cases that need one
// skip it.
type faultServer interface {
	// kvconfArgs are the kvconf flags that select the server as the
	// backend.
	kvconfArgs() []string
	// put sets key to value, retrying until the server takes it, and
	// returns when it did: the moment the server answers again.
	put(t *testing.T, key, value string)
	// kill kills the server with SIGKILL and waits until it is gone.
	kill(t *testing.T)
	// start starts it again on the same address and data directory, and
	// returns at once (put waits until it answers).
	start(t *testing.T)
	// signal sends sig (SIGSTOP, SIGCONT) to the server.
	signal(t *testing.T, sig syscall.Signal)
	// compact discards the server's history of changes up to now, and
	// reports false when the server keeps none.
	compact(t *testing.T) bool
}

// faultServers are the servers the fault suite runs against.
var faultServers = []struct {
	name  string
	start func(t *testing.T) faultServer
}{
	{"etcd", startEtcdProc},
	{"zookeeper", startZookeeperFault},
}

var (
	etcdProcOnce sync.Once
	etcdProcBin  string
	etcdProcErr  error
)

// etcdServerBin returns $ETCD_BIN when set, and otherwise
// test/internal/etcdproc built once next to kvconfBin: both take the same
// flags.
func etcdServerBin(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("ETCD_BIN"); bin != "" {
		return bin
	}
	etcdProcOnce.Do(func() {
		bin := filepath.Join(filepath.Dir(kvconfBin), "etcdproc")
		out, err := exec.Command("go", "build", "-o", bin, "./internal/etcdproc").CombinedOutput()
		if err != nil {
			etcdProcErr = fmt.Errorf("build etcdproc: %w\n%s", err, out)
			return
		}
		etcdProcBin = bin
	})
	if etcdProcErr != nil {
		t.Fatal(etcdProcErr)
	}
	return etcdProcBin
}

// etcdProc is a one-member etcd cluster in a process of its own.
type etcdProc struct {
	bin, url string
	args     []string
	cli      *clientv3.Client

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	out  bytes.Buffer  // its output, for failure reports
}

// startEtcdProc starts an etcd process on fresh loopback ports and data
// directory, and kills it when the test ends.
func startEtcdProc(t *testing.T) faultServer {
	t.Helper()
	client, peer := "http://"+freePort(t), "http://"+freePort(t)
	p := &etcdProc{
		bin: etcdServerBin(t),
		url: client,
		args: []string{
			"--name", "fault", "--data-dir", filepath.Join(t.TempDir(), "data"),
			"--listen-client-urls", client, "--advertise-client-urls", client,
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
			"--initial-cluster", "fault=" + peer, "--unsafe-no-fsync",
		},
	}
	p.start(t)
	// The test's own client reconnects at least every 100 ms, so that it
	// sees the server answer again as soon as it does.
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{client},
		DialTimeout: 5 * time.Second,
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           grpcbackoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.2, MaxDelay: 100 * time.Millisecond},
			MinConnectTimeout: time.Second,
		})},
	})
	if err != nil {
		t.Fatal(err)
	}
	p.cli = cli
	t.Cleanup(func() {
		_ = cli.Close() // the test is over
		p.kill(t)
		if t.Failed() {
			p.mu.Lock()
			t.Logf("etcd output:\n%s", p.out.String())
			p.mu.Unlock()
		}
	})
	return p
}

func (p *etcdProc) kvconfArgs() []string { return []string{"-backend", "etcd", "-node", p.url} }

func (p *etcdProc) start(t *testing.T) {
	t.Helper()
	cmd := exec.Command(p.bin, p.args...)
	w := &procWriter{p: p}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait() // killed on purpose, or at the end
		close(done)
	}()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
}

// procWriter collects the output of an etcd process.
type procWriter struct{ p *etcdProc }

func (w *procWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.out.Write(b)
}

func (p *etcdProc) kill(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL) // it may have exited already
	select {
	case <-done:
	case <-time.After(faultDeadline):
		t.Fatalf("etcd still running %v after SIGKILL", faultDeadline)
	}
}

func (p *etcdProc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal etcd: %v", err)
	}
}

func (p *etcdProc) put(t *testing.T, key, value string) {
	t.Helper()
	deadline := time.Now().Add(faultDeadline)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		_, err := p.cli.Put(ctx, key, value)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("put %s: etcd does not answer after %v: %v", key, faultDeadline, err)
		}
		time.Sleep(10 * time.Millisecond) // polling the test's own server
	}
}

func (p *etcdProc) compact(t *testing.T) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), faultDeadline)
	defer cancel()
	resp, err := p.cli.Get(ctx, "/", clientv3.WithCountOnly())
	if err != nil {
		t.Fatalf("compact: %v", err)
	}
	if _, err := p.cli.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatalf("compact: %v", err)
	}
	return true
}
