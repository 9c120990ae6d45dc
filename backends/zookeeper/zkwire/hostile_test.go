package zkwire

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// waitLong bounds the waits of these tests: generous, for a loaded machine.
const waitLong = 60 * time.Second

// fakeServer listens on a free loopback port and serves one connection:
// it answers the connect request with a session of timeout, then runs
// script. It is a fake on purpose: it sends what a broken or hostile
// server can and a real ZooKeeper cannot be made to send.
func fakeServer(t *testing.T, timeout time.Duration, script func(nc net.Conn, r *bufio.Reader)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		nc, err := l.Accept()
		if err != nil {
			return
		}
		defer func() { _ = nc.Close() }() // the script is over
		r := bufio.NewReader(nc)
		if _, err := readFrame(r); err != nil {
			return
		}
		var e encoder
		(&connectResponse{TimeOut: int32(timeout.Milliseconds()), SessionID: 1, Passwd: make([]byte, 16)}).encode(&e)
		if writeFrame(nc, e.b) != nil {
			return
		}
		script(nc, r)
	}()
	t.Cleanup(func() {
		_ = l.Close()
		wg.Wait()
	})
	return l.Addr().String()
}

func dialFake(t *testing.T, addr string) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitLong)
	defer cancel()
	c, err := Dial(ctx, Config{Servers: []string{addr}, SessionTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestNotificationFlood has the server send more notifications than the
// queue holds, with no one taking them, before it answers a request: the
// connection ends with ErrConnectionLost before the answer, rather than
// queueing without bound.
func TestNotificationFlood(t *testing.T) {
	path := "/" + strings.Repeat("p", 60<<10)
	n := maxQueued/len(path) + 2
	addr := fakeServer(t, 30*time.Second, func(nc net.Conn, r *bufio.Reader) {
		req, err := readFrame(r) // the test's Get
		if err != nil {
			return
		}
		w := bufio.NewWriter(nc)
		for range n {
			var e encoder
			(&replyHeader{Xid: xidNotification, Zxid: 5}).encode(&e)
			(&watcherEvent{Type: int32(EventNodeDataChanged), State: 3, Path: path}).encode(&e)
			if writeFrame(w, e.b) != nil {
				return
			}
		}
		if w.Flush() != nil {
			return
		}
		d := decoder{b: req}
		xid := d.int32()
		var e encoder
		(&replyHeader{Xid: xid, Zxid: 6}).encode(&e)
		(&getDataResponse{Data: []byte("v")}).encode(&e)
		_ = writeFrame(nc, e.b) // the client may be gone: that is the point
		_, _ = readFrame(r)     // until the client closes
	})
	c := dialFake(t, addr)
	ctx, cancel := context.WithTimeout(t.Context(), waitLong)
	defer cancel()
	_, _, err := c.Get(ctx, "/k")
	if !errors.Is(err, ErrConnectionLost) {
		t.Fatalf("Get after %d notifications of %d bytes, none taken = %v, want ErrConnectionLost", n, len(path), err)
	}
	size := 0
	for _, ev := range c.Events() {
		size += len(ev.Path) + eventCost
	}
	if size > maxQueued {
		t.Errorf("%d bytes of notifications queued, more than %d", size, maxQueued)
	}
}

// TestSilentServer has the server take the session, then read without
// ever answering, as a frozen server or a half-open connection does: a
// request without a deadline fails with ErrConnectionLost once the read
// timeout (two thirds of the session timeout) passes, and Close returns.
func TestSilentServer(t *testing.T) {
	addr := fakeServer(t, 600*time.Millisecond, func(_ net.Conn, r *bufio.Reader) {
		for {
			if _, err := readFrame(r); err != nil {
				return
			}
		}
	})
	c := dialFake(t, addr)
	errc := make(chan error, 1)
	go func() {
		_, _, err := c.Get(context.Background(), "/k")
		errc <- err
	}()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrConnectionLost) {
			t.Errorf("Get from a silent server = %v, want ErrConnectionLost", err)
		}
	case <-time.After(waitLong):
		t.Fatalf("Get from a silent server still waiting after %v", waitLong)
	}
	<-c.Done()
	if err := c.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
}

// TestSlowAnswer has the server send an answer a byte at a time, taking
// three times the read timeout in all, with bytes far more often than
// the read timeout: the connection lives, as ZooKeeper's own client
// counts the time since the last byte heard, not since the message began.
func TestSlowAnswer(t *testing.T) {
	addr := fakeServer(t, 3*time.Second, func(nc net.Conn, r *bufio.Reader) { // read timeout 2s
		req, err := readFrame(r)
		if err != nil {
			return
		}
		d := decoder{b: req}
		xid := d.int32()
		var e encoder
		(&replyHeader{Xid: xid, Zxid: 6}).encode(&e)
		(&getDataResponse{Data: make([]byte, 20)}).encode(&e)
		var frame encoder
		frame.buffer(e.b) // the length, then the message
		step := 6 * time.Second / time.Duration(len(frame.b))
		for _, b := range frame.b {
			if _, err := nc.Write([]byte{b}); err != nil {
				return
			}
			time.Sleep(step)
		}
		for {
			if _, err := readFrame(r); err != nil { // pings, until the client closes
				return
			}
		}
	})
	c := dialFake(t, addr)
	ctx, cancel := context.WithTimeout(t.Context(), waitLong)
	defer cancel()
	if _, _, err := c.Get(ctx, "/k"); err != nil {
		t.Errorf("Get of an answer sent slowly but steadily = %v, want it", err)
	}
}
