package zkwire

import (
	"bytes"
	"reflect"
	"testing"
)

// message is a jute message the client decodes.
type message interface {
	decode(*decoder)
	encode(*encoder)
}

// kinds returns a zero value of each message kind the client decodes
// from the server, in the order FuzzDecode's kind byte picks them.
func kinds() []func() message {
	return []func() message{
		func() message { return new(replyHeader) },
		func() message { return new(connectResponse) },
		func() message { return new(getDataResponse) },
		func() message { return new(getChildren2Response) },
		func() message { return new(watcherEvent) },
		func() message { return new(Stat) },
	}
}

func encode(m message) []byte {
	var e encoder
	m.encode(&e)
	return e.b
}

// FuzzDecode decodes bytes as each message the server sends: no panic,
// no allocation sized by an unchecked count, and what decodes encodes
// back to bytes that decode to the same message.
func FuzzDecode(f *testing.F) {
	st := Stat{Czxid: 1, Mzxid: 2, Ctime: 3, Mtime: 4, Version: 5, Cversion: 6, Aversion: 7, DataLength: 3, NumChildren: 2, Pzxid: 9}
	f.Add(byte(0), encode(&replyHeader{Xid: -1, Zxid: 42, Err: 0}))
	f.Add(byte(1), encode(&connectResponse{TimeOut: 10000, SessionID: 7, Passwd: make([]byte, 16)}))
	f.Add(byte(1), encode(&connectResponse{TimeOut: 10000, SessionID: 7, Passwd: make([]byte, 16)})[:32])
	f.Add(byte(2), encode(&getDataResponse{Data: []byte("value"), Stat: st}))
	f.Add(byte(2), encode(&getDataResponse{Stat: st}))
	f.Add(byte(3), encode(&getChildren2Response{Children: []string{"a", "bb"}, Stat: st}))
	f.Add(byte(3), []byte{0x7f, 0xff, 0xff, 0xff})
	f.Add(byte(4), encode(&watcherEvent{Type: 1, State: 3, Path: "/app/db"}))
	f.Add(byte(4), []byte{0, 0, 0, 1, 0, 0, 0, 3, 0xff, 0xff, 0xff, 0xff})
	f.Add(byte(5), encode(&st))
	f.Fuzz(func(t *testing.T, kind byte, b []byte) {
		ks := kinds()
		newMsg := ks[int(kind)%len(ks)]
		m := newMsg()
		d := decoder{b: b}
		m.decode(&d)
		if d.err != nil {
			return
		}
		if len(d.b) > len(b) {
			t.Fatalf("decoder has %d bytes left of %d", len(d.b), len(b))
		}
		again := encode(m)
		m2 := newMsg()
		d2 := decoder{b: again}
		m2.decode(&d2)
		if d2.err != nil || len(d2.b) != 0 {
			t.Fatalf("%T %+v: its encoding %x does not decode (%v, %d bytes left)", m, m, again, d2.err, len(d2.b))
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("%T: decoded %+v, re-encoded and decoded %+v", m, m, m2)
		}
	})
}

// TestDecodeShort checks that every message cut short is an error.
func TestDecodeShort(t *testing.T) {
	st := Stat{Czxid: 1, NumChildren: 2}
	for _, m := range []message{
		&replyHeader{Xid: 1, Zxid: 2, Err: -101},
		&getDataResponse{Data: []byte("value"), Stat: st},
		&getChildren2Response{Children: []string{"a", "bb"}, Stat: st},
		&watcherEvent{Type: 2, State: 3, Path: "/x"},
	} {
		b := encode(m)
		for n := range len(b) {
			d := decoder{b: b[:n]}
			m.decode(&d)
			if d.err == nil {
				t.Errorf("%T decoded from %d of its %d bytes", m, n, len(b))
			}
		}
	}
}

// TestFrameLimit checks that a frame longer than maxFrame is refused
// before its body is allocated.
func TestFrameLimit(t *testing.T) {
	if _, err := readFrame(bytes.NewReader([]byte{0x7f, 0xff, 0xff, 0xff})); err == nil {
		t.Error("readFrame took a frame of 2 GiB")
	}
}
