package test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/backends/backendtest"
	"github.com/kvconf/kvconf/backends/etcd"
	"github.com/kvconf/kvconf/internal/tlsfiles"
)

// The tests of the etcd backend run embedded etcd servers, in this process,
// on loopback ports. They are not parallel, so that a test that counts the
// server's watchers sees only its own.

// watchTimeout bounds each wait for a change.
const watchTimeout = 30 * time.Second

// TestEtcdConformance runs the backend conformance suite against etcd.
func TestEtcdConformance(t *testing.T) {
	m := startEtcd(t, nil)
	cli := rawClient(t, clientv3.Config{Endpoints: urls(m)})
	backendtest.Run(t, backendtest.Harness{
		Open: func(t *testing.T) backends.Backend {
			if _, err := cli.Delete(reqCtx(t), "/kvconftest", clientv3.WithPrefix()); err != nil {
				t.Fatal(err)
			}
			c, err := etcd.New(t.Context(), etcd.Config{Nodes: urls(m)})
			if err != nil {
				t.Fatal(err)
			}
			return c
		},
		Put:    func(t *testing.T, key, value string) { put(t, cli, key, value) },
		Delete: func(t *testing.T, key string) { del(t, cli, key) },
	})
}

// watch calls Watch within watchTimeout and fails the test on an error.
func watch(t *testing.T, c *etcd.Client, prefixes []string, after uint64) backends.Update {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), watchTimeout)
	defer cancel()
	u, err := c.Watch(ctx, prefixes, after)
	if err != nil {
		t.Fatalf("Watch(%q, %d): %v", prefixes, after, err)
	}
	return u
}

// TestEtcdWatchPutDelete checks that Watch returns puts and deletes under
// its prefixes, each at the revision etcd gave the change, and that
// consecutive calls share one etcd watch.
func TestEtcdWatchPutDelete(t *testing.T) {
	m := startEtcd(t, nil)
	cli := rawClient(t, clientv3.Config{Endpoints: urls(m)})
	c := openEtcd(t, etcd.Config{Nodes: urls(m)})
	prefixes := []string{"/svc/b", "/svc/a/", "/svc/a/x"} // /svc/a/x is covered

	after := watch(t, c, prefixes, 0).Rev
	base := watchers(t)
	steps := []struct {
		key, value string
		del        bool
	}{
		{key: "/svc/a/1", value: "one"},
		{key: "/svc/bz", value: "plain string prefix"},
		{key: "/svc/a/1", value: "one again"},
		{key: "/svc/a/1", del: true},
		{key: "/svc/a/x/deep", value: "deep"},
	}
	for _, s := range steps {
		var rev uint64
		if s.del {
			rev = del(t, cli, s.key)
		} else {
			rev = put(t, cli, s.key, s.value)
		}
		u := watch(t, c, prefixes, after)
		want := []backends.Change{{Key: s.key, Value: s.value, Deleted: s.del}}
		if u.Full != nil || !slices.Equal(u.Changes, want) || u.Rev != rev {
			t.Fatalf("Watch(after=%d) = %+v, want rev %d and changes %+v", after, u, rev, want)
		}
		after = u.Rev
		if n := watchers(t) - base; n != 1 {
			t.Errorf("Watch made %v etcd watchers, want 1, kept between calls", n)
		}
	}
}

// TestEtcdWatchResume checks where a Watch goes on from: a call from a
// snapshot's revision, later than the kept watch has read, goes on with it
// and skips what the snapshot holds; a call from an earlier revision than
// a change the watch returned gets the changes again, from a new watch.
func TestEtcdWatchResume(t *testing.T) {
	m := startEtcd(t, nil)
	cli := rawClient(t, clientv3.Config{Endpoints: urls(m)})
	c := openEtcd(t, etcd.Config{Nodes: urls(m)})
	prefixes := []string{"/res/"}
	base := watchers(t)
	after := watch(t, c, prefixes, 0).Rev
	r1 := put(t, cli, "/res/a", "1")
	if u := watch(t, c, prefixes, after); u.Rev != r1 {
		t.Fatalf("Watch = %+v, want /res/a at %d", u, r1)
	}

	put(t, cli, "/res/b", "2")
	s, err := c.Snapshot(reqCtx(t), prefixes)
	if err != nil {
		t.Fatal(err)
	}
	r3 := put(t, cli, "/res/c", "3")
	u := watch(t, c, prefixes, s.Rev)
	if want := []backends.Change{{Key: "/res/c", Value: "3"}}; u.Rev != r3 || !slices.Equal(u.Changes, want) {
		t.Errorf("Watch(after=snapshot's %d) = %+v, want %+v at %d", s.Rev, u, want, r3)
	}
	if n := watchers(t) - base; n != 1 {
		t.Errorf("Watch made %v etcd watchers, want 1, kept from before the snapshot", n)
	}

	changes, _ := watchUntil(t, c, prefixes, r1, r3) // at once or not
	if want := []backends.Change{{Key: "/res/b", Value: "2"}, {Key: "/res/c", Value: "3"}}; !slices.Equal(changes, want) {
		t.Errorf("Watch from %d = %+v, want %+v again", r1, changes, want)
	}
	deadline := time.Now().Add(10 * time.Second)
	for watchers(t)-base != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // etcd drops a cancelled watcher in the background
	}
	if n := watchers(t) - base; n != 1 {
		t.Errorf("%v etcd watchers after a new watch replaced the kept one, want 1", n)
	}
}

// TestEtcdWatchCatchUp watches from far behind: etcd sends the changes of
// at most 1,000 revisions per response, each stamped with the current
// revision. Each update's revision must be where the changes it holds end,
// so that a new watch from it (here, on a new client each time) misses
// nothing.
func TestEtcdWatchCatchUp(t *testing.T) {
	m := startEtcd(t, nil)
	cli := rawClient(t, clientv3.Config{Endpoints: urls(m)})
	prefixes := []string{"/cu/"}
	after := watch(t, openEtcd(t, etcd.Config{Nodes: urls(m)}), prefixes, 0).Rev
	const n = 2500
	var last uint64
	for i := range n {
		last = put(t, cli, fmt.Sprintf("/cu/%04d", i), "v")
	}
	var keys []string
	calls := 0
	for after < last {
		c, err := etcd.New(t.Context(), etcd.Config{Nodes: urls(m)})
		if err != nil {
			t.Fatal(err)
		}
		u := watch(t, c, prefixes, after)
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		calls++
		for _, ch := range u.Changes {
			keys = append(keys, ch.Key)
		}
		if u.Full != nil || u.Rev <= after {
			t.Fatalf("Watch(after=%d) = rev %d, full %v", after, u.Rev, u.Full != nil)
		}
		after = u.Rev
	}
	if len(keys) != n {
		t.Fatalf("caught up with %d changes, want %d in order", len(keys), n)
	}
	for i, k := range keys {
		if want := fmt.Sprintf("/cu/%04d", i); k != want {
			t.Fatalf("change %d is to %s, want %s", i, k, want)
		}
	}
	if calls < 3 {
		t.Errorf("caught up with %d revisions in %d calls; want etcd's batches of 1,000 revisions", n, calls)
	}
}

// watchers returns etcd's count of watchers in this process.
func watchers(t *testing.T) float64 {
	t.Helper()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "etcd_debugging_mvcc_watcher_total" {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatal("no metric etcd_debugging_mvcc_watcher_total")
	return 0
}

// TestEtcdWatchIgnoresOutside checks that a change outside the watched
// prefixes, even inside the key range etcd watches for them, does not
// wake Watch, and is not reported with the next change.
func TestEtcdWatchIgnoresOutside(t *testing.T) {
	m := startEtcd(t, nil)
	cli := rawClient(t, clientv3.Config{Endpoints: urls(m)})
	c := openEtcd(t, etcd.Config{Nodes: urls(m)})
	prefixes := []string{"/a/", "/c/"}

	after := watch(t, c, prefixes, 0).Rev
	put(t, cli, "/b/between", "inside the covering range [/a/, /c0)")
	put(t, cli, "/z", "outside the range")
	put(t, cli, "/a", "not under /a/")

	// A negative check: Watch must still be blocked when its context ends.
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	if u, err := c.Watch(ctx, prefixes, after); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Watch after changes outside its prefixes = %+v, %v; want it blocked until its deadline", u, err)
	}

	rev := put(t, cli, "/c/1", "inside")
	u := watch(t, c, prefixes, after)
	want := []backends.Change{{Key: "/c/1", Value: "inside"}}
	if !slices.Equal(u.Changes, want) || u.Rev != rev {
		t.Errorf("Watch = %+v, want rev %d and changes %+v", u, rev, want)
	}
}

// TestEtcdWatchTxn checks that the changes of one transaction arrive in one
// update, in order, so that a render never sees half of it.
func TestEtcdWatchTxn(t *testing.T) {
	m := startEtcd(t, nil)
	cli := rawClient(t, clientv3.Config{Endpoints: urls(m)})
	c := openEtcd(t, etcd.Config{Nodes: urls(m)})
	put(t, cli, "/app/old", "x")
	after := watch(t, c, []string{"/app/"}, 0).Rev

	resp, err := cli.Txn(reqCtx(t)).Then(
		clientv3.OpPut("/app/db/host", "db1"),
		clientv3.OpPut("/other/key", "outside"),
		clientv3.OpPut("/app/db/port", "5432"),
		clientv3.OpDelete("/app/old"),
		clientv3.OpPut("/app/db/user", "kv"),
	).Commit()
	if err != nil {
		t.Fatal(err)
	}
	u := watch(t, c, []string{"/app/"}, after)
	want := []backends.Change{
		{Key: "/app/db/host", Value: "db1"},
		{Key: "/app/db/port", Value: "5432"},
		{Key: "/app/old", Deleted: true},
		{Key: "/app/db/user", Value: "kv"},
	}
	if !slices.Equal(u.Changes, want) || u.Rev != uint64(resp.Header.Revision) {
		t.Errorf("Watch = %+v, want rev %d and changes %+v", u, resp.Header.Revision, want)
	}
}

// watchUntil calls Watch from after until it reaches revision rev, and
// returns the changes on the way and the last update's full snapshot, if
// any.
func watchUntil(t *testing.T, c *etcd.Client, prefixes []string, after, rev uint64) (changes []backends.Change, full *backends.Snapshot) {
	t.Helper()
	for after < rev {
		u := watch(t, c, prefixes, after)
		if u.Rev <= after {
			t.Fatalf("Watch(after=%d).Rev = %d, not newer", after, u.Rev)
		}
		if u.Full != nil {
			changes, full = nil, u.Full
		}
		changes = append(changes, u.Changes...)
		after = u.Rev
	}
	if after != rev {
		t.Fatalf("Watch went past revision %d to %d", rev, after)
	}
	return changes, full
}

// TestEtcdWatchCompacted checks that a Watch from a revision that was
// compacted away returns a full snapshot, which misses nothing, and that a
// watch kept between calls is not disturbed by a compaction.
func TestEtcdWatchCompacted(t *testing.T) {
	m := startEtcd(t, nil)
	cli := rawClient(t, clientv3.Config{Endpoints: urls(m)})
	c := openEtcd(t, etcd.Config{Nodes: urls(m)})
	prefixes := []string{"/app/"}
	put(t, cli, "/app/keep", "1")
	put(t, cli, "/app/gone", "1")

	// A watch that returned once; then, between two calls, changes and a
	// compaction past them.
	after := watch(t, c, prefixes, 0).Rev
	rev := put(t, cli, "/app/new", "2")
	watchUntil(t, c, prefixes, after, rev)
	after = rev
	put(t, cli, "/app/keep", "3")
	del(t, cli, "/app/gone")
	put(t, cli, "/other", "4")
	last := put(t, cli, "/app/last", "5")
	if _, err := cli.Compact(reqCtx(t), int64(last), clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}

	// The next call goes on from the last revision on a new client, as a
	// restarted daemon does: full snapshot.
	c2 := openEtcd(t, etcd.Config{Nodes: urls(m)})
	u := watch(t, c2, prefixes, after)
	if u.Full == nil {
		t.Fatalf("Watch from compacted revision %d = %+v, want a full snapshot", after, u)
	}
	want := map[string]string{"/app/keep": "3", "/app/new": "2", "/app/last": "5"}
	if !maps.Equal(u.Full.KVs, want) || u.Rev < last || u.Full.Rev != u.Rev {
		t.Errorf("Watch = rev %d, %v; want rev >= %d, %v", u.Rev, u.Full.KVs, last, want)
	}
	fullRev := u.Rev

	// The watch kept by the first client had read past the compaction
	// point before it: it goes on with deltas, and misses nothing.
	rev = put(t, cli, "/app/after", "6")
	changes, full := watchUntil(t, c, prefixes, after, rev)
	wantChanges := []backends.Change{
		{Key: "/app/keep", Value: "3"},
		{Key: "/app/gone", Deleted: true},
		{Key: "/app/last", Value: "5"},
		{Key: "/app/after", Value: "6"},
	}
	if full != nil || !slices.Equal(changes, wantChanges) {
		t.Errorf("Watch on the kept watch = %+v (full %v), want %+v", changes, full != nil, wantChanges)
	}
	// And the full snapshot's revision is where the second goes on from.
	changes, full = watchUntil(t, c2, prefixes, fullRev, rev)
	if full != nil || !slices.Equal(changes, wantChanges[3:]) {
		t.Errorf("Watch after the full snapshot = %+v (full %v), want %+v", changes, full != nil, wantChanges[3:])
	}
}

// TestEtcdRestart stops etcd while a Watch is pending and starts it again
// on the same data: the pending Watch returns an error or resumes, and a
// later Watch from the last revision sees a change made after the
// restart.
func TestEtcdRestart(t *testing.T) {
	m := startEtcd(t, nil)
	cli := rawClient(t, clientv3.Config{Endpoints: urls(m)})
	c := openEtcd(t, etcd.Config{Nodes: urls(m), RequestTimeout: "10s"})
	prefixes := []string{"/r/"}
	after := watch(t, c, prefixes, 0).Rev
	put(t, cli, "/r/a", "1")
	last := watch(t, c, prefixes, after).Rev

	type result struct {
		u   backends.Update
		err error
	}
	pending := make(chan result, 1)
	ctx, cancel := context.WithTimeout(t.Context(), 2*watchTimeout)
	defer cancel()
	go func() {
		u, err := c.Watch(ctx, prefixes, last)
		pending <- result{u, err}
	}()
	time.Sleep(100 * time.Millisecond) // let Watch block
	m.stop()
	m.start(t)
	m.waitReady(t)
	rev := put(t, cli, "/r/b", "2")

	var r result
	select {
	case r = <-pending:
	case <-time.After(2 * watchTimeout):
		t.Fatal("pending Watch neither resumed nor failed after the restart")
	}
	switch {
	case r.err != nil:
		t.Logf("pending Watch failed, as it may: %v", r.err)
	case r.u.Rev != rev || !slices.Equal(r.u.Changes, []backends.Change{{Key: "/r/b", Value: "2"}}):
		t.Fatalf("pending Watch resumed with %+v, want /r/b at rev %d", r.u, rev)
	default:
		last = r.u.Rev
	}

	rev = put(t, cli, "/r/c", "3")
	u := watch(t, c, prefixes, last)
	if u.Rev != rev || !slices.Contains(u.Changes, backends.Change{Key: "/r/c", Value: "3"}) {
		t.Errorf("Watch(after=%d) after the restart = %+v, want /r/c at rev %d", last, u, rev)
	}
	s, err := c.Snapshot(reqCtx(t), prefixes)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"/r/a": "1", "/r/b": "2", "/r/c": "3"}; !maps.Equal(s.KVs, want) {
		t.Errorf("Snapshot after the restart = %v, want %v", s.KVs, want)
	}
}

// TestEtcdTLS connects over TLS with a client certificate, taking https
// for nodes without a scheme, and fails without the certificate.
func TestEtcdTLS(t *testing.T) {
	tf := makeTLS(t)
	m := startEtcd(t, tf)
	cli := rawClient(t, clientv3.Config{Endpoints: urls(m), TLS: tf.clientTLS(t)})
	put(t, cli, "/tls/key", "v")

	c := openEtcd(t, etcd.Config{
		Nodes: []string{m.clientURL.Host}, // https, from the TLS options
		TLS:   tlsfiles.TLS{ClientCert: tf.clientCert, ClientKey: tf.clientKey, ClientCAKeys: tf.ca},
	})
	s, err := c.Snapshot(reqCtx(t), []string{"/tls/"})
	if err != nil {
		t.Fatalf("Snapshot over TLS: %v", err)
	}
	if want := map[string]string{"/tls/key": "v"}; !maps.Equal(s.KVs, want) {
		t.Errorf("Snapshot over TLS = %v, want %v", s.KVs, want)
	}
	rev := put(t, cli, "/tls/key", "w")
	if u := watch(t, c, []string{"/tls/"}, s.Rev); u.Rev != rev {
		t.Errorf("Watch over TLS = %+v, want rev %d", u, rev)
	}

	// The server asks for a client certificate.
	noCert := openEtcd(t, etcd.Config{Nodes: urls(m), TLS: tlsfiles.TLS{ClientCAKeys: tf.ca}, RequestTimeout: "2s"})
	if _, err := noCert.Snapshot(reqCtx(t), []string{"/tls/"}); err == nil {
		t.Error("Snapshot without a client certificate succeeded")
	}
	// An unknown CA fails, unless verification is off.
	insecure := openEtcd(t, etcd.Config{
		Nodes: urls(m),
		TLS:   tlsfiles.TLS{ClientCert: tf.clientCert, ClientKey: tf.clientKey, ClientInsecure: true},
	})
	if _, err := insecure.Snapshot(reqCtx(t), []string{"/tls/"}); err != nil {
		t.Errorf("Snapshot with client_insecure: %v", err)
	}
}

// TestEtcdBasicAuth authenticates as etcd's root user; a wrong password
// fails without showing it.
func TestEtcdBasicAuth(t *testing.T) {
	const password = "correct-horse-battery"
	m := startEtcd(t, nil)
	admin := rawClient(t, clientv3.Config{Endpoints: urls(m)})
	ctx := reqCtx(t)
	if _, err := admin.UserAdd(ctx, "root", password); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.UserGrantRole(ctx, "root", "root"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.AuthEnable(ctx); err != nil {
		t.Fatal(err)
	}
	root := rawClient(t, clientv3.Config{Endpoints: urls(m), Username: "root", Password: password})
	put(t, root, "/auth/key", "v")

	c := openEtcd(t, etcd.Config{Nodes: urls(m), BasicAuth: true, Username: "root", Password: password})
	s, err := c.Snapshot(reqCtx(t), []string{"/auth/"})
	if err != nil {
		t.Fatalf("Snapshot as root: %v", err)
	}
	if want := map[string]string{"/auth/key": "v"}; !maps.Equal(s.KVs, want) {
		t.Errorf("Snapshot as root = %v, want %v", s.KVs, want)
	}
	rev := put(t, root, "/auth/key", "w")
	if u := watch(t, c, []string{"/auth/"}, s.Rev); u.Rev != rev {
		t.Errorf("Watch as root = %+v, want rev %d", u, rev)
	}

	const wrong = "wrong-horse-battery"
	bad, err := etcd.New(t.Context(), etcd.Config{Nodes: urls(m), BasicAuth: true, Username: "root", Password: wrong})
	if err == nil {
		_ = bad.Close()
		t.Fatal("New with a wrong password succeeded")
	}
	if strings.Contains(err.Error(), wrong) {
		t.Errorf("error shows the password: %v", err)
	}
	t.Logf("wrong password: %v", err)

	anon := openEtcd(t, etcd.Config{Nodes: urls(m), RequestTimeout: "5s"})
	if _, err := anon.Snapshot(reqCtx(t), []string{"/auth/"}); err == nil {
		t.Error("Snapshot without credentials succeeded")
	} else {
		t.Logf("without credentials: %v", err)
	}
}

// TestEtcdCluster stops one member of three, the leader or a follower:
// Snapshot and Watch go on through the others. A Watch may fail once (the
// member it reads from may lose its leader), and the next call goes on, as
// the daemon's does.
func TestEtcdCluster(t *testing.T) {
	for _, stop := range []string{"leader", "follower"} {
		t.Run(stop, func(t *testing.T) { testCluster(t, stop == "leader") })
	}
}

func testCluster(t *testing.T, stopLeader bool) {
	ms := startCluster(t, 3)
	cli := rawClient(t, clientv3.Config{Endpoints: urls(ms...)})
	c := openEtcd(t, etcd.Config{Nodes: urls(ms...)})
	prefixes := []string{"/cl/"}
	put(t, cli, "/cl/a", "1")
	s, err := c.Snapshot(reqCtx(t), prefixes)
	if err != nil {
		t.Fatal(err)
	}
	rev := put(t, cli, "/cl/b", "2")
	if u := watch(t, c, prefixes, s.Rev); u.Rev != rev {
		t.Fatalf("Watch = %+v, want rev %d", u, rev)
	}
	last := rev

	i := slices.IndexFunc(ms, func(m *etcdMember) bool {
		return (m.e.Server.Leader() == m.e.Server.MemberID()) == stopLeader
	})
	ms[i].stop()
	live := rawClient(t, clientv3.Config{Endpoints: urls(slices.Delete(slices.Clone(ms), i, i+1)...)})
	rev = put(t, live, "/cl/c", "3")

	s, err = c.Snapshot(reqCtx(t), prefixes)
	if err != nil {
		t.Fatalf("Snapshot with a member down: %v", err)
	}
	if want := map[string]string{"/cl/a": "1", "/cl/b": "2", "/cl/c": "3"}; !maps.Equal(s.KVs, want) || s.Rev < rev {
		t.Errorf("Snapshot with a member down = rev %d, %v; want rev >= %d, %v", s.Rev, s.KVs, rev, want)
	}

	deadline := time.Now().Add(watchTimeout)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), watchTimeout)
		u, err := c.Watch(ctx, prefixes, last)
		cancel()
		if err == nil {
			if u.Rev != rev || !slices.Contains(u.Changes, backends.Change{Key: "/cl/c", Value: "3"}) {
				t.Errorf("Watch with a member down = %+v, want /cl/c at rev %d", u, rev)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Watch with a member down: %v", err)
		}
		t.Logf("Watch with a member down failed, trying again: %v", err)
		time.Sleep(200 * time.Millisecond)
	}
}

// TestEtcdSnapshotPages reads more keys than one page holds, under several
// prefixes, while a writer changes them: the snapshot is what etcd held at
// its revision.
func TestEtcdSnapshotPages(t *testing.T) {
	m := startEtcd(t, nil)
	cli := rawClient(t, clientv3.Config{Endpoints: urls(m)})
	load(t, cli, "/big/a", 30_000, 8)
	load(t, cli, "/big/b", 30_000, 8)
	put(t, cli, "/bigger", "outside")
	put(t, cli, "noslash", "under / only")
	c := openEtcd(t, etcd.Config{Nodes: urls(m)})

	ctx, cancel := context.WithCancel(t.Context())
	writer := make(chan error, 1)
	go func() {
		for i := 0; ctx.Err() == nil; i++ {
			_, err := cli.Put(ctx, fmt.Sprintf("/big/a/%08d", i%30_000), fmt.Sprintf("w%d", i))
			if err != nil && ctx.Err() == nil {
				writer <- err
				return
			}
		}
		writer <- nil
	}()
	s, err := c.Snapshot(reqCtx(t), []string{"/big/b/", "/big/a/", "/big/a/0000"})
	cancel()
	if werr := <-writer; werr != nil {
		t.Fatal(werr)
	}
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	if len(s.KVs) != 60_000 {
		t.Errorf("Snapshot has %d keys, want 60000", len(s.KVs))
	}
	want := map[string]string{}
	for _, p := range []string{"/big/a/", "/big/b/"} {
		resp, err := cli.Get(reqCtx(t), p, clientv3.WithPrefix(), clientv3.WithRev(int64(s.Rev)))
		if err != nil {
			t.Fatal(err)
		}
		for _, kv := range resp.Kvs {
			want[string(kv.Key)] = string(kv.Value)
		}
	}
	if !maps.Equal(s.KVs, want) {
		n := 0
		for k, v := range want {
			if s.KVs[k] != v {
				n++
			}
		}
		t.Errorf("Snapshot differs from etcd at its revision %d on %d keys", s.Rev, n)
	}

	all, err := c.Snapshot(reqCtx(t), []string{"/"})
	if err != nil {
		t.Fatal(err)
	}
	if len(all.KVs) != 60_002 || all.KVs["noslash"] == "" || all.KVs["/bigger"] == "" {
		t.Errorf(`Snapshot("/") has %d keys, want every key (60002)`, len(all.KVs))
	}
}

// kvconfDir writes a confdir with one resource, myapp, whose template
// reads /myapp/database/{url,user} into dir/myapp.conf.
func kvconfDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"conf.d/myapp.toml": "[template]\nsrc = \"myapp.conf.tmpl\"\ndest = \"" +
			filepath.Join(dir, "myapp.conf") + "\"\nprefix = \"/myapp\"\nkeys = [\"/database\"]\n",
		"templates/myapp.conf.tmpl": "url = {{getv \"/database/url\"}}\nuser = {{getv \"/database/user\"}}\n",
	}
	for f, content := range files {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestEtcdKvconf renders a template from etcd with the kvconf binary, under
// both of the backend's names.
func TestEtcdKvconf(t *testing.T) {
	m := startEtcd(t, nil)
	cli := rawClient(t, clientv3.Config{Endpoints: urls(m)})
	put(t, cli, "/myapp/database/url", "db.example.com")
	put(t, cli, "/myapp/database/user", "rob")

	for _, name := range []string{"etcd", "etcdv3"} {
		t.Run(name, func(t *testing.T) {
			dir := kvconfDir(t)
			cmd := exec.CommandContext(t.Context(), kvconfBin, "-onetime", "-config-file", os.DevNull,
				"-confdir", dir, "-backend", name, "-node", m.clientURL.Host)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("kvconf: %v\n%s", err, out)
			}
			got, err := os.ReadFile(filepath.Join(dir, "myapp.conf"))
			if err != nil {
				t.Fatal(err)
			}
			if want := "url = db.example.com\nuser = rob\n"; string(got) != want {
				t.Errorf("myapp.conf = %q, want %q", got, want)
			}
		})
	}
}

// TestEtcdKvconfWatch runs kvconf -watch on etcd: a change to a key, made
// in a transaction with others, is rendered without polling.
func TestEtcdKvconfWatch(t *testing.T) {
	m := startEtcd(t, nil)
	cli := rawClient(t, clientv3.Config{Endpoints: urls(m)})
	put(t, cli, "/myapp/database/url", "db.example.com")
	put(t, cli, "/myapp/database/user", "rob")
	dir := kvconfDir(t)
	dest := filepath.Join(dir, "myapp.conf")

	var out strings.Builder
	cmd := exec.CommandContext(t.Context(), kvconfBin, "-watch", "-config-file", os.DevNull,
		"-confdir", dir, "-backend", "etcd", "-node", m.clientURL.String(), "-log-level", "debug")
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			t.Errorf("interrupt kvconf: %v", err)
		}
		_ = cmd.Wait() // interrupted: its exit status says so
		if t.Failed() {
			t.Logf("kvconf output:\n%s", out.String())
		}
	}()

	waitFor := func(want string) {
		t.Helper()
		deadline := time.Now().Add(watchTimeout)
		var got []byte
		for time.Now().Before(deadline) {
			got, _ = os.ReadFile(dest) // missing until the first render
			if string(got) == want {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("myapp.conf = %q after %v, want %q", got, watchTimeout, want)
	}
	waitFor("url = db.example.com\nuser = rob\n")
	if _, err := cli.Txn(reqCtx(t)).Then(
		clientv3.OpPut("/myapp/database/url", "db2.example.com"),
		clientv3.OpPut("/myapp/database/user", "kim"),
		clientv3.OpPut("/elsewhere", "x"),
	).Commit(); err != nil {
		t.Fatal(err)
	}
	waitFor("url = db2.example.com\nuser = kim\n")
}

// TestEtcdSnapshotManyPrefixes reads 150 prefixes, more than one
// transaction holds, each with more keys than its share of a page, while a
// writer changes them: the snapshot must equal etcd's content at the
// snapshot's revision.
func TestEtcdSnapshotManyPrefixes(t *testing.T) {
	m := startEtcd(t, nil)
	cli := rawClient(t, clientv3.Config{Endpoints: urls(m)})
	var prefixes []string
	for i := 0; i < 150; i++ {
		p := fmt.Sprintf("/many/%03d", i)
		load(t, cli, p, 450, 4) // more than a prefix's share of a page in a full transaction
		prefixes = append(prefixes, p+"/")
	}
	c := openEtcd(t, etcd.Config{Nodes: urls(m)})

	ctx, cancel := context.WithCancel(t.Context())
	writer := make(chan error, 1)
	go func() {
		for i := 0; ctx.Err() == nil; i++ {
			_, err := cli.Put(ctx, fmt.Sprintf("/many/%03d/%08d", i%150, i%450), fmt.Sprintf("w%d", i))
			if err != nil && ctx.Err() == nil {
				writer <- err
				return
			}
		}
		writer <- nil
	}()
	s, err := c.Snapshot(reqCtx(t), prefixes)
	cancel()
	if werr := <-writer; werr != nil {
		t.Fatal(werr)
	}
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	resp, err := cli.Get(reqCtx(t), "/many/", clientv3.WithPrefix(), clientv3.WithRev(int64(s.Rev)))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, kv := range resp.Kvs {
		want[string(kv.Key)] = string(kv.Value)
	}
	if len(s.KVs) != 150*450 || !maps.Equal(s.KVs, want) {
		t.Errorf("Snapshot has %d keys and differs from etcd at its revision %d", len(s.KVs), s.Rev)
	}
}
