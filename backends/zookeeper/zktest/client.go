package zktest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

// Client returns a client of the server, for a test to change znodes
// with; it is closed when the test ends.
func (s *Server) Client(t testing.TB) *zk.Conn {
	t.Helper()
	conn, _, err := zk.Connect([]string{s.Addr}, 30*time.Second, zk.WithLogInfo(false), zk.WithLogger(quiet{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	return conn
}

type quiet struct{}

func (quiet) Printf(string, ...any) {}

// Put sets the data of the znode at path to value, creating it and its
// missing parents (with no data), with acl (or the world's full access
// when acl is nil).
func Put(t testing.TB, conn *zk.Conn, path, value string, acl []zk.ACL) {
	t.Helper()
	if err := put(conn, path, value, acl); err != nil {
		t.Fatalf("zktest: put %s: %v", path, err)
	}
}

func put(conn *zk.Conn, path, value string, acl []zk.ACL) error {
	if acl == nil {
		acl = zk.WorldACL(zk.PermAll)
	}
	for i := 1; i < len(path); i++ {
		if path[i] != '/' {
			continue
		}
		if _, err := conn.Create(path[:i], nil, 0, acl); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return err
		}
	}
	_, err := conn.Create(path, []byte(value), 0, acl)
	if errors.Is(err, zk.ErrNodeExists) {
		_, err = conn.Set(path, []byte(value), -1)
	}
	return err
}

// Delete deletes the znode at path, then its parents up to (not
// including) the first component of path, such as /kvconftest, while they
// have no children left, so that no parent turns into a key.
func Delete(t testing.TB, conn *zk.Conn, path string) {
	t.Helper()
	if err := conn.Delete(path, -1); err != nil {
		t.Fatalf("zktest: delete %s: %v", path, err)
	}
	for dir := parent(path); strings.Count(dir, "/") > 1; dir = parent(dir) {
		kids, _, err := conn.Children(dir)
		if err != nil || len(kids) > 0 {
			return
		}
		if err := conn.Delete(dir, -1); err != nil && !errors.Is(err, zk.ErrNotEmpty) && !errors.Is(err, zk.ErrNoNode) {
			t.Fatalf("zktest: delete %s: %v", dir, err)
		}
	}
}

// DeleteTree deletes the znode at path and every znode under it; a
// missing path is not an error.
func DeleteTree(t testing.TB, conn *zk.Conn, path string) {
	t.Helper()
	if err := deleteTree(conn, path); err != nil {
		t.Fatalf("zktest: delete tree %s: %v", path, err)
	}
}

func deleteTree(conn *zk.Conn, path string) error {
	kids, _, err := conn.Children(path)
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, k := range kids {
		if err := deleteTree(conn, path+"/"+k); err != nil {
			return err
		}
	}
	if err := conn.Delete(path, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
		return err
	}
	return nil
}

// Load creates n leaves dir/00000000 ... under dir, each holding size
// bytes, many requests at a time.
func Load(t testing.TB, conn *zk.Conn, dir string, n, size int) {
	t.Helper()
	if err := put(conn, dir, "", nil); err != nil {
		t.Fatal(err)
	}
	value := []byte(strings.Repeat("v", size))
	acl := zk.WorldACL(zk.PermAll)
	const batch = 500
	for i := 0; i < n; i += batch {
		var ops []any
		for j := i; j < min(i+batch, n); j++ {
			ops = append(ops, &zk.CreateRequest{Path: fmt.Sprintf("%s/%08d", dir, j), Data: value, Acl: acl})
		}
		if _, err := conn.Multi(ops...); err != nil {
			t.Fatalf("zktest: load %s: %v", dir, err)
		}
	}
}

// Leaves returns the leaves under dir with their data, read with plain
// requests of the client library, as a reference.
func Leaves(conn *zk.Conn, dir string) (map[string]string, error) {
	out := map[string]string{}
	var walk func(p string) error
	walk = func(p string) error {
		kids, _, err := conn.Children(p)
		if errors.Is(err, zk.ErrNoNode) {
			return nil
		}
		if err != nil {
			return err
		}
		if len(kids) == 0 {
			data, _, err := conn.Get(p)
			if errors.Is(err, zk.ErrNoNode) {
				return nil
			}
			out[p] = string(data)
			return err
		}
		slices.Sort(kids)
		for _, k := range kids {
			if err := walk(p + "/" + k); err != nil {
				return err
			}
		}
		return nil
	}
	return out, walk(dir)
}

func parent(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i <= 0 {
		return "/"
	}
	return p[:i]
}

// CloseSession closes the session id, whose password is passwd, on the
// server, as another client that takes the session over and closes it
// would: the client that had the session finds it expired when it next
// reaches the server.
func (s *Server) CloseSession(t testing.TB, id int64, passwd []byte) {
	t.Helper()
	if err := closeSession(s.Addr, id, passwd); err != nil {
		t.Fatalf("zktest: close session %#x: %v", id, err)
	}
}

// closeSession speaks ZooKeeper's protocol: a connect request for the
// session, then a close-session request.
func closeSession(addr string, id int64, passwd []byte) error {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }() // the answer was read, or the error is returned
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	// ConnectRequest: protocolVersion, lastZxidSeen, timeOut, sessionId,
	// passwd (length-prefixed), readOnly.
	var req []byte
	req = binary.BigEndian.AppendUint32(req, 0)
	req = binary.BigEndian.AppendUint64(req, 0)
	req = binary.BigEndian.AppendUint32(req, 30000)
	req = binary.BigEndian.AppendUint64(req, uint64(id))
	req = binary.BigEndian.AppendUint32(req, uint32(len(passwd)))
	req = append(req, passwd...)
	req = append(req, 0)
	if err := writeFrame(c, req); err != nil {
		return err
	}
	resp, err := readFrame(c)
	if err != nil {
		return err
	}
	// ConnectResponse: protocolVersion, timeOut, sessionId, ...
	if len(resp) < 16 || int64(binary.BigEndian.Uint64(resp[8:16])) != id {
		return errors.New("the server did not hand the session over")
	}
	// RequestHeader: xid, type closeSession (-11).
	var cl []byte
	cl = binary.BigEndian.AppendUint32(cl, 1)
	cl = binary.BigEndian.AppendUint32(cl, uint32(0xFFFFFFF5))
	if err := writeFrame(c, cl); err != nil {
		return err
	}
	for { // until the answer to xid 1 (pings and events may come first)
		resp, err := readFrame(c)
		if err != nil {
			return err
		}
		if len(resp) >= 4 && binary.BigEndian.Uint32(resp[:4]) == 1 {
			return nil
		}
	}
}

func writeFrame(w io.Writer, b []byte) error {
	_, err := w.Write(binary.BigEndian.AppendUint32(nil, uint32(len(b))))
	if err == nil {
		_, err = w.Write(b)
	}
	return err
}

func readFrame(r io.Reader) ([]byte, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	b := make([]byte, binary.BigEndian.Uint32(n[:]))
	_, err := io.ReadFull(r, b)
	return b, err
}
