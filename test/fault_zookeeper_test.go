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
	conn *zk.Conn // the test's own client, for put
}

// startZookeeperFault starts a ZooKeeper server for one case of the fault
// suite; it is killed when the test ends.
func startZookeeperFault(t *testing.T) faultServer {
	t.Helper()
	s := zktest.Start(t, zktest.Options{})
	return &zkFault{s: s, conn: s.Client(t)}
}

func (z *zkFault) kvconfArgs() []string {
	return []string{"-backend", "zookeeper", "-node", z.s.Addr}
}

// put sets key, creating it and its parents when missing, retrying until
// the server takes it. The test's client reconnects by itself, within
// about a second of the server answering (go-zookeeper waits 1 s after
// trying every server), and starts a new session when the old one expired.
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
// client could resume from (a watch is one-shot, and a session that lost
// its connection gets its watches set again with the last zxid it saw),
// so there is nothing to compact.
func (z *zkFault) compact(_ *testing.T) bool { return false }
