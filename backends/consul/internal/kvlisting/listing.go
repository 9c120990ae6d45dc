// Package kvlisting decodes Consul's recursive KV listings.
//
// A recursive KV listing is the largest answer Consul gives: 100,000 keys
// are about 19 MB of JSON (a dev agent indents it). Consul's API library
// reads the whole body, then decodes it with encoding/json into KVPair
// structs, which costs more time than Consul takes to build it and
// several times its size in memory. kvconf needs only each pair's Key and
// Value, so [Decoder.Decode] decodes the body as it arrives, through a
// window of a few hundred kilobytes, and keeps only those.
package kvlisting

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"unicode/utf8"

	"github.com/kvconf/kvconf/backends"
)

// ErrMalformed is wrapped by the errors of a listing that is not JSON of
// the shape Consul gives.
var ErrMalformed = errors.New("malformed KV listing")

// Decoder decodes listings with [Decoder.Decode], keeping its buffers for
// the next listing: a watch lists its prefixes again and again. The zero
// Decoder is ready; it is safe for concurrent use.
type Decoder struct {
	buffers sync.Pool // of *buffers
}

// buffers are the buffers of a [decoder] that outlive it.
type buffers struct {
	window, page []byte
	spans        []span
}

// Decode reads a recursive KV listing, the body of Consul's
// GET /v1/kv/<prefix>?recurse, from r as it arrives, and returns its pairs,
// in the order of the body (Consul's order: sorted by key): "/" + each key,
// and its value (decoded from base64; "" for null). The result is that of
// json.Unmarshal of the whole body into []struct{Key *string; Value
// []byte} whenever that succeeds, and an error wrapping [ErrMalformed]
// whenever it fails; other errors are r's.
//
// prev, which may be nil, is a previous listing of the same prefix,
// sorted by key, as Decode returned it: the keys and values it holds
// take its strings (see [decoder]). Decode never changes prev.
func (d *Decoder) Decode(r io.Reader, prev []backends.KV) ([]backends.KV, error) {
	dec := newDecoder(r, prev)
	b, _ := d.buffers.Get().(*buffers)
	if b == nil {
		b = new(buffers)
	}
	dec.buf, dec.page, dec.spans = b.window, b.page, b.spans
	kvs, err := dec.decode()
	if len(dec.buf) <= windowMax && cap(dec.page) <= 2*pageBytes {
		// Not grown for a pair of hundreds of kilobytes: worth keeping.
		b.window, b.page, b.spans = dec.buf, dec.page[:0], dec.spans[:0]
		d.buffers.Put(b)
	}
	return kvs, err
}

// Sizes of a [decoder]'s buffers.
const (
	// windowMin is the first size of the window on the body; it doubles
	// at each read up to windowMax, and grows beyond only for a pair
	// larger than that.
	windowMin = 16 << 10
	windowMax = 256 << 10
	// lookahead is how many bytes the window holds from the start of a
	// pair on (unless the body ends sooner) before the pair is read: a
	// pair cut by the end of the window is read again once whole.
	lookahead = 16 << 10
	// pageBytes is about how many bytes of keys and values share one
	// string, of at most pagePairs pairs.
	pageBytes = 64 << 10
	pagePairs = 2048
)

// decoder decodes a recursive KV listing, a JSON array of objects whose
// Key is a string and Value a base64 string or null, from a reader,
// through a window of a few hundred kilobytes: the body is never whole in
// memory. It reads the common shape quickly (see [scan.pair]) and hands
// any pair of another shape (escapes in its key, unexpected fields) to
// encoding/json, so that its result is that of json.Unmarshal of the
// whole body into []struct{Key *string; Value []byte} whenever that
// succeeds, with "/" before each key, and an error wrapping [ErrMalformed]
// whenever it fails. Pairs come out in the order of the body.
//
// A key or value that a previous listing of the prefix holds takes that
// listing's string: a listing that changed little since the previous one
// costs little memory, and the client and its caller, which holds the
// previous listing's strings, keep one copy of them. The other keys and
// values of a page of pairs share one string: a listing costs one
// allocation per page rather than two per pair.
type decoder struct {
	r   io.Reader
	eof bool   // r has nothing more
	buf []byte // the window; s reads buf[:n], n the bytes read into it
	s   scan

	// Sizes (see [windowMin]); fields so that tests can make them small.
	winMin, winMax, ahead, pageMax, pageLen int

	prev   []backends.KV // the previous listing, sorted by key
	cursor int           // the index in prev of the next key to compare
	page   []byte        // keys and values of the pairs since the last flush
	spans  []span        // where their keys and values are in page
	kvs    []backends.KV // the pairs flushed, while they fit its capacity
	pages  []flushed     // the pages flushed after those of kvs
	slow   int           // pairs read by encoding/json
}

// flushed is a page of pairs that did not fit the capacity of the
// decoder's kvs: its keys and values in one string, and where each pair's
// are. Kept so until the end, when the pairs are known and their list is
// allocated once, a page costs half the memory of its pairs as
// [backends.KV]s: a first listing, which has no previous one to size kvs
// by, is not held twice.
type flushed struct {
	all   string
	spans []pageSpan
	kvs   []backends.KV // instead of spans, for a page too large for them
}

// pageSpan is a [span] in the little space of a flushed page: where a
// pair's key and value lie in the page's string, or with k0 < 0, that the
// key is that of the previous listing's pair -k0-1, and with v0 < 0 too,
// that the value is that pair's too.
type pageSpan struct{ k0, k1, v0, v1 int32 }

// compact returns sp as a pageSpan, or false if the offsets of a page
// that large do not fit one; [pageSpan.span] turns it back.
func compact(sp span) (pageSpan, bool) {
	if max(sp.k1, sp.v1) > math.MaxInt32 || sp.prev > math.MaxInt32 {
		return pageSpan{}, false
	}
	ps := pageSpan{int32(sp.k0), int32(sp.k1), int32(sp.v0), int32(sp.v1)}
	if sp.prev > 0 {
		ps.k0 = -int32(sp.prev)
		if sp.same {
			ps.v0 = -1
		}
	}
	return ps, true
}

// span returns the span that ps was made from by [compact].
func (ps pageSpan) span() span {
	if ps.k0 >= 0 {
		return span{k0: int(ps.k0), k1: int(ps.k1), v0: int(ps.v0), v1: int(ps.v1)}
	}
	return span{v0: int(ps.v0), v1: int(ps.v1), prev: int(-ps.k0), same: ps.v0 < 0}
}

// span is where a pair's key and value lie in a page, or in the previous
// listing.
type span struct {
	k0, k1, v0, v1 int
	prev           int  // 1 + the index in the previous listing of the same key; 0 if none
	same           bool // the value is that of the previous listing too
}

// newDecoder returns a decoder of r; prev is a previous listing of the
// same prefix (or nil).
func newDecoder(r io.Reader, prev []backends.KV) *decoder {
	return &decoder{
		r:      r,
		winMin: windowMin, winMax: windowMax, ahead: lookahead, pageMax: pageBytes, pageLen: pagePairs,
		prev: prev,
		// Room for a few more pairs than the previous listing held.
		kvs: make([]backends.KV, 0, len(prev)+len(prev)/32),
	}
}

// malformed returns an error wrapping ErrMalformed.
func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// decode reads the whole listing. Errors that do not wrap [ErrMalformed]
// are the reader's.
func (d *decoder) decode() ([]backends.KV, error) {
	c, ok, err := d.next()
	if err != nil {
		return nil, err
	}
	if !ok || c != '[' {
		return d.whole()
	}
	d.s.i++
	if c, ok, err = d.next(); err != nil {
		return nil, err
	}
	for !ok || c != ']' {
		if err := d.pair(); err != nil {
			return nil, err
		}
		if c, ok, err = d.next(); err != nil {
			return nil, err
		}
		switch {
		case ok && c == ',':
			d.s.i++
			if c, ok, err = d.next(); err != nil {
				return nil, err
			}
			if ok && c == ']' {
				return nil, malformed("a comma before ']'")
			}
		case ok && c == ']':
		default:
			return nil, malformed("pair %d not followed by ',' or ']'", d.pairs())
		}
	}
	d.s.i++
	if _, ok, err := d.next(); err != nil {
		return nil, err
	} else if ok {
		return nil, malformed("data after the array")
	}
	d.flush()
	return d.list(), nil
}

// fill moves the unread bytes of the window to its start and reads on
// until the window is full, or the body ends. The window doubles from
// winMin up to winMax at each fill, and beyond when it cannot hold want
// unread bytes.
func (d *decoder) fill(want int) error {
	n := copy(d.buf, d.s.b[d.s.i:])
	size := len(d.buf)
	if size < d.winMax {
		size = min(max(2*size, d.winMin), d.winMax)
	}
	if size < want {
		size = max(want, 2*len(d.buf))
	}
	if size > len(d.buf) {
		buf := make([]byte, size)
		copy(buf, d.buf[:n])
		d.buf = buf
	}
	for n < len(d.buf) && !d.eof {
		m, err := d.r.Read(d.buf[n:])
		n += m
		if errors.Is(err, io.EOF) {
			d.eof = true
		} else if err != nil {
			return err
		}
	}
	d.s = scan{b: d.buf[:n]}
	return nil
}

// next skips white space, reading on as needed, and returns the byte
// after it, or false at the end of the body.
func (d *decoder) next() (byte, bool, error) {
	for {
		d.s.ws()
		if d.s.i < len(d.s.b) {
			return d.s.b[d.s.i], true, nil
		}
		if d.eof {
			return 0, false, nil
		}
		if err := d.fill(1); err != nil {
			return 0, false, err
		}
	}
}

// pair reads the pair that starts at the window's position, quickly when
// it can, and with encoding/json otherwise.
func (d *decoder) pair() error {
	if len(d.s.b)-d.s.i < d.ahead && !d.eof {
		if err := d.fill(d.ahead); err != nil {
			return err
		}
	}
	start, n := d.s.i, len(d.page)
	page, sp, ok := d.s.pair(d.page)
	if !ok {
		// Cut by the end of the window, or of another shape: read it
		// again, whole.
		d.s.i, page = start, page[:n]
		end, err := d.extent()
		if err != nil {
			return err
		}
		whole := scan{b: d.s.b[:end], i: d.s.i}
		if page, sp, ok = whole.pair(page); !ok || whole.i != end {
			page, sp, err = slowPair(page[:n], d.s.b[d.s.i:end])
			if err != nil {
				return err
			}
			d.slow++
		}
		d.s.i = end
	}
	d.page, sp = d.reuse(page, n, sp)
	d.spans = append(d.spans, sp)
	if len(d.page) >= d.pageMax || len(d.spans) >= d.pageLen {
		d.flush()
	}
	return nil
}

// reuse looks up the key of sp, a pair read into page from page[start:]
// on, in the previous listing, and returns page without the bytes that
// the previous listing's strings replace.
func (d *decoder) reuse(page []byte, start int, sp span) ([]byte, span) {
	key := page[sp.k0:sp.k1]
	for d.cursor < len(d.prev) && d.prev[d.cursor].Key < string(key) {
		d.cursor++
	}
	if d.cursor == len(d.prev) || d.prev[d.cursor].Key != string(key) {
		return page, sp
	}
	old := d.prev[d.cursor]
	d.cursor++
	sp.prev = d.cursor
	if old.Value == string(page[sp.v0:sp.v1]) {
		sp.same = true
		return page[:start], sp
	}
	n := copy(page[start:], page[sp.v0:sp.v1])
	sp.v0, sp.v1 = start, start+n
	return page[:start+n], sp
}

// flush moves the pairs read since the last flush to kvs, or once kvs is
// full, to a [flushed] page, with their keys and values in one string.
// Rather than grow kvs, which would copy it again and again, [decoder.list]
// puts the pages after it once they are all read.
func (d *decoder) flush() {
	if len(d.spans) == 0 {
		return
	}
	all := string(d.page)
	switch {
	case len(d.pages) == 0 && len(d.kvs)+len(d.spans) <= cap(d.kvs):
		for _, sp := range d.spans {
			d.kvs = append(d.kvs, d.kv(all, sp))
		}
	default:
		d.pages = append(d.pages, d.compactPage(all))
	}
	d.page, d.spans = d.page[:0], d.spans[:0]
}

// compactPage returns the pairs since the last flush, in all, as a
// flushed page: with spans, or with pairs when they do not fit spans.
func (d *decoder) compactPage(all string) flushed {
	f := flushed{all: all, spans: make([]pageSpan, len(d.spans))}
	for i, sp := range d.spans {
		var ok bool
		if f.spans[i], ok = compact(sp); !ok {
			f.spans, f.kvs = nil, make([]backends.KV, len(d.spans))
			for i, sp := range d.spans {
				f.kvs[i] = d.kv(all, sp)
			}
			return f
		}
	}
	return f
}

// kv returns the pair at sp, whose key and value are in all unless the
// previous listing's pair gives them.
func (d *decoder) kv(all string, sp span) backends.KV {
	switch {
	case sp.prev == 0:
		return backends.KV{Key: all[sp.k0:sp.k1], Value: all[sp.v0:sp.v1]}
	case sp.same:
		return d.prev[sp.prev-1]
	default:
		return backends.KV{Key: d.prev[sp.prev-1].Key, Value: all[sp.v0:sp.v1]}
	}
}

// pairs returns the number of pairs read so far.
func (d *decoder) pairs() int {
	n := len(d.kvs) + len(d.spans)
	for _, p := range d.pages {
		n += len(p.spans) + len(p.kvs)
	}
	return n
}

// list returns every pair flushed, in order, in one slice.
func (d *decoder) list() []backends.KV {
	if len(d.pages) == 0 {
		return d.kvs
	}
	kvs := make([]backends.KV, 0, d.pairs())
	kvs = append(kvs, d.kvs...)
	for _, p := range d.pages {
		for _, ps := range p.spans {
			kvs = append(kvs, d.kv(p.all, ps.span()))
		}
		kvs = append(kvs, p.kvs...)
	}
	return kvs
}

// extent returns the end in the window of the JSON object that starts at
// its position, reading on as needed. It only matches braces and brackets
// outside strings: the object is checked by whoever reads it.
func (d *decoder) extent() (int, error) {
	b := d.s.b[d.s.i:]
	if len(b) == 0 || b[0] != '{' {
		return 0, malformed("pair %d is not an object", d.pairs())
	}
	depth, str := 0, false
	for j := 0; ; {
	walk:
		for ; j < len(b); j++ {
			c := b[j]
			if str {
				switch c {
				case '\\':
					if j+1 == len(b) {
						break walk // the escaped byte is not read yet
					}
					j++
				case '"':
					str = false
				}
				continue
			}
			switch c {
			case '"':
				str = true
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return d.s.i + j + 1, nil
				}
			}
		}
		if d.eof {
			return 0, malformed("the body ends within pair %d", d.pairs())
		}
		if err := d.fill(len(b) + 1); err != nil {
			return 0, err
		}
		b = d.s.b[d.s.i:]
	}
}

// jsonPair is a pair of a listing as encoding/json reads it.
type jsonPair struct {
	Key   *string
	Value []byte
}

// appendTo appends "/" + the pair's key, and its value, to page.
func (p jsonPair) appendTo(page []byte) ([]byte, span, error) {
	if p.Key == nil {
		return page, span{}, malformed("a pair has no Key")
	}
	sp := span{k0: len(page)}
	page = append(append(page, '/'), *p.Key...)
	sp.k1, sp.v0 = len(page), len(page)
	page = append(page, p.Value...)
	sp.v1 = len(page)
	return page, sp, nil
}

// slowPair decodes obj, one pair of a listing, with encoding/json, and
// appends its key and value to page.
func slowPair(page, obj []byte) ([]byte, span, error) {
	var p jsonPair
	if err := json.Unmarshal(obj, &p); err != nil {
		return page, span{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return p.appendTo(page)
}

// whole decodes a body that does not start as an array with
// encoding/json, whole: it is an error, or null, which holds no pair.
func (d *decoder) whole() ([]backends.KV, error) {
	rest, err := io.ReadAll(d.r)
	if err != nil {
		return nil, err
	}
	var pairs []jsonPair
	if err := json.Unmarshal(append(d.s.b[d.s.i:], rest...), &pairs); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	for _, p := range pairs {
		var sp span
		if d.page, sp, err = p.appendTo(d.page); err != nil {
			return nil, err
		}
		d.spans = append(d.spans, sp)
	}
	d.flush()
	return d.list(), nil
}

// scan reads JSON tokens from b, skipping white space before each. A
// token cut by the end of b does not read.
type scan struct {
	b []byte
	i int
}

// spaces8 is eight spaces read as a little-endian uint64.
const spaces8 = 0x2020202020202020

// ws skips white space, eight spaces at a time where it can: a dev agent
// indents its answers.
func (s *scan) ws() {
	b, i := s.b, s.i
	for i < len(b) {
		c := b[i]
		if c > ' ' {
			break
		}
		if c == ' ' {
			if i+8 <= len(b) && binary.LittleEndian.Uint64(b[i:]) == spaces8 {
				i += 8
				continue
			}
		} else if c != '\n' && c != '\t' && c != '\r' {
			break
		}
		i++
	}
	s.i = i
}

// skip consumes c if it is the next token.
func (s *scan) skip(c byte) bool {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// literal consumes lit (null, true, false) if it is the next token.
func (s *scan) literal(lit string) bool {
	s.ws()
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		return false
	}
	s.i += len(lit)
	return true
}

// Fields of a pair that [scan.pair] reads.
const (
	fieldOther = iota
	fieldKey
	fieldValue
)

// pair reads one pair of the common shape, an object of plain strings
// (see [scan.plainString]), numbers and literals whose Key is a string
// and Value a base64 string or null, and appends "/" + the key and the
// value to page. It reports false, with page grown but not otherwise
// changed, on any other shape, and when the object is cut by the end of
// b.
func (s *scan) pair(page []byte) ([]byte, span, bool) {
	if !s.skip('{') {
		return page, span{}, false
	}
	sp := span{k0: -1}
	for {
		// {} has no Key, and does not read.
		f, ok := s.name()
		if !ok {
			return page, span{}, false
		}
		switch f {
		case fieldKey:
			raw, ok := s.plainString()
			if !ok || sp.k0 >= 0 {
				return page, span{}, false // a second Key: encoding/json takes the last
			}
			sp.k0 = len(page)
			page = append(append(page, '/'), raw...)
			sp.k1 = len(page)
		case fieldValue:
			// A later Value wins, as with encoding/json; the bytes of an
			// earlier one stay unused in page.
			sp.v0 = len(page)
			if !s.literal("null") {
				if page, ok = s.base64(page); !ok {
					return page, span{}, false
				}
			}
			sp.v1 = len(page)
		default:
			if !s.skipValue() {
				return page, span{}, false
			}
		}
		s.ws()
		if s.i == len(s.b) {
			return page, span{}, false
		}
		s.i++
		if c := s.b[s.i-1]; c == '}' {
			break
		} else if c != ',' {
			return page, span{}, false
		}
	}
	if sp.k0 < 0 {
		return page, span{}, false
	}
	return page, sp, true
}

// name reads the name of an object's member and the colon after it, and
// returns which field it names. A name that encoding/json would match
// with Key or Value without being exactly that (its matching ignores
// case, with Unicode's folding) does not read.
func (s *scan) name() (int, bool) {
	s.ws()
	if f, n := known(s.b[s.i:]); n > 0 {
		s.i += n
		return f, s.skip(':')
	}
	raw, ok := s.plainString()
	if !ok || !ascii(raw) || bytes.EqualFold(raw, []byte("key")) || bytes.EqualFold(raw, []byte("value")) {
		return 0, false
	}
	return fieldOther, s.skip(':')
}

// known returns the field named at the start of b, quoted, and the length
// of the name with its quotes, when it is one of the fields that Consul
// gives; otherwise 0.
func known(b []byte) (field, n int) {
	if len(b) < 2 || b[0] != '"' {
		return 0, 0
	}
	var name string
	switch b[1] {
	case 'K':
		name, field = `"Key"`, fieldKey
	case 'V':
		name, field = `"Value"`, fieldValue
	case 'L':
		name = `"LockIndex"`
	case 'F':
		name = `"Flags"`
	case 'C':
		name = `"CreateIndex"`
	case 'M':
		name = `"ModifyIndex"`
	case 'S':
		name = `"Session"`
	default:
		return 0, 0
	}
	if len(b) < len(name) || string(b[:len(name)]) != name {
		return 0, 0
	}
	return field, len(name)
}

// ascii reports whether b is all ASCII.
func ascii(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// plainString consumes a string of valid UTF-8 without escapes or control
// characters and returns its content, in b; any other string is refused,
// for encoding/json to read with its rules.
func (s *scan) plainString() ([]byte, bool) {
	if !s.skip('"') {
		return nil, false
	}
	rest := s.b[s.i:]
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return nil, false
	}
	raw := rest[:end]
	plain := true
	for _, c := range raw {
		if c < 0x20 || c == '\\' {
			return nil, false // a control character, or an escape (maybe of the quote found)
		}
		if c >= utf8.RuneSelf {
			plain = false
		}
	}
	if !plain && !utf8.Valid(raw) {
		return nil, false
	}
	s.i += end + 1
	return raw, true
}

// base64 consumes a string of standard base64 and appends the bytes it
// encodes to page. A string with anything else in it (an escape, white
// space) is refused.
func (s *scan) base64(page []byte) ([]byte, bool) {
	if !s.skip('"') {
		return page, false
	}
	rest := s.b[s.i:]
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return page, false
	}
	raw := rest[:end]
	n := len(page)
	// The decoder refuses every byte outside the alphabet, a backslash
	// or a control character among them, but skips CR and LF, which
	// JSON does not allow raw in a string: the length tells.
	page, err := base64.StdEncoding.AppendDecode(page, raw)
	if err != nil || base64.StdEncoding.EncodedLen(len(page)-n) != len(raw) {
		return page[:n], false
	}
	s.i += end + 1
	return page, true
}

// skipValue consumes a string, a number or a literal, as Consul's other
// fields of a pair are.
func (s *scan) skipValue() bool {
	s.ws()
	if s.i >= len(s.b) {
		return false
	}
	switch c := s.b[s.i]; {
	case c == '"':
		_, ok := s.plainString()
		return ok
	case c == 'n':
		return s.literal("null")
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	}
	return false
}

// number consumes a JSON number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scan) number() bool {
	b, i := s.b, s.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(b, i)
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		if i = digits(b, i+1); b[i-1] == '.' {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			return false
		}
		i = j
	}
	s.i = i
	return true
}

// digits returns the index of the first byte of b from i on that is not
// a decimal digit, or len(b).
func digits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}
