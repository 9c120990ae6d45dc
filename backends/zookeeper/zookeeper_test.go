package zookeeper_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/go-zookeeper/zk"
	"go.uber.org/goleak"

	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/backends/backendtest"
	"github.com/kvconf/kvconf/backends/zookeeper"
	"github.com/kvconf/kvconf/backends/zookeeper/zktest"
	"github.com/kvconf/kvconf/backends/zookeeper/zkwire"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitTimeout bounds every wait for a change: generous, for a loaded
// machine.
const waitTimeout = 60 * time.Second

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     zookeeper.Config
		wantErr string // "" for none
	}{
		{name: "zero", cfg: zookeeper.Config{}},
		{name: "nodes", cfg: zookeeper.Config{Nodes: []string{"a:2181", "b", "[::1]:2182", "10.0.0.1"}}},
		{name: "digest", cfg: zookeeper.Config{Username: "u", Password: "p"}},
		{name: "timeout", cfg: zookeeper.Config{SessionTimeout: "30s"}},
		{name: "empty node", cfg: zookeeper.Config{Nodes: []string{" "}}, wantErr: "empty node"},
		{name: "url node", cfg: zookeeper.Config{Nodes: []string{"http://a:2181"}}, wantErr: "want host:port"},
		{name: "path node", cfg: zookeeper.Config{Nodes: []string{"a:2181/chroot"}}, wantErr: "want host:port"},
		{name: "user without password", cfg: zookeeper.Config{Username: "u"}, wantErr: "-password"},
		{name: "password without user", cfg: zookeeper.Config{Password: "p"}, wantErr: "-username"},
		{name: "bad timeout", cfg: zookeeper.Config{SessionTimeout: "10"}, wantErr: "session_timeout"},
		{name: "negative timeout", cfg: zookeeper.Config{SessionTimeout: "-1s"}, wantErr: "session_timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.cfg.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Validate() = %v, want an error about %q", err, tt.wantErr)
			}
		})
	}
}

// TestDecode decodes the sample and confd's options, and checks that the
// password is in no error.
func TestDecode(t *testing.T) {
	t.Parallel()
	cfg, err := backends.NewConfig("zookeeper")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Backends map[string]map[string]any `toml:"backends"`
	}
	if _, err := toml.Decode(cfg.(backends.Sampler).Sample(), &doc); err != nil {
		t.Fatalf("sample: %v", err)
	}
	opts := doc.Backends["zookeeper"]
	if opts["type"] != "zookeeper" {
		t.Fatalf("sample has no [backends.zookeeper] with type = \"zookeeper\": %v", doc.Backends)
	}
	delete(opts, "type")
	got, err := backends.Decode("zookeeper", opts)
	if err != nil {
		t.Fatalf("Decode(sample): %v", err)
	}
	if c := got.(*zookeeper.Config); len(c.Nodes) != 1 || c.SessionTimeout != "10s" {
		t.Errorf("Decode(sample) = %+v", c)
	}
	_, err = backends.Decode("zookeeper", map[string]any{"nodes": []string{"a:1"}, "basic_auth": true})
	if oe := (*backends.OptionError)(nil); !errors.As(err, &oe) || oe.Key != "basic_auth" {
		t.Errorf("Decode(basic_auth) = %v, want an *OptionError for basic_auth", err)
	}
	const secret = "s3cr3t-pa55"
	_, err = backends.Decode("zookeeper", map[string]any{"password": secret})
	if err == nil || strings.Contains(err.Error(), secret) {
		t.Errorf("Decode(password without username) = %v, want an error without the password", err)
	}
}

// open opens the backend on s and closes it when the test ends.
func open(t testing.TB, s *zktest.Server, cfg zookeeper.Config) *zookeeper.Client {
	t.Helper()
	cfg.Nodes = []string{s.Addr}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, err := zookeeper.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func snapshot(t testing.TB, c backends.Backend, prefixes ...string) backends.Snapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	s, err := c.Snapshot(ctx, prefixes)
	if err != nil {
		t.Fatalf("Snapshot(%q): %v", prefixes, err)
	}
	return s
}

// TestConformance runs the backend conformance suite against a real
// ZooKeeper.
func TestConformance(t *testing.T) {
	s := zktest.Start(t, zktest.Options{})
	admin := s.Client(t)
	backendtest.Run(t, backendtest.Harness{
		Open: func(t *testing.T) backends.Backend {
			zktest.DeleteTree(t, admin, "/kvconftest")
			cfg := zookeeper.Config{Nodes: []string{s.Addr}}
			c, err := zookeeper.New(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			return c
		},
		Put:    func(t *testing.T, key, value string) { zktest.Put(t, admin, key, value, nil) },
		Delete: func(t *testing.T, key string) { zktest.Delete(t, admin, key) },
	})
}

// TestSemantics checks confd's key semantics: only leaves are keys, with
// their data, an empty leaf is a key with an empty value, and prefixes
// match by plain string prefix.
func TestSemantics(t *testing.T) {
	s := zktest.Start(t, zktest.Options{})
	admin := s.Client(t)
	zktest.Put(t, admin, "/sem/app/db/host", "db.example", nil)
	zktest.Put(t, admin, "/sem/app/empty", "", nil)
	zktest.Put(t, admin, "/sem/app", "directory data", nil) // has children: no key
	zktest.Put(t, admin, "/sem/appx/name", "x", nil)
	c := open(t, s, zookeeper.Config{})
	tests := []struct {
		name     string
		prefixes []string
		want     map[string]string
	}{
		{"tree", []string{"/sem/app"}, map[string]string{
			"/sem/app/db/host": "db.example", "/sem/app/empty": "", "/sem/appx/name": "x"}},
		{"dir", []string{"/sem/app/"}, map[string]string{"/sem/app/db/host": "db.example", "/sem/app/empty": ""}},
		{"leaf", []string{"/sem/app/db/host"}, map[string]string{"/sem/app/db/host": "db.example"}},
		{"missing", []string{"/sem/nothing", "/nowhere/at/all"}, map[string]string{}},
		{"covered", []string{"/sem/app/db", "/sem/app", "/sem/app/"}, map[string]string{
			"/sem/app/db/host": "db.example", "/sem/app/empty": "", "/sem/appx/name": "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := snapshot(t, c, tt.prefixes...)
			if !maps.Equal(got.KVs, tt.want) {
				t.Errorf("Snapshot(%q) = %v, want %v", tt.prefixes, got.KVs, tt.want)
			}
		})
	}
}

// watcher applies the updates of Watch to a map, as the daemon does to
// its store.
type watcher struct {
	c        *zookeeper.Client
	prefixes []string
	rev      uint64
	kvs      map[string]string
	fulls    int   // full updates seen
	errs     int   // errors seen
	lastErr  error // the last one
}

func newWatcher(t testing.TB, c *zookeeper.Client, prefixes ...string) *watcher {
	t.Helper()
	s := snapshot(t, c, prefixes...)
	w := &watcher{c: c, prefixes: prefixes, rev: s.Rev, kvs: s.KVs}
	// The first call walks the prefixes with watches: a full update.
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := w.next(ctx); err != nil {
		t.Fatalf("first Watch: %v", err)
	}
	if w.fulls != 1 || !maps.Equal(w.kvs, s.KVs) {
		t.Fatalf("first Watch gave %v (full: %t), want the snapshot %v in full", w.kvs, w.fulls == 1, s.KVs)
	}
	return w
}

// next applies one result of Watch; it returns the error of Watch.
func (w *watcher) next(ctx context.Context) error {
	u, err := w.c.Watch(ctx, w.prefixes, w.rev)
	if err != nil {
		w.errs++
		w.lastErr = err
		return err
	}
	if u.Rev < w.rev {
		return fmt.Errorf("revision went back from %d to %d", w.rev, u.Rev)
	}
	w.rev = u.Rev
	if u.Full != nil {
		w.fulls++
		w.kvs = maps.Clone(u.Full.KVs)
		return nil
	}
	for _, ch := range u.Changes {
		if ch.Deleted {
			delete(w.kvs, ch.Key)
		} else {
			w.kvs[ch.Key] = ch.Value
		}
	}
	return nil
}

// until watches until the applied state equals want, retrying errors.
func (w *watcher) until(t testing.TB, want map[string]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	for !maps.Equal(w.kvs, want) {
		if err := w.next(ctx); err != nil {
			if ctx.Err() != nil {
				t.Fatalf("watched state = %v, want %v; last error: %v", w.kvs, want, err)
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				time.Sleep(100 * time.Millisecond) // the daemon backs off too
			}
		}
	}
}

// TestWatchDeltas changes keys in every way confd's semantics allow and
// checks that Watch reports each change as a delta.
func TestWatchDeltas(t *testing.T) {
	s := zktest.Start(t, zktest.Options{})
	admin := s.Client(t)
	zktest.Put(t, admin, "/wd/app/a", "1", nil)
	zktest.Put(t, admin, "/wd/app/b", "2", nil)
	c := open(t, s, zookeeper.Config{})
	w := newWatcher(t, c, "/wd/app", "/wd/later/")

	steps := []struct {
		name string
		do   func()
		want map[string]string
	}{
		{"set", func() { zktest.Put(t, admin, "/wd/app/a", "1b", nil) }, map[string]string{"/wd/app/a": "1b", "/wd/app/b": "2"}},
		{"create", func() { zktest.Put(t, admin, "/wd/app/c", "", nil) }, map[string]string{"/wd/app/a": "1b", "/wd/app/b": "2", "/wd/app/c": ""}},
		{"leaf turns directory", func() { zktest.Put(t, admin, "/wd/app/c/d", "4", nil) }, map[string]string{"/wd/app/a": "1b", "/wd/app/b": "2", "/wd/app/c/d": "4"}},
		{"directory turns leaf", func() {
			if err := admin.Delete("/wd/app/c/d", -1); err != nil {
				t.Fatal(err)
			}
		}, map[string]string{"/wd/app/a": "1b", "/wd/app/b": "2", "/wd/app/c": ""}},
		{"delete", func() { zktest.Delete(t, admin, "/wd/app/b") }, map[string]string{"/wd/app/a": "1b", "/wd/app/c": ""}},
		{"plain prefix sibling", func() { zktest.Put(t, admin, "/wd/appx/k", "x", nil) }, map[string]string{"/wd/app/a": "1b", "/wd/app/c": "", "/wd/appx/k": "x"}},
		{"missing parent created", func() { zktest.Put(t, admin, "/wd/later/k", "l", nil) }, map[string]string{"/wd/app/a": "1b", "/wd/app/c": "", "/wd/appx/k": "x", "/wd/later/k": "l"}},
		{"deleted and created again", func() {
			zktest.DeleteTree(t, admin, "/wd/app/a")
			zktest.Put(t, admin, "/wd/app/a", "again", nil)
		}, map[string]string{"/wd/app/a": "again", "/wd/app/c": "", "/wd/appx/k": "x", "/wd/later/k": "l"}},
		{"outside", func() { zktest.Put(t, admin, "/wd/other", "o", nil) }, nil},
	}
	for _, st := range steps {
		full := w.fulls
		st.do()
		if st.want == nil {
			continue
		}
		w.until(t, st.want)
		if w.fulls != full {
			t.Errorf("%s: Watch returned a full update, want deltas", st.name)
		}
	}
	// The state equals a fresh snapshot.
	if got := snapshot(t, c, w.prefixes...); !maps.Equal(got.KVs, w.kvs) {
		t.Errorf("watched state %v, snapshot %v", w.kvs, got.KVs)
	}
}

// TestWatchRightAfterOpen watches with a client that has read nothing
// yet: the walk that arms the watches is returned in full once, then
// changes come as deltas.
func TestWatchRightAfterOpen(t *testing.T) {
	s := zktest.Start(t, zktest.Options{})
	admin := s.Client(t)
	zktest.Put(t, admin, "/ro/a", "1", nil)
	c := open(t, s, zookeeper.Config{})
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	u, err := c.Watch(ctx, []string{"/ro/"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	w := &watcher{c: c, prefixes: []string{"/ro/"}, rev: u.Rev, kvs: map[string]string{}}
	w.until(t, map[string]string{"/ro/a": "1"})
	if w.fulls != 1 {
		t.Fatalf("first Watch gave %d full updates, want 1", w.fulls)
	}
	zktest.Put(t, admin, "/ro/a", "2", nil)
	w.until(t, map[string]string{"/ro/a": "2"})
	if w.fulls != 1 {
		t.Errorf("Watch after the first walk gave %d more full updates, want deltas", w.fulls-1)
	}
}

// TestWatchRestart restarts the server while Watch waits, and changes
// keys right after the restart: Watch returns errors while the server is
// down rather than blocking, then reports every change.
func TestWatchRestart(t *testing.T) {
	// Ticks of 2s allow sessions of up to 40s: the session outlives the
	// restart even on a slow machine.
	s := zktest.Start(t, zktest.Options{TickTime: 2 * time.Second})
	admin := s.Client(t)
	for i := range 10 {
		zktest.Put(t, admin, fmt.Sprintf("/rs/k%d", i), "before", nil)
	}
	c := open(t, s, zookeeper.Config{SessionTimeout: "30s"})
	w := newWatcher(t, c, "/rs/")

	errc := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	go func() { errc <- w.next(ctx) }()
	time.Sleep(100 * time.Millisecond) // let Watch block
	s.Stop()
	select {
	case err := <-errc:
		if err == nil || errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Watch with the server down = %v, want an error at once", err)
		}
	case <-ctx.Done():
		t.Fatal("Watch still blocked with the server down")
	}
	s.Restart()
	want := map[string]string{}
	for i := range 10 {
		v := "after"
		if i%3 == 0 {
			zktest.Delete(t, admin, fmt.Sprintf("/rs/k%d", i))
			continue
		}
		zktest.Put(t, admin, fmt.Sprintf("/rs/k%d", i), v, nil)
		want[fmt.Sprintf("/rs/k%d", i)] = v
	}
	zktest.Put(t, admin, "/rs/new", "n", nil)
	want["/rs/new"] = "n"
	full := w.fulls
	w.until(t, want)
	if w.fulls != full {
		t.Errorf("Watch after a restart within the session returned %d full updates, want deltas only", w.fulls-full)
	}
	if got := snapshot(t, c, "/rs/"); !maps.Equal(got.KVs, want) {
		t.Errorf("Snapshot after restart = %v, want %v", got.KVs, want)
	}
}

// TestWatchSessionExpiry closes the backend's session on the server while
// Watch waits, then changes keys: Watch makes a new session, sets its
// watch again, reads the prefixes again and returns what changed as
// deltas.
func TestWatchSessionExpiry(t *testing.T) {
	s := zktest.Start(t, zktest.Options{})
	admin := s.Client(t)
	zktest.Put(t, admin, "/ex/a", "1", nil)
	zktest.Put(t, admin, "/ex/b", "2", nil)
	c := open(t, s, zookeeper.Config{})
	w := newWatcher(t, c, "/ex/")
	zktest.Put(t, admin, "/ex/a", "1b", nil)
	w.until(t, map[string]string{"/ex/a": "1b", "/ex/b": "2"})

	id, pw := zookeeper.Session(c)
	s.CloseSession(t, id, pw)
	zktest.Put(t, admin, "/ex/a", "after expiry", nil)
	zktest.Delete(t, admin, "/ex/b")
	zktest.Put(t, admin, "/ex/c", "3", nil)
	full := w.fulls
	w.until(t, map[string]string{"/ex/a": "after expiry", "/ex/c": "3"})
	if zookeeper.Resyncs(c) == 0 {
		t.Errorf("Watch after the session expired did not read the prefixes again")
	}
	if w.fulls != full {
		t.Errorf("Watch after the session expired returned %d full updates, want the differences as deltas", w.fulls-full)
	}
	if id2, _ := zookeeper.Session(c); id2 == id {
		t.Errorf("session %#x still in use after it was closed", id)
	}
	// The new session's watch works.
	zktest.Put(t, admin, "/ex/c", "3b", nil)
	w.until(t, map[string]string{"/ex/a": "after expiry", "/ex/c": "3b"})
	if got := s.Watches(t); got != 1 {
		t.Errorf("the server holds %d watches after the resync, want 1", got)
	}
}

// TestWatchAfterSnapshot takes a snapshot between two calls of Watch and
// installs it, as the daemon does after a failed watch and at each
// reconciliation, while a key changes (the snapshot reads it) and changes
// back to the value Watch returned last: the next calls bring the
// caller's keys to the server's, the key that changed back included.
func TestWatchAfterSnapshot(t *testing.T) {
	s := zktest.Start(t, zktest.Options{})
	admin := s.Client(t)
	zktest.Put(t, admin, "/as/k", "A", nil)
	c := open(t, s, zookeeper.Config{})
	w := newWatcher(t, c, "/as/")
	zktest.Put(t, admin, "/as/k", "B", nil)
	snap := snapshot(t, c, "/as/")
	if snap.KVs["/as/k"] != "B" {
		t.Fatalf("Snapshot = %v, want /as/k = B", snap.KVs)
	}
	w.kvs, w.rev = maps.Clone(snap.KVs), snap.Rev // the daemon's replace
	zktest.Put(t, admin, "/as/k", "A", nil)
	zktest.Put(t, admin, "/as/later", "1", nil) // after the change back
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	for w.kvs["/as/later"] != "1" {
		if err := w.next(ctx); err != nil {
			t.Fatalf("Watch: %v", err)
		}
	}
	if want := map[string]string{"/as/k": "A", "/as/later": "1"}; !maps.Equal(w.kvs, want) {
		t.Errorf("watched state after an installed snapshot = %v, want %v", w.kvs, want)
	}
}

// TestRoots checks which znodes Watch sets its watches on: one per
// merged prefix, fewer when prefixes share a parent or lie under another
// prefix's parent.
func TestRoots(t *testing.T) {
	t.Parallel()
	tests := []struct {
		prefixes []string
		want     []string
	}{
		{[]string{"/app/"}, []string{"/app"}},
		{[]string{"/app/db"}, []string{"/app"}},
		{[]string{"/app/db", "/app/cache"}, []string{"/app"}},
		{[]string{"/app/db/x", "/app/c"}, []string{"/app"}},
		{[]string{"/a/", "/b/", "/ab/"}, []string{"/a", "/ab", "/b"}},
		{[]string{"/x", "/a/"}, []string{"/"}},
		{[]string{"", "/a/"}, []string{"/"}},
		{[]string{"relative"}, nil},
		{[]string{"/a/", "/a-b/", "/a/c/"}, []string{"/a", "/a-b"}},
	}
	for _, tt := range tests {
		if got := zookeeper.Roots(tt.prefixes); !slices.Equal(got, tt.want) {
			t.Errorf("Roots(%q) = %q, want %q", tt.prefixes, got, tt.want)
		}
	}
}

// TestWatchOneWatchPerPrefix watches two prefixes holding 2,000 znodes:
// the server holds one watch per merged prefix (its "wchs" count), not
// one per znode, before and after every kind of change, and every change
// comes as a delta: data changes, deep creations, the deletion of a
// subtree, a directory turning into a key and back.
func TestWatchOneWatchPerPrefix(t *testing.T) {
	s := zktest.Start(t, zktest.Options{})
	admin := s.Client(t)
	zktest.Load(t, admin, "/many/app", 1_500, 8)
	zktest.Load(t, admin, "/many/app/sub", 300, 8)
	zktest.Load(t, admin, "/other/db", 200, 8)
	zktest.Put(t, admin, "/other/dbx/k", "x", nil)
	zktest.Put(t, admin, "/other/elsewhere", "no", nil)
	c := open(t, s, zookeeper.Config{})
	// /many/app/sub/ lies under the watch of /many/app/; /other/db
	// watches /other, whose other children it does not match.
	prefixes := []string{"/many/app/", "/many/app/sub/", "/other/db"}
	roots := zookeeper.Roots(prefixes)
	if len(roots) != 2 {
		t.Fatalf("Roots(%q) = %q, want 2", prefixes, roots)
	}
	w := newWatcher(t, c, prefixes...)
	if n := len(w.kvs); n != 2_001 {
		t.Fatalf("the watch starts with %d keys, want 2,001", n)
	}
	if got := s.Watches(t); got != len(roots) {
		t.Fatalf("the server holds %d watches for %d znodes, want %d: one per merged prefix", got, len(w.kvs), len(roots))
	}
	want := maps.Clone(w.kvs)
	steps := []struct {
		name string
		do   func()
	}{
		{"data change", func() {
			zktest.Put(t, admin, "/many/app/00000007", "changed", nil)
			want["/many/app/00000007"] = "changed"
		}},
		{"deep creation", func() {
			zktest.Put(t, admin, "/many/app/deep/er/and/deeper/k", "deep", nil)
			want["/many/app/deep/er/and/deeper/k"] = "deep"
		}},
		{"key turns directory", func() {
			zktest.Put(t, admin, "/many/app/00000008/child", "c", nil)
			delete(want, "/many/app/00000008")
			want["/many/app/00000008/child"] = "c"
		}},
		{"directory turns key", func() {
			zktest.DeleteTree(t, admin, "/many/app/00000008/child")
			want["/many/app/00000008"] = "vvvvvvvv"
			delete(want, "/many/app/00000008/child")
		}},
		{"subtree deleted", func() {
			zktest.DeleteTree(t, admin, "/many/app/sub")
			for k := range want {
				if strings.HasPrefix(k, "/many/app/sub/") {
					delete(want, k)
				}
			}
		}},
		{"plain prefix sibling", func() {
			zktest.Put(t, admin, "/other/dbz/new/k", "z", nil)
			zktest.Put(t, admin, "/other/unmatched/k", "u", nil)
			want["/other/dbz/new/k"] = "z"
		}},
		{"subtree created again", func() {
			zktest.Load(t, admin, "/many/app/sub", 10, 2)
			for i := range 10 {
				want[fmt.Sprintf("/many/app/sub/%08d", i)] = "vv"
			}
		}},
	}
	for _, st := range steps {
		full := w.fulls
		st.do()
		w.until(t, want)
		if w.fulls != full {
			t.Errorf("%s: Watch returned a full update, want deltas", st.name)
		}
		if got := s.Watches(t); got != len(roots) {
			t.Errorf("%s: the server holds %d watches, want %d", st.name, got, len(roots))
		}
	}
	if got := snapshot(t, c, prefixes...); !maps.Equal(got.KVs, w.kvs) {
		t.Errorf("watched state has %d keys, a snapshot %d", len(w.kvs), len(got.KVs))
	}
	if w.errs != 0 {
		t.Errorf("Watch returned %d errors, the last %v", w.errs, w.lastErr)
	}
}

// TestSnapshot10k reads 10,000 znodes in one snapshot.
func TestSnapshot10k(t *testing.T) {
	s := zktest.Start(t, zktest.Options{})
	admin := s.Client(t)
	zktest.Load(t, admin, "/big", 10_000, 64)
	c := open(t, s, zookeeper.Config{})
	got := snapshot(t, c, "/big/")
	want, err := zktest.Leaves(admin, "/big")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.KVs) != 10_000 || !maps.Equal(got.KVs, want) {
		t.Errorf("Snapshot(/big/) has %d keys, want the 10,000 the raw client reads", len(got.KVs))
	}
}

// TestDigestAuth reads a znode whose ACL grants one digest user only:
// with that user's credentials, with wrong ones and with none.
func TestDigestAuth(t *testing.T) {
	s := zktest.Start(t, zktest.Options{})
	admin := s.Client(t)
	if err := admin.AddAuth("digest", []byte("kvconf:right")); err != nil {
		t.Fatal(err)
	}
	acl := zk.DigestACL(zk.PermAll, "kvconf", "right")
	zktest.Put(t, admin, "/secure/db/password", "hunter2", acl)

	c := open(t, s, zookeeper.Config{Username: "kvconf", Password: "right"})
	if got := snapshot(t, c, "/secure"); got.KVs["/secure/db/password"] != "hunter2" {
		t.Errorf("Snapshot with the right credentials = %v", got.KVs)
	}
	for _, tt := range []struct {
		name string
		cfg  zookeeper.Config
		want string
	}{
		{"wrong", zookeeper.Config{Username: "kvconf", Password: "wrong"}, "-username and -password are not allowed"},
		{"none", zookeeper.Config{}, "set -username and -password"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := open(t, s, tt.cfg)
			_, err := c.Snapshot(t.Context(), []string{"/secure"})
			if !errors.Is(err, zkwire.ErrNoAuth) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Snapshot = %v, want zkwire.ErrNoAuth naming %q", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "wrong") {
				t.Errorf("error %q shows the password", err)
			}
			_, err = c.Watch(t.Context(), []string{"/secure"}, 1)
			if !errors.Is(err, zkwire.ErrNoAuth) {
				t.Errorf("Watch = %v, want zkwire.ErrNoAuth", err)
			}
		})
	}
}

// TestUnreachable checks that a server that is down gives errors, not a
// hang, and that Close works then.
func TestUnreachable(t *testing.T) {
	s := zktest.Start(t, zktest.Options{})
	c := open(t, s, zookeeper.Config{})
	s.Stop()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	if _, err := c.Snapshot(ctx, []string{"/"}); err == nil || ctx.Err() != nil {
		t.Errorf("Snapshot with the server down = %v, want an error before the deadline", err)
	}
	if _, err := c.Watch(ctx, []string{"/"}, 1); err == nil || ctx.Err() != nil {
		t.Errorf("Watch with the server down = %v, want an error before the deadline", err)
	}
}

// TestNodesInTurn lists a server that is down before one that is up:
// the client connects to the second, for Snapshot and Watch.
func TestNodesInTurn(t *testing.T) {
	s := zktest.Start(t, zktest.Options{})
	admin := s.Client(t)
	zktest.Put(t, admin, "/turn/k", "v", nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	_ = l.Close() // only a port nothing listens on was wanted
	c, err := zookeeper.New(t.Context(), zookeeper.Config{Nodes: []string{dead, s.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	w := newWatcher(t, c, "/turn/")
	zktest.Put(t, admin, "/turn/k", "v2", nil)
	w.until(t, map[string]string{"/turn/k": "v2"})
}

// proxy forwards TCP connections to a server; it can hold what clients
// send, and cut every connection.
type proxy struct {
	l      net.Listener
	target string

	mu    sync.Mutex
	cond  *sync.Cond
	hold  bool
	conns []net.Conn
	wg    sync.WaitGroup
}

// proxiedClient opens a client of cfg (its nodes and session timeout
// set here: the proxy p, 20 s) and closes it when the test ends.
func proxiedClient(ctx context.Context, t *testing.T, p *proxy, cfg zookeeper.Config) *zookeeper.Client {
	t.Helper()
	cfg.Nodes, cfg.SessionTimeout = []string{p.l.Addr().String()}, "20s"
	c, err := zookeeper.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{l: l, target: target}
	p.cond = sync.NewCond(&p.mu)
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		_ = l.Close()
		p.setHold(false)
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { defer p.wg.Done(); _, _ = io.Copy(c, s); _ = c.Close() }()
		go func() { defer p.wg.Done(); p.forward(s, c); _ = s.Close() }()
	}
}

// forward copies what the client sends to the server, waiting while held.
func (p *proxy) forward(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		p.mu.Lock()
		for p.hold {
			p.cond.Wait()
		}
		p.mu.Unlock()
		if _, err := dst.Write(buf[:n]); err != nil {
			return
		}
	}
}

func (p *proxy) setHold(h bool) {
	p.mu.Lock()
	p.hold = h
	p.cond.Broadcast()
	p.mu.Unlock()
}

// cut closes every connection; what was held is dropped.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

// TestWatchReadCutShort drops the connection while Watch reads a znode
// whose notification came: Watch returns the error, and the next calls
// connect again (resuming the session), set the watch again, read the
// prefix again and report what changed, as deltas.
func TestWatchReadCutShort(t *testing.T) {
	s := zktest.Start(t, zktest.Options{TickTime: time.Second})
	admin := s.Client(t)
	zktest.Put(t, admin, "/cut/a", "1", nil)
	zktest.Put(t, admin, "/cut/b", "1", nil)
	p := startProxy(t, s.Addr)
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	c := proxiedClient(ctx, t, p, zookeeper.Config{})
	w := newWatcher(t, c, "/cut/")

	// Hold the client's requests, so that the re-read of /cut/a that the
	// change's event starts hangs, then cut the connection under it.
	p.setHold(true)
	done := make(chan error, 1)
	go func() { done <- w.next(ctx) }()
	zktest.Put(t, admin, "/cut/a", "2", nil)
	zktest.Put(t, admin, "/cut/new", "n", nil)
	time.Sleep(500 * time.Millisecond) // the events arrive, the reads wait
	p.cut()
	p.setHold(false)
	err := <-done
	if err == nil || !strings.Contains(err.Error(), "read") {
		t.Fatalf("Watch with its re-read cut short = %v, want the read's error", err)
	}
	full := w.fulls
	w.until(t, map[string]string{"/cut/a": "2", "/cut/b": "1", "/cut/new": "n"})
	if w.fulls != full {
		t.Errorf("Watch after the cut returned a full update, want deltas")
	}
	if zookeeper.Resyncs(c) == 0 {
		t.Errorf("Watch after the cut did not read the prefix again")
	}
	zktest.Put(t, admin, "/cut/b", "2", nil) // the watches were armed again
	w.until(t, map[string]string{"/cut/a": "2", "/cut/b": "2", "/cut/new": "n"})
}

// TestWatchOtherPrefixesCutShort has a call of Watch with other prefixes
// give up (its context ends) after its removal of the old watch was sent,
// then watches the old prefixes again on the same connection: the watch
// is set again, and a change under the old prefixes is reported.
func TestWatchOtherPrefixesCutShort(t *testing.T) {
	s := zktest.Start(t, zktest.Options{TickTime: time.Second})
	admin := s.Client(t)
	zktest.Put(t, admin, "/alt/a/k", "1", nil)
	zktest.Put(t, admin, "/alt/b/k", "1", nil)
	p := startProxy(t, s.Addr)
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	c := proxiedClient(ctx, t, p, zookeeper.Config{})
	w := newWatcher(t, c, "/alt/a/")

	// Hold the client's requests so that the call with other prefixes
	// gives up while they wait, then let them through.
	p.setHold(true)
	short, stop := context.WithTimeout(ctx, 2*time.Second)
	_, err := c.Watch(short, []string{"/alt/b/"}, w.rev)
	stop()
	p.setHold(false)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Watch(/alt/b/) with its requests held = %v, want its context's deadline", err)
	}
	// The removal of /alt/a's watch reaches the server, unless a stalled
	// machine let the deadline pass before it was sent.
	removed, stopWait := context.WithTimeout(ctx, 10*time.Second)
	defer stopWait()
	for s.Watches(t) != 0 && removed.Err() == nil {
		time.Sleep(50 * time.Millisecond)
	}
	if removed.Err() != nil {
		t.Log("the removal of the watch of /alt/a was not sent: the test proves nothing this time")
	}
	zktest.Put(t, admin, "/alt/a/k", "2", nil)
	w.until(t, map[string]string{"/alt/a/k": "2"})
}

// syncBuffer is a bytes.Buffer for a logger used from many goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestNoSecretsInLogs reads and watches a znode with secret data, with
// digest credentials, through a connection that is cut, at debug level:
// neither the password nor the data is in a log line or an error.
func TestNoSecretsInLogs(t *testing.T) {
	const password, secret, secret2 = "pa55-w0rd-xyz", "s3cret-data-1", "s3cret-data-2"
	s := zktest.Start(t, zktest.Options{TickTime: time.Second})
	admin := s.Client(t)
	if err := admin.AddAuth("digest", []byte("kvconf:"+password)); err != nil {
		t.Fatal(err)
	}
	zktest.Put(t, admin, "/sec/db/password", secret, zk.DigestACL(zk.PermAll, "kvconf", password))
	p := startProxy(t, s.Addr)
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	c := proxiedClient(ctx, t, p, zookeeper.Config{Username: "kvconf", Password: password, Logger: log})
	w := newWatcher(t, c, "/sec/")
	if w.kvs["/sec/db/password"] != secret {
		t.Fatalf("watched state = %v, want the secret", w.kvs)
	}
	p.cut()
	zktest.Put(t, admin, "/sec/db/password", secret2, nil)
	w.until(t, map[string]string{"/sec/db/password": secret2})
	wrong := open(t, s, zookeeper.Config{Username: "kvconf", Password: password + "-wrong", Logger: log})
	_, err := wrong.Snapshot(ctx, []string{"/sec/"})
	if err == nil {
		t.Fatal("Snapshot with a wrong password read the secret")
	}
	text := logs.String() + "\n" + err.Error() + "\n" + fmt.Sprint(w.lastErr)
	if !strings.Contains(text, "zookeeper connection ended") {
		t.Fatalf("no debug log of the cut: %q", text)
	}
	for _, v := range []string{password, secret, secret2} {
		if strings.Contains(text, v) {
			t.Errorf("%q appears in the logs or errors:\n%s", v, text)
		}
	}
}
