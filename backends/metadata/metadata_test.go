package metadata_test

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/backends/backendtest"
	"github.com/kvconf/kvconf/backends/metadata"
	"github.com/kvconf/kvconf/backends/metadata/metadatatest"
	"github.com/kvconf/kvconf/internal/tlsfiles"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitLimit bounds the waits of the tests, so that a hung watch fails
// the test instead of blocking it.
const waitLimit = 10 * time.Second

// newServer starts a test server, closed when the test ends.
func newServer(t *testing.T, opts metadatatest.Options) *metadatatest.Server {
	t.Helper()
	s := metadatatest.NewServer(opts)
	t.Cleanup(s.Close)
	return s
}

// newClient opens a client on cfg, closed when the test ends.
func newClient(t *testing.T, cfg metadata.Config) *metadata.Client {
	t.Helper()
	c, err := metadata.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	return c
}

// fast is a config for s with short waits.
func fast(s *metadatatest.Server, mode string) metadata.Config {
	return metadata.Config{
		Nodes:        []string{s.URL()},
		Mode:         mode,
		PollInterval: "20ms",
		MaxWait:      "2s",
	}
}

func TestConformance(t *testing.T) {
	t.Parallel()
	modes := []struct {
		name string
		opts metadatatest.Options
		mode string
	}{
		{name: "auto, rancher-metadata", mode: ""},
		{name: "longpoll", mode: metadata.ModeLongPoll},
		{name: "auto, no version, ETag", opts: metadatatest.Options{NoVersion: true, ETag: true}},
		{name: "conditional", opts: metadatatest.Options{ETag: true}, mode: metadata.ModeConditional},
		{name: "poll, whole document only", opts: metadatatest.Options{NoVersion: true, NoSubPaths: true}, mode: metadata.ModePoll},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			var s *metadatatest.Server
			backendtest.Run(t, backendtest.Harness{
				Open: func(t *testing.T) backends.Backend {
					s = newServer(t, m.opts)
					c, err := metadata.New(t.Context(), fast(s, m.mode))
					if err != nil {
						t.Fatal(err)
					}
					return c
				},
				Put:    func(_ *testing.T, key, value string) { s.Set(key, value) },
				Delete: func(_ *testing.T, key string) { s.Delete(key) },
			})
		})
	}
}

func TestRegistered(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"metadata", "rancher"} {
		cfg, err := backends.NewConfig(name)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(cfg.(backends.Sampler).Sample(), "[backends."+name+"]\ntype = \""+name+"\"") {
			t.Errorf("sample of %s lacks [backends.%s] with its type", name, name)
		}
	}
}

// TestDefaultNode checks the base URL of each name, and of nodes written
// in each form, by the requests they make to a server that answers
// everything with {}.
func TestNodes(t *testing.T) {
	t.Parallel()
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.URL.Path)
		_, _ = w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	tests := []struct {
		node, want string
	}{
		{node: host, want: "/self"},
		{node: "http://" + host + "/latest", want: "/latest/self"},
		{node: "http://" + host + "/2015-12-19/", want: "/2015-12-19/self"},
		{node: "http://" + host + "/a b", want: "/a b/self"},
	}
	for _, tt := range tests {
		got = nil
		c, err := metadata.New(t.Context(), metadata.Config{Nodes: []string{tt.node}, Mode: metadata.ModePoll})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Snapshot(t.Context(), []string{"/self/service"}); err != nil {
			t.Errorf("node %s: %v", tt.node, err)
		}
		if !slices.Equal(got, []string{tt.want}) {
			t.Errorf("node %s: requests %q, want %q", tt.node, got, tt.want)
		}
		_ = c.Close()
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  metadata.Config
		want string // in the error; empty: valid
	}{
		{name: "defaults", cfg: metadata.Config{}},
		{name: "bare host", cfg: metadata.Config{Nodes: []string{"meta:8080"}}},
		{name: "https with TLS", cfg: metadata.Config{Nodes: []string{"https://meta"}, TLS: tlsfiles.TLS{ClientInsecure: true}}},
		{name: "bare host with TLS", cfg: metadata.Config{Nodes: []string{"meta"}, TLS: tlsfiles.TLS{ClientInsecure: true}}},
		{name: "two nodes", cfg: metadata.Config{Nodes: []string{"a", "b"}}, want: "2 nodes given"},
		{name: "scheme", cfg: metadata.Config{Nodes: []string{"ftp://meta"}}, want: "not http or https"},
		{name: "query", cfg: metadata.Config{Nodes: []string{"http://meta/latest?x=1"}}, want: "no query"},
		{name: "http with TLS", cfg: metadata.Config{Nodes: []string{"http://meta"}, TLS: tlsfiles.TLS{ClientInsecure: true}}, want: "node uses http"},
		{name: "cert without key", cfg: metadata.Config{TLS: tlsfiles.TLS{ClientCert: "c.pem"}}, want: "go together"},
		{name: "mode", cfg: metadata.Config{Mode: "push"}, want: `metadata_mode "push"`},
		{name: "timeout", cfg: metadata.Config{RequestTimeout: "soon"}, want: "request_timeout"},
		{name: "negative interval", cfg: metadata.Config{PollInterval: "-1s"}, want: "not positive"},
		{name: "max wait fraction", cfg: metadata.Config{MaxWait: "1500ms"}, want: "whole number of seconds"},
		{name: "header", cfg: metadata.Config{Headers: []string{"X-Token: s3cret", "Authorization:Bearer s3cret"}}},
		{name: "header without colon", cfg: metadata.Config{Headers: []string{"X-Token s3cret"}}, want: `headers[0]: not "Name: value"`},
		{name: "bad header name", cfg: metadata.Config{Headers: []string{"X Token: s3cret"}}, want: "invalid header name"},
		{name: "bad header value", cfg: metadata.Config{Headers: []string{"X-Token: s3cret\x7f"}}, want: "header X-Token: invalid value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Validate() = %v, want an error with %q", err, tt.want)
			case err != nil && strings.Contains(err.Error(), "s3cret"):
				t.Errorf("Validate() = %v: shows a header value", err)
			}
		})
	}
}

func TestHeaders(t *testing.T) {
	t.Parallel()
	s := newServer(t, metadatatest.Options{})
	s.Set("/a", "1")
	cfg := fast(s, "")
	cfg.Headers = []string{"X-Token: s3cret", "X-Multi: one", "X-Multi: two"}
	c := newClient(t, cfg)
	if _, err := c.Snapshot(t.Context(), []string{"/a"}); err != nil {
		t.Fatal(err)
	}
	h := s.Header()
	if h.Get("X-Token") != "s3cret" || !slices.Equal(h.Values("X-Multi"), []string{"one", "two"}) || h.Get("Accept") != "application/json" {
		t.Errorf("the server got headers %v", h)
	}
}

// TestErrors checks that a failed read names the URL and the status,
// never shows a header value, and leaves the client able to read again.
func TestErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		handler http.HandlerFunc
		want    []string
	}{
		{
			name: "500",
			handler: func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "echo: "+r.Header.Get("X-Token"), http.StatusInternalServerError)
			},
			want: []string{"GET http://", "/latest/self/service: 500 Internal Server Error"},
		},
		{
			name: "403 on the root",
			handler: func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "echo: "+r.Header.Get("X-Token"), http.StatusForbidden)
			},
			want: []string{"/latest/self/service: 403 Forbidden"},
		},
		{
			name: "not JSON",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				_, _ = w.Write([]byte("<html>" + r.Header.Get("X-Token") + "</html>"))
			},
			want: []string{"/latest/self/service: 200 OK: body is not one JSON value", `Content-Type "text/html"`},
		},
		{
			name: "truncated JSON",
			handler: func(w http.ResponseWriter, _ *http.Request) {
				_, _ = w.Write([]byte(`{"service": {"name": "web"`))
			},
			want: []string{"/latest/self/service: 200 OK: body is not one JSON value", "unexpected EOF"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var good atomic.Bool
			good.Store(true)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if good.Load() {
					_, _ = w.Write([]byte(`{"service": {"name": "web"}}`))
					return
				}
				tt.handler(w, r)
			}))
			defer srv.Close()
			c := newClient(t, metadata.Config{
				Nodes:   []string{"http://user:pa55word@" + strings.TrimPrefix(srv.URL, "http://") + "/latest"},
				Headers: []string{"X-Token: s3cret"},
				Mode:    metadata.ModePoll,
			})
			ps := []string{"/self/service/"}
			s1, err := c.Snapshot(t.Context(), ps)
			if err != nil {
				t.Fatal(err)
			}
			good.Store(false)
			_, err = c.Snapshot(t.Context(), ps)
			if err == nil {
				t.Fatal("Snapshot succeeded, want an error")
			}
			msg := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
			for _, secret := range []string{"s3cret", "pa55word"} {
				if strings.Contains(msg, secret) {
					t.Errorf("error %q shows a secret", msg)
				}
			}
			good.Store(true)
			s2, err := c.Snapshot(t.Context(), ps)
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(s1.KVs, s2.KVs) || s2.Rev != s1.Rev {
				t.Errorf("after the error: %v at %d, want %v at %d", s2.KVs, s2.Rev, s1.KVs, s1.Rev)
			}
		})
	}
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	s := newServer(t, metadatatest.Options{})
	s.Set("/a", "1")
	s.SetDelay(5 * time.Second)
	cfg := fast(s, "")
	cfg.RequestTimeout = "100ms"
	c := newClient(t, cfg)
	_, err := c.Snapshot(t.Context(), []string{"/a"})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no answer within 100ms") {
		t.Errorf("Snapshot from a slow server: err = %v, want a timeout after 100ms", err)
	}
	s.SetDelay(0)
	if _, err := c.Snapshot(t.Context(), []string{"/a"}); err != nil {
		t.Errorf("Snapshot once the server is fast again: %v", err)
	}
}

// TestSubPaths checks which paths are requested: the parent of a prefix,
// the prefix itself when it ends with "/", one request for prefixes in
// one sub-tree, and the root for a server that serves no sub-tree.
func TestSubPaths(t *testing.T) {
	t.Parallel()
	doc := `{"self": {"service": {"name": "web"}, "services": ["x"]}, "stacks": [{"name": "prod", "state": "active"}]}`
	tests := []struct {
		name     string
		opts     metadatatest.Options
		prefixes []string
		want     map[string]string
		gets     map[string]int // after two snapshots
	}{
		{
			name:     "parent of a prefix",
			prefixes: []string{"/self/service"},
			want:     map[string]string{"/self/service/name": "web", "/self/services/0": "x"},
			gets:     map[string]int{"/self": 2},
		},
		{
			name:     "prefix ending with a slash",
			prefixes: []string{"/self/service/", "/stacks/prod/"},
			want:     map[string]string{"/self/service/name": "web", "/stacks/prod/name": "prod", "/stacks/prod/state": "active"},
			gets:     map[string]int{"/self/service": 2, "/stacks/prod": 2},
		},
		{
			name:     "missing sub-tree",
			prefixes: []string{"/nothing/here/"},
			want:     map[string]string{},
			gets:     map[string]int{"/nothing/here": 2, "": 2},
		},
		{
			name:     "server without sub-trees",
			opts:     metadatatest.Options{NoSubPaths: true},
			prefixes: []string{"/self/service/", "/stacks/"},
			want:     map[string]string{"/self/service/name": "web", "/stacks/prod/name": "prod", "/stacks/prod/state": "active"},
			gets:     map[string]int{"": 2}, // the 404s, not counted, come at the first snapshot only
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, tt.opts)
			if err := s.SetJSON([]byte(doc)); err != nil {
				t.Fatal(err)
			}
			c := newClient(t, fast(s, metadata.ModePoll))
			for range 2 {
				got, err := c.Snapshot(t.Context(), tt.prefixes)
				if err != nil {
					t.Fatal(err)
				}
				if !maps.Equal(got.KVs, tt.want) {
					t.Errorf("Snapshot(%q) = %v, want %v", tt.prefixes, got.KVs, tt.want)
				}
			}
			if gets := s.Stats().Gets; !maps.Equal(gets, tt.gets) {
				t.Errorf("requests %v, want %v", gets, tt.gets)
			}
		})
	}
}

// watcher follows a client's Watch from a first snapshot.
type watcher struct {
	c        *metadata.Client
	prefixes []string
	rev      uint64
	kvs      map[string]string
}

func follow(t *testing.T, c *metadata.Client, prefixes ...string) *watcher {
	t.Helper()
	s, err := c.Snapshot(t.Context(), prefixes)
	if err != nil {
		t.Fatal(err)
	}
	return &watcher{c: c, prefixes: prefixes, rev: s.Rev, kvs: s.KVs}
}

// next waits for the next update and applies it; it returns the changes,
// or the keys of a full update.
func (w *watcher) next(t *testing.T) ([]backends.Change, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	u, err := w.c.Watch(ctx, w.prefixes, w.rev)
	if err != nil {
		return nil, err
	}
	if u.Rev <= w.rev {
		t.Errorf("Watch(after=%d) returned revision %d", w.rev, u.Rev)
	}
	w.rev = u.Rev
	if u.Full != nil {
		w.kvs = u.Full.KVs
		var all []backends.Change
		for k, v := range u.Full.KVs {
			all = append(all, backends.Change{Key: k, Value: v})
		}
		return all, nil
	}
	for _, c := range u.Changes {
		if c.Deleted {
			delete(w.kvs, c.Key)
		} else {
			w.kvs[c.Key] = c.Value
		}
	}
	return u.Changes, nil
}

// still checks that Watch stays blocked for a while.
func (w *watcher) still(t *testing.T, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	u, err := w.c.Watch(ctx, w.prefixes, w.rev)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Watch(after=%d) = %+v, %v; want it still blocked", w.rev, u, err)
	}
}

func set(k, v string) backends.Change { return backends.Change{Key: k, Value: v} }
func del(k string) backends.Change    { return backends.Change{Key: k, Deleted: true} }

func TestWatchLongPoll(t *testing.T) {
	t.Parallel()
	s := newServer(t, metadatatest.Options{})
	s.Set("/self/service/name", "web")
	s.Set("/self/host/name", "node-1")
	s.Set("/other/x", "1")
	c := newClient(t, fast(s, ""))
	w := follow(t, c, "/self/service/")

	// A new version with the same content, or a change elsewhere, or in
	// the same sub-tree but outside the prefix: Watch stays blocked.
	s.Touch()
	s.Set("/other/x", "2")
	w.still(t, 300*time.Millisecond)

	s.Set("/self/service/name", "api")
	s.Set("/self/service/scale", "2")
	got, err := w.next(t)
	if err != nil {
		t.Fatal(err)
	}
	if want := []backends.Change{set("/self/service/name", "api"), set("/self/service/scale", "2")}; !slices.Equal(got, want) {
		// Both changes may come in two updates when Watch read between them.
		if more, err := w.next(t); err != nil || !slices.Equal(append(got, more...), want) {
			t.Errorf("Watch brought %v, %v (%v); want %v", got, more, err, want)
		}
	}
	s.Delete("/self/service/scale")
	if got, err := w.next(t); err != nil || !slices.Equal(got, []backends.Change{del("/self/service/scale")}) {
		t.Errorf("Watch brought %v, %v; want the delete", got, err)
	}
	st := s.Stats()
	if st.LongPolls == 0 {
		t.Errorf("no long poll made: %+v", st)
	}
	// The long polls returned at the changes, not every poll interval.
	if st.LongPolls > 20 {
		t.Errorf("%d long polls for 5 versions", st.LongPolls)
	}
}

func TestWatchConditional(t *testing.T) {
	t.Parallel()
	s := newServer(t, metadatatest.Options{NoVersion: true, ETag: true})
	s.Set("/app/a", "1")
	c := newClient(t, fast(s, "")) // auto: no /version, so conditional
	w := follow(t, c, "/app/")
	w.still(t, 300*time.Millisecond)
	st := s.Stats()
	if st.NotModified < 3 || st.LongPolls != 0 {
		t.Errorf("after 300ms of 20ms polls: %d answers 304 and %d long polls; want several 304s and no long poll", st.NotModified, st.LongPolls)
	}
	s.Set("/app/a", "2")
	if got, err := w.next(t); err != nil || !slices.Equal(got, []backends.Change{set("/app/a", "2")}) {
		t.Errorf("Watch brought %v, %v; want /app/a=2", got, err)
	}
}

func TestWatchPollWithoutValidators(t *testing.T) {
	t.Parallel()
	s := newServer(t, metadatatest.Options{ETag: true})
	s.Set("/app/a", "1")
	c := newClient(t, fast(s, metadata.ModePoll))
	w := follow(t, c, "/app/")
	w.still(t, 200*time.Millisecond)
	if st := s.Stats(); st.NotModified != 0 || st.LongPolls != 0 || st.Gets["/app"] < 3 {
		t.Errorf("poll mode: %+v; want plain GETs only", st)
	}
	s.Set("/app/a", "2")
	if got, err := w.next(t); err != nil || !slices.Equal(got, []backends.Change{set("/app/a", "2")}) {
		t.Errorf("Watch brought %v, %v; want /app/a=2", got, err)
	}
}

// TestWatchRestart cuts the server under a long poll, changes the
// document while it is down and starts it again on the same address: the
// watch fails while the server is away, as the daemon expects (it keeps
// its store and calls again), then brings the change.
func TestWatchRestart(t *testing.T) {
	t.Parallel()
	s := newServer(t, metadatatest.Options{})
	s.Set("/app/a", "1")
	c := newClient(t, fast(s, ""))
	w := follow(t, c, "/app/")
	done := make(chan struct{})
	var got []backends.Change
	var errs []error
	go func() {
		defer close(done)
		for len(got) == 0 && len(errs) < 100 {
			changes, err := w.next(t)
			if err != nil {
				errs = append(errs, err)
				time.Sleep(20 * time.Millisecond) // the daemon's backoff
				continue
			}
			got = changes
		}
	}()
	time.Sleep(100 * time.Millisecond) // let the long poll start
	s.Close()
	s.Set("/app/a", "2")
	time.Sleep(100 * time.Millisecond)
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(2 * waitLimit):
		t.Fatal("Watch did not see the change after the restart")
	}
	if !slices.Equal(got, []backends.Change{set("/app/a", "2")}) {
		t.Errorf("Watch brought %v after errors %v; want /app/a=2", got, errs)
	}
	if len(errs) == 0 {
		t.Errorf("Watch returned no error while the server was away")
	}
}

// TestWatchSwitchOff switches the handler off (503) and on again, with a
// change in between, in conditional mode.
func TestWatchSwitchOff(t *testing.T) {
	t.Parallel()
	s := newServer(t, metadatatest.Options{NoVersion: true, ETag: true})
	s.Set("/app/a", "1")
	c := newClient(t, fast(s, ""))
	w := follow(t, c, "/app/")
	s.SetDown(true)
	_, err := w.next(t)
	if err == nil || !strings.Contains(err.Error(), "503 Service Unavailable") {
		t.Errorf("Watch with the server down: err = %v, want a 503", err)
	}
	s.Set("/app/a", "2")
	s.SetDown(false)
	if got, err := w.next(t); err != nil || !slices.Equal(got, []backends.Change{set("/app/a", "2")}) {
		t.Errorf("Watch brought %v, %v; want /app/a=2", got, err)
	}
}

// TestWatchServerWithoutLongPoll follows a server whose /version answers
// at once, whatever wait says, and never moves (a document with a
// "version" member, served by a plain server): auto mode polls.
func TestWatchServerWithoutLongPoll(t *testing.T) {
	t.Parallel()
	var version atomic.Int32
	version.Store(1)
	var polls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/version" {
			polls.Add(1)
			_, _ = w.Write([]byte(`"1"`))
			return
		}
		_, _ = w.Write([]byte(`{"a": "` + strconv.Itoa(int(version.Load())) + `"}`))
	}))
	defer srv.Close()
	cfg := metadata.Config{Nodes: []string{srv.URL}, PollInterval: "50ms", MaxWait: "10s"}
	c := newClient(t, cfg)
	w := follow(t, c, "/")
	w.still(t, 300*time.Millisecond)
	if n := polls.Load(); n > 3 {
		t.Errorf("%d requests to /version in 300ms, want polls of the document instead", n)
	}
	version.Store(2)
	if got, err := w.next(t); err != nil || !slices.Equal(got, []backends.Change{set("/a", "2")}) {
		t.Errorf("Watch brought %v, %v; want /a=2", got, err)
	}
}

func TestWatchClose(t *testing.T) {
	t.Parallel()
	s := newServer(t, metadatatest.Options{})
	s.Set("/a", "1")
	c, err := metadata.New(t.Context(), fast(s, ""))
	if err != nil {
		t.Fatal(err)
	}
	w := follow(t, c, "/")
	done := make(chan error, 1)
	go func() {
		_, err := w.c.Watch(t.Context(), w.prefixes, w.rev)
		done <- err
	}()
	time.Sleep(100 * time.Millisecond) // let the long poll start
	for range 2 {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
	select {
	case err := <-done:
		if !errors.Is(err, backends.ErrClosed) {
			t.Errorf("Watch cut by Close: err = %v, want backends.ErrClosed", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Watch still blocked after Close")
	}
}

// TestLargeDocument reads a document of about 10 MB and checks that the
// memory it takes is of the order of the keys it yields, not of a decoded
// tree on top of them: the heap in use after Snapshot, with the result
// alive, stays under a few times the document's size.
func TestLargeDocument(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skips the 10 MB document")
	}
	doc := largeDocument(10 << 20)
	s := newServer(t, metadatatest.Options{})
	if err := s.SetJSON(doc); err != nil {
		t.Fatal(err)
	}
	// The request time limit is far above what any machine needs: the
	// test measures memory, not speed (under -race on a loaded machine
	// the read took more than the default 10 s).
	cfg := fast(s, metadata.ModePoll)
	cfg.RequestTimeout = "10m"
	c := newClient(t, cfg)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	snap, err := c.Snapshot(t.Context(), []string{"/"})
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	grew := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("%d bytes of JSON, %d keys: heap grew by %d bytes (%.1f×), %d bytes allocated in all",
		len(doc), len(snap.KVs), grew, float64(grew)/float64(len(doc)), after.TotalAlloc-before.TotalAlloc)
	// The client keeps the keys of the sub-tree (for Watch) and the
	// snapshot is a copy: two maps of short strings.
	if limit := int64(8 * len(doc)); grew > limit {
		t.Errorf("heap grew by %d bytes for a %d-byte document, more than %d", grew, len(doc), limit)
	}
	runtime.KeepAlive(snap)
}

// TestBodyTimeout checks that a body that does not arrive within the
// request timeout gives an error that says so and names the option,
// rather than "body is not one JSON value ... use of closed network
// connection". The server sends its headers and the start of a body, then
// stalls until the client leaves.
func TestBodyTimeout(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/version" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		_, _ = w.Write([]byte(`{"containers": [`))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	c := newClient(t, metadata.Config{Nodes: []string{srv.URL}, RequestTimeout: "300ms", Mode: metadata.ModePoll})
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	_, err := c.Snapshot(ctx, []string{"/"})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "request_timeout") ||
		strings.Contains(err.Error(), "not one JSON value") || strings.Contains(err.Error(), "closed network connection") {
		t.Errorf("err = %v, want a timeout naming request_timeout", err)
	}
}

// TestWatchVersionInPrefix: with the node at the server's root and the API
// version in the prefixes (confd's -backend rancher -node host:port
// -prefix /2015-12-19), the root has no /version (404); Watch long-polls
// <api>/version, as confd does, instead of falling back to polling. The
// poll interval is an hour, so only the long poll can bring the change;
// the server's count of long polls, made at /2015-12-19/version only,
// shows where it came from.
func TestWatchVersionInPrefix(t *testing.T) {
	t.Parallel()
	s := newServer(t, metadatatest.Options{Path: "/2015-12-19"})
	s.Set("/self/service/name", "web")
	root := strings.TrimSuffix(s.URL(), "/2015-12-19")
	c := newClient(t, metadata.Config{Nodes: []string{root}, PollInterval: "1h", MaxWait: "2s"})
	w := follow(t, c, "/2015-12-19/self/service/")
	if want := map[string]string{"/2015-12-19/self/service/name": "web"}; !maps.Equal(w.kvs, want) {
		t.Fatalf("snapshot = %v, want %v", w.kvs, want)
	}
	done := make(chan error, 1)
	var got []backends.Change
	go func() {
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		defer cancel()
		u, err := c.Watch(ctx, w.prefixes, w.rev)
		got = u.Changes
		done <- err
	}()
	// Change the document once the long poll is waiting.
	deadline := time.Now().Add(60 * time.Second)
	for s.Stats().LongPolls == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no long poll at /2015-12-19/version within 60 s: %+v", s.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.Set("/self/service/name", "api")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if want := []backends.Change{set("/2015-12-19/self/service/name", "api")}; !slices.Equal(got, want) {
		t.Errorf("Watch brought %v, want %v", got, want)
	}
}

func BenchmarkSnapshot10MB(b *testing.B) {
	doc := largeDocument(10 << 20)
	s := metadatatest.NewServer(metadatatest.Options{})
	defer s.Close()
	if err := s.SetJSON(doc); err != nil {
		b.Fatal(err)
	}
	c, err := metadata.New(b.Context(), fast(s, metadata.ModePoll))
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := c.Close(); err != nil {
			b.Error(err)
		}
	}()
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Snapshot(b.Context(), []string{"/"}); err != nil {
			b.Fatal(err)
		}
	}
}

// largeDocument returns a rancher-metadata-like document of about size
// bytes: services with containers, labels and ports.
func largeDocument(size int) []byte {
	var b strings.Builder
	b.WriteString(`{"containers": [`)
	for i := 0; b.Len() < size; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		n := itoa(i)
		b.WriteString(`{"name": "stack-svc-` + n + `", "primary_ip": "10.42.` + itoa(i/256%256) + `.` + itoa(i%256) +
			`", "service_name": "svc-` + itoa(i%100) + `", "stack_name": "stack", "state": "running", "health_state": "healthy",` +
			` "labels": {"io.rancher.stack.name": "stack", "io.rancher.container.ip": "10.42.0.` + itoa(i%256) + `/16"},` +
			` "ports": ["80:8080/tcp", "443:8443/tcp"], "create_index": ` + n + `, "start_count": 1, "dns": ["169.254.169.250"]}`)
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

func itoa(i int) string { return strconv.Itoa(i) }
