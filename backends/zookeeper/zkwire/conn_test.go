package zkwire_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"go.uber.org/goleak"

	"github.com/kvconf/kvconf/backends/zookeeper/zktest"
	"github.com/kvconf/kvconf/backends/zookeeper/zkwire"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitTimeout bounds every wait: generous, for a loaded machine.
const waitTimeout = 60 * time.Second

// deadAddr returns a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close() // only its port was wanted
	return addr
}

func dial(t *testing.T, cfg zkwire.Config) *zkwire.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	c, err := zkwire.Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestReadsAndWatch runs the client against a real ZooKeeper: a dead
// server first in the list, reads, a persistent recursive watch and its
// notifications, in order with the answers.
func TestReadsAndWatch(t *testing.T) {
	s := zktest.Start(t, zktest.Options{})
	admin := s.Client(t)
	zktest.Put(t, admin, "/w/a", "1", nil)
	c := dial(t, zkwire.Config{Servers: []string{deadAddr(t), s.Addr}, SessionTimeout: 10 * time.Second})
	if c.Server() != s.Addr {
		t.Errorf("Server() = %s, want %s", c.Server(), s.Addr)
	}
	ctx := t.Context()
	data, st, err := c.Get(ctx, "/w/a")
	if err != nil || string(data) != "1" || st.NumChildren != 0 || st.Czxid == 0 {
		t.Fatalf("Get(/w/a) = %q, %+v, %v", data, st, err)
	}
	kids, st, err := c.Children(ctx, "/w")
	if err != nil || !slices.Equal(kids, []string{"a"}) || st.NumChildren != 1 {
		t.Fatalf("Children(/w) = %q, %+v, %v", kids, st, err)
	}
	if _, _, err := c.Get(ctx, "/w/none"); !errors.Is(err, zkwire.ErrNoNode) {
		t.Fatalf("Get(/w/none) = %v, want ErrNoNode", err)
	}
	if err := c.AddWatch(ctx, "/w", zkwire.PersistentRecursive); err != nil {
		t.Fatal(err)
	}
	if err := c.AddWatch(ctx, "/not/yet", zkwire.PersistentRecursive); err != nil {
		t.Fatalf("AddWatch on a missing znode: %v", err)
	}
	zktest.Put(t, admin, "/w/a", "2", nil)
	zktest.Put(t, admin, "/w/b/c", "3", nil)
	zktest.DeleteTree(t, admin, "/w/b")
	zktest.Put(t, admin, "/not/yet/x", "4", nil)
	zktest.Put(t, admin, "/elsewhere", "5", nil)
	// A read after the changes: their notifications came before its answer.
	if _, _, err := c.Get(ctx, "/w/a"); err != nil {
		t.Fatal(err)
	}
	type ev struct {
		typ  zkwire.EventType
		path string
	}
	var got []ev
	for _, e := range c.Events() {
		got = append(got, ev{e.Type, e.Path})
	}
	want := []ev{
		{zkwire.EventNodeDataChanged, "/w/a"},
		{zkwire.EventNodeCreated, "/w/b"},
		{zkwire.EventNodeCreated, "/w/b/c"},
		{zkwire.EventNodeDeleted, "/w/b/c"},
		{zkwire.EventNodeDeleted, "/w/b"},
		{zkwire.EventNodeCreated, "/not/yet"},
		{zkwire.EventNodeCreated, "/not/yet/x"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("events = %v\nwant %v", got, want)
	}
	if c.LastZxid() <= st.Pzxid {
		t.Errorf("LastZxid() = %d, want past %d", c.LastZxid(), st.Pzxid)
	}
}

// TestSession resumes a session on a second connection, then closes it
// from elsewhere: the client reports the expiry, and resuming it again
// fails with ErrSessionExpired.
func TestSession(t *testing.T) {
	s := zktest.Start(t, zktest.Options{})
	cfg := zkwire.Config{Servers: []string{s.Addr}, SessionTimeout: 10 * time.Second}
	c := dial(t, cfg)
	sess := c.Session()
	// A second connection resumes the session; the first one is dropped
	// by the server.
	cfg.Resume = &sess
	c2 := dial(t, cfg)
	if c2.Session().ID != sess.ID {
		t.Fatalf("resumed session %#x, want %#x", c2.Session().ID, sess.ID)
	}
	select {
	case <-c.Done():
		if !errors.Is(c.Err(), zkwire.ErrConnectionLost) {
			t.Errorf("first connection ended with %v, want ErrConnectionLost", c.Err())
		}
	case <-time.After(waitTimeout):
		t.Fatal("the first connection lives on after its session moved")
	}
	s.CloseSession(t, sess.ID, sess.Passwd)
	select {
	case <-c2.Done():
	case <-time.After(waitTimeout):
		t.Fatal("the connection lives on after its session was closed")
	}
	if _, _, err := c2.Get(t.Context(), "/"); err == nil {
		t.Error("Get on an ended connection succeeded")
	}
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	if _, err := zkwire.Dial(ctx, cfg); !errors.Is(err, zkwire.ErrSessionExpired) {
		t.Errorf("Dial resuming a closed session = %v, want ErrSessionExpired", err)
	}
}

// TestAuth adds digest credentials: a znode whose ACL grants them is read.
func TestAuth(t *testing.T) {
	s := zktest.Start(t, zktest.Options{})
	admin := s.Client(t)
	if err := admin.AddAuth("digest", []byte("u:right")); err != nil {
		t.Fatal(err)
	}
	zktest.Put(t, admin, "/sec", "x", zk.DigestACL(zk.PermAll, "u", "right"))
	ok := dial(t, zkwire.Config{Servers: []string{s.Addr}, SessionTimeout: 10 * time.Second,
		Auth: []zkwire.Auth{{Scheme: "digest", Data: []byte("u:right")}}})
	if data, _, err := ok.Get(t.Context(), "/sec"); err != nil || string(data) != "x" {
		t.Errorf("Get with the credentials = %q, %v", data, err)
	}
	bad := dial(t, zkwire.Config{Servers: []string{s.Addr}, SessionTimeout: 10 * time.Second,
		Auth: []zkwire.Auth{{Scheme: "digest", Data: []byte("u:wrong")}}})
	if _, _, err := bad.Get(t.Context(), "/sec"); !errors.Is(err, zkwire.ErrNoAuth) {
		t.Errorf("Get with wrong credentials = %v, want ErrNoAuth", err)
	}
}

// TestUnreachable dials servers that are all down: an error, no hang.
func TestUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	_, err := zkwire.Dial(ctx, zkwire.Config{Servers: []string{deadAddr(t), deadAddr(t)}, SessionTimeout: time.Second})
	if err == nil || ctx.Err() != nil {
		t.Errorf("Dial to dead servers = %v, want an error before the deadline", err)
	}
}

// TestClose closes a connection: calls fail with ErrClosed, the session
// is gone on the server, and Close is idempotent.
func TestClose(t *testing.T) {
	s := zktest.Start(t, zktest.Options{})
	cfg := zkwire.Config{Servers: []string{s.Addr}, SessionTimeout: 10 * time.Second}
	c := dial(t, cfg)
	sess := c.Session()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	if _, _, err := c.Get(t.Context(), "/"); !errors.Is(err, zkwire.ErrClosed) {
		t.Errorf("Get after Close = %v, want ErrClosed", err)
	}
	cfg.Resume = &sess
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	if _, err := zkwire.Dial(ctx, cfg); !errors.Is(err, zkwire.ErrSessionExpired) {
		t.Errorf("Dial resuming a closed session = %v, want ErrSessionExpired", err)
	}
}
