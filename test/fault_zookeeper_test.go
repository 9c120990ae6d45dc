package test

import (
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/kvconf/kvconf/backends/zookeeper/zktest"
)

// zkFault is the fault suite's ZooKeeper: Debian's server, run by zktest
// as a java process of its own on a free port with a data directory of
// its own (skipped when missing, failing under CI). Its tick is 200 ms, so
// a session lasts at most 4 s: an outage longer than that expires
// kvconf's session, and kvconf must walk its prefixes again.
type zkFault struct {
	s    *zktest.Server
	conn *zk.Conn // the test's own client, for put; replaced after a failure
}

// startZookeeperFault starts a ZooKeeper server for one case of the fault
// suite; it is killed when the test ends.
func startZookeeperFault(t *testing.T) faultServer {
	t.Helper()
	z := &zkFault{s: zktest.Start(t, zktest.Options{})}
	z.conn = z.connect(t)
	t.Cleanup(func() { z.conn.Close() })
	return z
}

// connect returns a new client of the server; it connects in the
// background.
func (z *zkFault) connect(t *testing.T) *zk.Conn {
	t.Helper()
	conn, _, err := zk.Connect([]string{z.s.Addr}, 30*time.Second, zk.WithLogInfo(false), zk.WithLogger(zkQuiet{}))
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

// zkQuiet discards the messages of the test's ZooKeeper clients.
type zkQuiet struct{}

func (zkQuiet) Printf(string, ...any) {}

func (z *zkFault) kvconfArgs() []string {
	return []string{"-backend", "zookeeper", "-node", z.s.Addr}
}

// put sets key, creating it and its parents when missing, retrying until
// the server takes it. After a failure it retries with a new client:
// go-zookeeper waits a second before it dials a server again, which kvconf
// has to wait but put must not, since it marks the moment the server
// answers again; a new client dials at once.
func (z *zkFault) put(t *testing.T, key, value string) {
	t.Helper()
	deadline := time.Now().Add(faultDeadline)
	for {
		err := zkPut(z.conn, key, value)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("put %s: zookeeper does not answer after %v: %v", key, faultDeadline, err)
		}
		z.conn.Close()
		z.conn = z.connect(t)
		time.Sleep(10 * time.Millisecond) // polling the test's own server
	}
}

// zkPut sets the data of the znode at key, creating it and its missing
// parents.
func zkPut(conn *zk.Conn, key, value string) error {
	_, err := conn.Set(key, []byte(value), -1)
	if !errors.Is(err, zk.ErrNoNode) {
		return err
	}
	acl := zk.WorldACL(zk.PermAll)
	for i := 1; i < len(key); i++ {
		if key[i] != '/' {
			continue
		}
		if _, err := conn.Create(key[:i], nil, 0, acl); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return err
		}
	}
	if _, err := conn.Create(key, []byte(value), 0, acl); !errors.Is(err, zk.ErrNodeExists) {
		return err
	}
	_, err = conn.Set(key, []byte(value), -1)
	return err
}

// kill kills the server with SIGKILL and waits until it is gone.
func (z *zkFault) kill(_ *testing.T) { z.s.Stop() }

// start starts the server again on the same port and data directory. It
// returns once the server answers (zktest waits for it), which is earlier
// than put would.
func (z *zkFault) start(_ *testing.T) { z.s.Restart() }

func (z *zkFault) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := z.s.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// compact reports false: ZooKeeper keeps no history of changes that a
// client could resume from (kvconf's persistent recursive watch lives with
// its connection, and a new connection reads the prefixes again), so there
// is nothing to compact.
func (z *zkFault) compact(_ *testing.T) bool { return false }
