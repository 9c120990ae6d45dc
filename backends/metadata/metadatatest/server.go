// Package metadatatest is a test server for the metadata backend: an
// in-memory JSON document served on 127.0.0.1 the way rancher-metadata
// serves its answers, with the parts of its API that kvconf uses:
//
//   - GET <path> answers the whole document, and GET <path>/a/b the
//     sub-tree at a/b, array items found by index or by their "name" or
//     "uuid" member; 404 when there is none;
//   - GET <path>/version answers the document's version, a JSON string;
//     with ?wait=true&value=V&maxWait=S it answers once the version is no
//     longer V, or after S seconds (60 when absent or 0, 120 at most);
//   - with [Options.ETag], answers carry an ETag and a request with a
//     matching If-None-Match gets 304.
//
// It is for tests only: it holds the document in memory and serves
// anyone who connects.
package metadatatest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options shape a [Server].
type Options struct {
	// Path is the base path of the API; empty means "/latest".
	Path string
	// NoVersion drops the /version endpoint (it answers 404), as on a
	// plain server of JSON.
	NoVersion bool
	// NoSubPaths serves the whole document only; sub-paths answer 404.
	NoSubPaths bool
	// ETag sends an ETag with each answer and answers 304 to a matching
	// If-None-Match.
	ETag bool
}

// Stats counts the requests a [Server] answered.
type Stats struct {
	// Requests counts every request.
	Requests int
	// Gets counts the requests for the document or a sub-tree, by path
	// relative to the base path ("" for the whole document).
	Gets map[string]int
	// NotModified counts the 304 answers.
	NotModified int
	// LongPolls counts the requests to /version with wait=true.
	LongPolls int
}

// Server serves a JSON document. Its methods are safe for concurrent use.
type Server struct {
	opts Options
	addr string

	mu      sync.Mutex
	srv     *httptest.Server
	quit    chan struct{} // closed when srv stops
	doc     any           // decoded with UseNumber; nil until set
	version int
	changed chan struct{} // closed at the next change
	down    bool
	delay   time.Duration
	stats   Stats
	header  http.Header // of the last request
}

// NewServer starts a server on 127.0.0.1 with an empty document ({}).
func NewServer(opts Options) *Server {
	if opts.Path == "" {
		opts.Path = "/latest"
	}
	s := &Server{opts: opts, doc: map[string]any{}, version: 1, changed: make(chan struct{})}
	s.stats.Gets = map[string]int{}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.quit = make(chan struct{})
	s.addr = s.srv.Listener.Addr().String()
	return s
}

// URL returns the base URL, such as http://127.0.0.1:41234/latest.
func (s *Server) URL() string { return "http://" + s.addr + s.opts.Path }

// Close stops the server; long polls under way are cut.
func (s *Server) Close() {
	s.mu.Lock()
	srv, quit := s.srv, s.quit
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		close(quit)
		srv.Close()
	}
}

// Restart stops the server, cutting the long polls under way, and starts
// it again on the same address with the same document, at a new version,
// as a new process would be.
func (s *Server) Restart() error {
	s.Close()
	l, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("metadatatest: listen again on %s: %w", s.addr, err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	srv.Listener = l
	srv.Start()
	s.mu.Lock()
	s.srv, s.quit = srv, make(chan struct{})
	s.bump()
	s.mu.Unlock()
	return nil
}

// SetDown makes the server answer 503 to every request (down) or serve
// again.
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

// SetDelay makes the server wait d before answering each request.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// Stats returns the counts of the requests answered so far.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Gets = make(map[string]int, len(s.stats.Gets))
	for k, v := range s.stats.Gets {
		st.Gets[k] = v
	}
	return st
}

// Header returns the headers of the last request.
func (s *Server) Header() http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.header.Clone()
}

// Version returns the document's version.
func (s *Server) Version() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strconv.Itoa(s.version)
}

// SetJSON replaces the document, and moves the version.
func (s *Server) SetJSON(doc []byte) error {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("metadatatest: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.doc = v
	s.bump()
	return nil
}

// Touch moves the version without changing the document.
func (s *Server) Touch() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bump()
}

// Set sets the string at key, a path of object members such as
// /a/b/c, making the objects on the way; and moves the version.
func (s *Server) Set(key, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	segs := split(key)
	root, ok := s.doc.(map[string]any)
	if !ok {
		root = map[string]any{}
		s.doc = root
	}
	m := root
	for _, seg := range segs[:len(segs)-1] {
		next, ok := m[seg].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[seg] = next
		}
		m = next
	}
	m[segs[len(segs)-1]] = value
	s.bump()
}

// Delete removes the member at key, a path of object members, and the
// objects it leaves empty; and moves the version.
func (s *Server) Delete(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var del func(m map[string]any, segs []string)
	del = func(m map[string]any, segs []string) {
		if len(segs) == 1 {
			delete(m, segs[0])
			return
		}
		next, ok := m[segs[0]].(map[string]any)
		if !ok {
			return
		}
		del(next, segs[1:])
		if len(next) == 0 {
			delete(m, segs[0])
		}
	}
	if root, ok := s.doc.(map[string]any); ok {
		del(root, split(key))
	}
	s.bump()
}

func split(key string) []string { return strings.Split(strings.TrimPrefix(key, "/"), "/") }

// bump moves the version and wakes the long polls. s.mu is held.
func (s *Server) bump() {
	s.version++
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.stats.Requests++
	s.header = r.Header.Clone()
	down, delay, quit := s.down, s.delay, s.quit
	s.mu.Unlock()
	if delay > 0 {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		case <-quit:
			panic(http.ErrAbortHandler)
		}
	}
	if down {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), s.opts.Path)
	if !ok || rest != "" && rest[0] != '/' {
		notFound(w)
		return
	}
	rest = strings.TrimRight(rest, "/")
	if rest == "/version" && !s.opts.NoVersion {
		s.serveVersion(w, r, quit)
		return
	}
	var segs []string
	if rest != "" {
		if s.opts.NoSubPaths {
			notFound(w)
			return
		}
		for _, seg := range strings.Split(rest[1:], "/") {
			u, err := url.PathUnescape(seg)
			if err != nil {
				http.Error(w, "bad path", http.StatusBadRequest)
				return
			}
			segs = append(segs, u)
		}
	}
	s.mu.Lock()
	s.stats.Gets["/"+strings.Join(segs, "/")]++
	if len(segs) == 0 {
		s.stats.Gets[""]++
		delete(s.stats.Gets, "/")
	}
	v, found := lookup(s.doc, segs)
	var body []byte
	var err error
	if found {
		body, err = json.Marshal(v)
	}
	s.mu.Unlock()
	if !found {
		notFound(w)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if s.opts.ETag {
		sum := sha256.Sum256(body)
		etag := `"` + hex.EncodeToString(sum[:8]) + `"`
		w.Header().Set("ETag", etag)
		if r.Header.Get("If-None-Match") == etag {
			s.mu.Lock()
			s.stats.NotModified++
			s.mu.Unlock()
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	_, _ = w.Write(body) // the client may be gone
}

func notFound(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusNotFound)
	_, _ = w.Write([]byte(`{"code":404,"message":"Not found","type":"error"}`))
}

// serveVersion answers /version, holding a long poll until the version
// moves, maxWait passes, the client leaves or the server stops.
func (s *Server) serveVersion(w http.ResponseWriter, r *http.Request, quit chan struct{}) {
	q := r.URL.Query()
	if q.Get("wait") == "true" && q.Has("value") {
		maxWait, _ := strconv.Atoi(q.Get("maxWait"))
		if maxWait <= 0 {
			maxWait = 60
		}
		maxWait = min(maxWait, 120)
		ctx, cancel := context.WithTimeout(r.Context(), time.Duration(maxWait)*time.Second)
		defer cancel()
		s.mu.Lock()
		s.stats.LongPolls++
		s.mu.Unlock()
	wait:
		for {
			s.mu.Lock()
			v, changed := strconv.Itoa(s.version), s.changed
			s.mu.Unlock()
			if v != q.Get("value") {
				break
			}
			select {
			case <-changed:
			case <-quit:
				panic(http.ErrAbortHandler) // cut the connection, as a crash would
			case <-ctx.Done():
				if r.Context().Err() != nil {
					return // the client left
				}
				break wait // maxWait passed: answer the same version
			}
		}
	}
	s.mu.Lock()
	body, _ := json.Marshal(strconv.Itoa(s.version))
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// lookup returns the value at the path segs of v.
func lookup(v any, segs []string) (any, bool) {
	for _, seg := range segs {
		switch t := v.(type) {
		case map[string]any:
			next, ok := t[seg]
			if !ok {
				return nil, false
			}
			v = next
		case []any:
			next, ok := item(t, seg)
			if !ok {
				return nil, false
			}
			v = next
		default:
			return nil, false
		}
	}
	return v, true
}

// item returns the item of a at index seg, or named seg by its "name" or
// "uuid" member, as rancher-metadata finds them.
func item(a []any, seg string) (any, bool) {
	if i, err := strconv.Atoi(seg); err == nil && i >= 0 && i < len(a) {
		return a[i], true
	}
	for _, key := range []string{"name", "uuid"} {
		for _, it := range a {
			if m, ok := it.(map[string]any); ok && m[key] == seg {
				return it, true
			}
		}
	}
	return nil, false
}
