package zkwire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Jute is ZooKeeper's encoding: big-endian ints (4 bytes) and longs (8),
// booleans as one byte, buffers and strings as an int length (-1 for
// null) then the bytes, vectors as an int count (-1 for null) then the
// elements. The types below are those of zookeeper.jute this client uses.

// errShort reports a message that ends before its fields do.
var errShort = errors.New("zkwire: message too short")

// encoder appends jute fields to a byte slice.
type encoder struct{ b []byte }

func (e *encoder) int32(v int32) { e.b = binary.BigEndian.AppendUint32(e.b, uint32(v)) }
func (e *encoder) int64(v int64) { e.b = binary.BigEndian.AppendUint64(e.b, uint64(v)) }

func (e *encoder) bool(v bool) {
	if v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}

// buffer encodes b; nil is jute's null buffer.
func (e *encoder) buffer(b []byte) {
	if b == nil {
		e.int32(-1)
		return
	}
	e.int32(int32(len(b)))
	e.b = append(e.b, b...)
}

func (e *encoder) string(s string) {
	e.int32(int32(len(s)))
	e.b = append(e.b, s...)
}

// strings encodes ss; nil is jute's null vector.
func (e *encoder) strings(ss []string) {
	if ss == nil {
		e.int32(-1)
		return
	}
	e.int32(int32(len(ss)))
	for _, s := range ss {
		e.string(s)
	}
}

// decoder reads jute fields from a byte slice. The first error sticks:
// later reads return zero values, and err says what went wrong.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b) {
		d.err = errShort
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) int32() int32 {
	b := d.take(4)
	if d.err != nil {
		return 0
	}
	return int32(binary.BigEndian.Uint32(b))
}

func (d *decoder) int64() int64 {
	b := d.take(8)
	if d.err != nil {
		return 0
	}
	return int64(binary.BigEndian.Uint64(b))
}

func (d *decoder) bool() bool {
	b := d.take(1)
	if d.err != nil {
		return false
	}
	switch b[0] {
	case 0:
		return false
	case 1:
		return true
	}
	d.err = fmt.Errorf("zkwire: boolean byte %#x", b[0])
	return false
}

// buffer returns a copy of a buffer; jute's null buffer is nil.
func (d *decoder) buffer() []byte {
	n := d.int32()
	if d.err != nil || n == -1 {
		return nil
	}
	b := d.take(int(n))
	if d.err != nil {
		return nil
	}
	return append([]byte{}, b...)
}

// string returns a string; jute's null string is "".
func (d *decoder) string() string {
	n := d.int32()
	if d.err != nil || n == -1 {
		return ""
	}
	return string(d.take(int(n)))
}

// strings returns a vector of strings; jute's null vector is nil.
func (d *decoder) strings() []string {
	n := d.int32()
	if d.err != nil || n == -1 {
		return nil
	}
	// Each string takes at least its 4-byte length: a count beyond what
	// is left is malformed, and must not size an allocation.
	if n < 0 || int(n) > len(d.b)/4 {
		d.err = errShort
		return nil
	}
	ss := make([]string, 0, n)
	for range n {
		s := d.string()
		if d.err != nil {
			return nil
		}
		ss = append(ss, s)
	}
	return ss
}

// Stat is a znode's stat (zookeeper.jute's data.Stat).
type Stat struct {
	Czxid          int64 // the transaction that created the znode
	Mzxid          int64 // the transaction that last set its data
	Ctime          int64 // creation time, ms since the epoch
	Mtime          int64 // last data change, ms since the epoch
	Version        int32 // data version
	Cversion       int32 // children version
	Aversion       int32 // ACL version
	EphemeralOwner int64 // owning session of an ephemeral znode, else 0
	DataLength     int32 // length of the data
	NumChildren    int32 // number of children
	Pzxid          int64 // the transaction that last changed the children
}

func (s *Stat) decode(d *decoder) {
	s.Czxid = d.int64()
	s.Mzxid = d.int64()
	s.Ctime = d.int64()
	s.Mtime = d.int64()
	s.Version = d.int32()
	s.Cversion = d.int32()
	s.Aversion = d.int32()
	s.EphemeralOwner = d.int64()
	s.DataLength = d.int32()
	s.NumChildren = d.int32()
	s.Pzxid = d.int64()
}

func (s *Stat) encode(e *encoder) {
	e.int64(s.Czxid)
	e.int64(s.Mzxid)
	e.int64(s.Ctime)
	e.int64(s.Mtime)
	e.int32(s.Version)
	e.int32(s.Cversion)
	e.int32(s.Aversion)
	e.int64(s.EphemeralOwner)
	e.int32(s.DataLength)
	e.int32(s.NumChildren)
	e.int64(s.Pzxid)
}

// MaxZxid returns the highest transaction id of s.
func (s *Stat) MaxZxid() int64 { return max(s.Czxid, s.Mzxid, s.Pzxid) }

// Operation codes (ZooDefs.OpCode) and special xids of the requests this
// client sends.
const (
	opGetData       int32 = 4
	opPing          int32 = 11
	opGetChildren2  int32 = 12
	opAuth          int32 = 100
	opRemoveWatches int32 = 18
	opAddWatch      int32 = 106
	opCloseSession  int32 = -11

	xidNotification int32 = -1
	xidPing         int32 = -2
	xidAuth         int32 = -4
)

// replyHeader starts every message of the server after the handshake.
type replyHeader struct {
	Xid  int32
	Zxid int64
	Err  int32
}

func (h *replyHeader) decode(d *decoder) {
	h.Xid = d.int32()
	h.Zxid = d.int64()
	h.Err = d.int32()
}

func (h *replyHeader) encode(e *encoder) {
	e.int32(h.Xid)
	e.int64(h.Zxid)
	e.int32(h.Err)
}

// connectRequest opens or resumes a session; ReadOnly is the byte that
// clients since 3.4 append and servers read when present.
type connectRequest struct {
	ProtocolVersion int32
	LastZxidSeen    int64
	TimeOut         int32 // ms
	SessionID       int64
	Passwd          []byte
	ReadOnly        bool
}

func (r *connectRequest) encode(e *encoder) {
	e.int32(r.ProtocolVersion)
	e.int64(r.LastZxidSeen)
	e.int32(r.TimeOut)
	e.int64(r.SessionID)
	e.buffer(r.Passwd)
	e.bool(r.ReadOnly)
}

// connectResponse answers a connectRequest; a TimeOut of 0 or less means
// that the session asked for expired. The trailing ReadOnly byte is
// optional.
type connectResponse struct {
	ProtocolVersion int32
	TimeOut         int32 // ms
	SessionID       int64
	Passwd          []byte
	ReadOnly        bool
}

func (r *connectResponse) decode(d *decoder) {
	r.ProtocolVersion = d.int32()
	r.TimeOut = d.int32()
	r.SessionID = d.int64()
	r.Passwd = d.buffer()
	if d.err == nil && len(d.b) > 0 {
		r.ReadOnly = d.bool()
	}
}

func (r *connectResponse) encode(e *encoder) {
	e.int32(r.ProtocolVersion)
	e.int32(r.TimeOut)
	e.int64(r.SessionID)
	e.buffer(r.Passwd)
	e.bool(r.ReadOnly)
}

// getDataResponse answers getData.
type getDataResponse struct {
	Data []byte
	Stat Stat
}

func (r *getDataResponse) decode(d *decoder) {
	r.Data = d.buffer()
	r.Stat.decode(d)
}

func (r *getDataResponse) encode(e *encoder) {
	e.buffer(r.Data)
	r.Stat.encode(e)
}

// getChildren2Response answers getChildren2.
type getChildren2Response struct {
	Children []string
	Stat     Stat
}

func (r *getChildren2Response) decode(d *decoder) {
	r.Children = d.strings()
	r.Stat.decode(d)
}

func (r *getChildren2Response) encode(e *encoder) {
	e.strings(r.Children)
	r.Stat.encode(e)
}

// watcherEvent is the body of a notification (xid -1).
type watcherEvent struct {
	Type  int32
	State int32
	Path  string
}

func (w *watcherEvent) decode(d *decoder) {
	w.Type = d.int32()
	w.State = d.int32()
	w.Path = d.string()
}

func (w *watcherEvent) encode(e *encoder) {
	e.int32(w.Type)
	e.int32(w.State)
	e.string(w.Path)
}
