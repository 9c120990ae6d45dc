package consul

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"
)

// A recursive KV listing is the largest answer Consul gives: 100,000 keys
// are about 19 MB of JSON. The API library decodes it with encoding/json
// into KVPair structs, which costs more than Consul takes to build it.
// kvconf needs only each pair's Key and Value, so [listingTransport] takes
// the body of a listing that [Client.list] marks and decodes it with
// [parseListing], leaving the API library an empty array: every other part
// of the request (address, token, datacenter, namespace, TLS, headers,
// status and index handling) stays the library's.

// listingSlot receives the entries of one listing request.
type listingSlot struct {
	entries []entry
	err     error // the body could not be read or decoded
}

// slotKey is the context key of a *listingSlot.
type slotKey struct{}

// withSlot returns a copy of ctx whose listing request, if answered with
// status 200, has its body decoded into s.
func withSlot(ctx context.Context, s *listingSlot) context.Context {
	return context.WithValue(ctx, slotKey{}, s)
}

// listingTransport decodes the body of the requests whose context carries
// a *listingSlot (see the comment above); others pass through.
type listingTransport struct {
	base http.RoundTripper
}

// RoundTrip implements [http.RoundTripper].
func (t listingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r)
	s, _ := r.Context().Value(slotKey{}).(*listingSlot)
	if err != nil || s == nil || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	var buf bytes.Buffer
	if resp.ContentLength > 0 {
		buf.Grow(int(resp.ContentLength))
	}
	_, err = buf.ReadFrom(resp.Body)
	if cerr := resp.Body.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err // as a failed request: the node is tried again later
	}
	s.entries, s.err = parseListing(buf.Bytes())
	resp.Body = io.NopCloser(strings.NewReader("[]"))
	resp.ContentLength = 2
	resp.Header.Del("Content-Length")
	return resp, nil
}

// CloseIdleConnections closes the idle connections of the base transport.
func (t listingTransport) CloseIdleConnections() {
	if ci, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

// entry is one pair of a Consul listing.
type entry struct {
	full  string // "/" + the Consul key
	value string
}

// errListing is wrapped by the errors of a listing that is not JSON of
// the shape Consul gives.
var errListing = errors.New("malformed KV listing")

// parseListing decodes a recursive KV listing: a JSON array of objects
// whose Key is a string and Value a base64 string or null. Keys and
// values share two allocations. It reads the common shape quickly and
// hands anything else (escapes in a value, unexpected tokens) to
// encoding/json, so the result is encoding/json's whenever both succeed.
func parseListing(b []byte) ([]entry, error) {
	if es, ok := fastListing(b); ok {
		return es, nil
	}
	var pairs []struct {
		Key   *string
		Value []byte
	}
	if err := json.Unmarshal(b, &pairs); err != nil {
		return nil, fmt.Errorf("%w: %w", errListing, err)
	}
	es := make([]entry, 0, len(pairs))
	for _, p := range pairs {
		if p.Key == nil {
			return nil, fmt.Errorf("%w: a pair has no Key", errListing)
		}
		es = append(es, entry{full: "/" + *p.Key, value: string(p.Value)})
	}
	return es, nil
}

// span is where an entry's key and value lie in fastListing's buffers.
type span struct{ k0, k1, v0, v1 int }

// fastListing decodes b as parseListing does, or reports false when b is
// not of the common shape.
func fastListing(b []byte) ([]entry, bool) {
	s := scan{b: b}
	if !s.skip('[') {
		return nil, false
	}
	// Consul's pairs take 80 bytes and more besides their key and value;
	// the buffers double as they grow, to copy less than append would.
	spans := make([]span, 0, len(b)/160+1)
	keys := make([]byte, 0, len(b)/8+1)
	vals := make([]byte, 0, len(b)/8+1)
	if s.skip(']') {
		return []entry{}, s.end()
	}
	for {
		if !s.skip('{') {
			return nil, false
		}
		sp := span{k0: -1}
		for first := true; !s.skip('}'); first = false {
			if !first && !s.skip(',') {
				return nil, false
			}
			name, ok := s.plainString()
			if !ok || !s.skip(':') {
				return nil, false
			}
			switch string(name) { // no allocation
			case "Key":
				raw, ok := s.plainString()
				if !ok || sp.k0 >= 0 {
					return nil, false
				}
				sp.k0 = len(keys)
				keys = append(double(keys, 1+len(raw)), '/')
				keys = append(keys, raw...)
				sp.k1 = len(keys)
			case "Value":
				sp.v0 = len(vals)
				if s.literal("null") {
					sp.v1 = sp.v0
					break
				}
				raw, ok := s.plainString()
				if !ok {
					return nil, false
				}
				var err error
				vals = double(vals, base64.StdEncoding.DecodedLen(len(raw)))
				if vals, err = base64.StdEncoding.AppendDecode(vals, raw); err != nil {
					return nil, false
				}
				sp.v1 = len(vals)
			default:
				if !s.skipValue() {
					return nil, false
				}
			}
		}
		if sp.k0 < 0 {
			return nil, false
		}
		spans = append(spans, sp)
		if s.skip(']') {
			break
		}
		if !s.skip(',') {
			return nil, false
		}
	}
	if !s.end() {
		return nil, false
	}
	ks, vs := string(keys), string(vals)
	es := make([]entry, len(spans))
	for i, sp := range spans {
		es[i] = entry{full: ks[sp.k0:sp.k1], value: vs[sp.v0:sp.v1]}
	}
	return es, true
}

// double returns buf with room for n more bytes, doubling its capacity
// when it has to grow.
func double(buf []byte, n int) []byte {
	if len(buf)+n <= cap(buf) {
		return buf
	}
	bigger := make([]byte, len(buf), max(2*cap(buf), len(buf)+n))
	copy(bigger, buf)
	return bigger
}

// scan reads JSON tokens from b, skipping white space before each.
type scan struct {
	b []byte
	i int
}

func (s *scan) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
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

// end reports whether nothing but white space is left.
func (s *scan) end() bool {
	s.ws()
	return s.i == len(s.b)
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
	if bytes.IndexByte(raw, '\\') >= 0 {
		return nil, false // an escape, maybe of the quote found
	}
	ascii := true
	for _, c := range raw {
		if c < 0x20 {
			return nil, false
		}
		if c >= 0x80 {
			ascii = false
		}
	}
	if !ascii && !utf8.Valid(raw) {
		return nil, false
	}
	s.i += end + 1
	return raw, true
}

// skipValue consumes a string, number, literal, or a flat object or array
// of those, as Consul's other fields of a pair are.
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
	peek := func() byte {
		if s.i < len(s.b) {
			return s.b[s.i]
		}
		return 0
	}
	digits := func() bool {
		start := s.i
		for c := peek(); c >= '0' && c <= '9'; c = peek() {
			s.i++
		}
		return s.i > start
	}
	if peek() == '-' {
		s.i++
	}
	if peek() == '0' {
		s.i++
	} else if !digits() {
		return false
	}
	if peek() == '.' {
		s.i++
		if !digits() {
			return false
		}
	}
	if c := peek(); c == 'e' || c == 'E' {
		s.i++
		if c := peek(); c == '+' || c == '-' {
			s.i++
		}
		return digits()
	}
	return true
}
