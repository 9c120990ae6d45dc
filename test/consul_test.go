package test

import (
	"context"
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/backends/backendtest"
	"github.com/kvconf/kvconf/backends/consul"
)

// The tests of the Consul backend run `consul agent -dev` from $CONSUL_BIN
// (see consulBin), one agent per test, on loopback ports.

// openConsul opens the backend on cfg and closes it when the test ends.
func openConsul(tb testing.TB, cfg consul.Config) *consul.Client {
	tb.Helper()
	c, err := consul.New(tb.Context(), cfg)
	if err != nil {
		tb.Fatalf("consul.New: %v", err)
	}
	tb.Cleanup(func() {
		if err := c.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return c
}

// consulWatch calls Watch within watchTimeout and fails the test on an
// error.
func consulWatch(t *testing.T, c *consul.Client, prefixes []string, after uint64) backends.Update {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), watchTimeout)
	defer cancel()
	u, err := c.Watch(ctx, prefixes, after)
	if err != nil {
		t.Fatalf("Watch(%q, %d): %v", prefixes, after, err)
	}
	return u
}

// TestConsulConformance runs the backend conformance suite against Consul.
func TestConsulConformance(t *testing.T) {
	a := startConsul(t, false)
	cli := a.client(t, "")
	backendtest.Run(t, backendtest.Harness{
		Open: func(t *testing.T) backends.Backend {
			consulDelete(t, cli, "/kvconftest", true)
			c, err := consul.New(t.Context(), consul.Config{Nodes: []string{a.http}})
			if err != nil {
				t.Fatal(err)
			}
			return c
		},
		Put:    func(t *testing.T, key, value string) { consulPut(t, cli, key, value) },
		Delete: func(t *testing.T, key string) { consulDelete(t, cli, key, false) },
	})
}

// TestConsulSnapshotKeys checks confd's key mapping: a leading "/" added,
// folders shown without their trailing "/", a key winning over a folder of
// the same name.
func TestConsulSnapshotKeys(t *testing.T) {
	a := startConsul(t, false)
	cli := a.client(t, "")
	consulPut(t, cli, "/app/db/host", "h")
	consulPut(t, cli, "/app/dir/", "")
	consulPut(t, cli, "/app/both", "key")
	consulPut(t, cli, "/app/both/", "")
	consulPut(t, cli, "/apple", "plain prefix")
	consulPut(t, cli, "/other", "x")
	c := openConsul(t, consul.Config{Nodes: []string{"http://" + a.http}})
	s, err := c.Snapshot(reqCtx(t), []string{"/app", "/app/db"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"/app/db/host": "h", "/app/dir": "", "/app/both": "key", "/apple": "plain prefix"}
	if !maps.Equal(s.KVs, want) {
		t.Errorf("Snapshot(/app, /app/db) = %v, want %v", s.KVs, want)
	}
	checkConsulList(t, c, []string{"/app", "/app/db"}, want)
	delete(want, "/apple")
	if s, err := c.Snapshot(reqCtx(t), []string{"/app/"}); err != nil || !maps.Equal(s.KVs, want) {
		t.Errorf("Snapshot(/app/) = %v, %v; want %v", s.KVs, err, want)
	}
	checkConsulList(t, c, []string{"/app/"}, want)
}

// checkConsulList checks that List(prefixes) holds want, sorted by key.
func checkConsulList(t *testing.T, c *consul.Client, prefixes []string, want map[string]string) {
	t.Helper()
	l, err := c.List(reqCtx(t), prefixes)
	if err != nil {
		t.Fatalf("List(%q): %v", prefixes, err)
	}
	keys := slices.Sorted(maps.Keys(want))
	got := make([]string, 0, len(l.KVs))
	for _, kv := range l.KVs {
		got = append(got, kv.Key)
		if want[kv.Key] != kv.Value {
			t.Errorf("List(%q): %q = %q, want %q", prefixes, kv.Key, kv.Value, want[kv.Key])
		}
	}
	if !slices.Equal(got, keys) {
		t.Errorf("List(%q) keys = %q, want %q", prefixes, got, keys)
	}
}

// TestConsulWatchDeltas checks that Watch returns puts and deletes under
// its prefixes as changes once it holds the caller's listing, and that a
// change elsewhere does not wake it.
func TestConsulWatchDeltas(t *testing.T) {
	a := startConsul(t, false)
	cli := a.client(t, "")
	consulPut(t, cli, "/svc/a/1", "one")
	c := openConsul(t, consul.Config{Nodes: []string{a.http}})
	for i, prefixes := range [][]string{{"/svc/a"}, {"/svc/a", "/svc/b", "/svc/a/x"}} {
		t.Run(strings.Join(prefixes, ","), func(t *testing.T) {
			// Consul does not raise the index for a write of the same
			// value: each run writes values of its own.
			v := func(s string) string { return s + " " + strconv.Itoa(i) }
			s, err := c.Snapshot(reqCtx(t), prefixes)
			if err != nil {
				t.Fatal(err)
			}
			after := s.Rev
			steps := []backends.Change{
				{Key: "/svc/a/2", Value: v("two")},
				{Key: "/svc/a/1", Value: v("one again")},
				{Key: "/svc/a/2", Deleted: true},
				{Key: "/svc/a/x/deep", Value: v("deep")},
			}
			if len(prefixes) > 1 {
				steps = append(steps, backends.Change{Key: "/svc/b", Value: v("b")}, backends.Change{Key: "/svc/b", Deleted: true})
			}
			for _, step := range steps {
				if step.Deleted {
					consulDelete(t, cli, step.Key, false)
				} else {
					consulPut(t, cli, step.Key, step.Value)
				}
				u := consulWatch(t, c, prefixes, after)
				if u.Full != nil || !slices.Equal(u.Changes, []backends.Change{step}) || u.Rev <= after {
					t.Fatalf("Watch(after=%d) = %+v, want %+v after %d", after, u, step, after)
				}
				after = u.Rev
			}

			// A change outside the prefixes does not wake Watch.
			consulPut(t, cli, "/elsewhere", time.Now().String())
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			if u, err := c.Watch(ctx, prefixes, after); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Watch after a change elsewhere = %+v, %v; want it still blocked", u, err)
			}
			consulDelete(t, cli, "/svc/a/x/deep", false)
		})
	}
}

// TestConsulWatchRestart restarts the dev agent, which empties its store
// and starts its index again, while a Watch is pending: the Watch ends
// with an error or a full snapshot, and watching on from where it was
// sees a key put after the restart.
func TestConsulWatchRestart(t *testing.T) {
	a := startConsul(t, false)
	cli := a.client(t, "")
	for i := range 30 {
		consulPut(t, cli, "/r/k", strings.Repeat("x", i)) // raise the index
	}
	c := openConsul(t, consul.Config{Nodes: []string{a.http}})
	prefixes := []string{"/r/"}
	s := restartDuringWatch(t, a, c, prefixes)
	consulPut(t, cli, "/r/new", "after the restart")

	u := fullAfterRestart(t, c, prefixes, s.Rev)
	if want := map[string]string{"/r/new": "after the restart"}; !maps.Equal(u.Full.KVs, want) {
		t.Fatalf("Full = %v, want %v", u.Full.KVs, want)
	}
	// And watching goes on from the new store's index.
	consulPut(t, cli, "/r/later", "later")
	u2 := consulWatch(t, c, prefixes, u.Rev)
	if want := []backends.Change{{Key: "/r/later", Value: "later"}}; !slices.Equal(u2.Changes, want) {
		t.Errorf("Watch(after=%d) = %+v, want %+v", u.Rev, u2, want)
	}
}

// TestConsulACL runs an agent with ACLs that deny by default: without a
// token the backend says the token may not read the keys; with the
// management token, or one whose policy reads the prefix, it reads them.
func TestConsulACL(t *testing.T) {
	a := startConsul(t, true)
	mgmt := a.client(t, consulMgmtToken)
	consulPut(t, mgmt, "/secure/db/host", "db.example")
	pol, _, err := mgmt.ACL().PolicyCreate(&api.ACLPolicy{Name: "kvconf-read", Rules: `key_prefix "secure/" { policy = "read" }`}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := mgmt.ACL().TokenCreate(&api.ACLToken{Policies: []*api.ACLTokenPolicyLink{{ID: pol.ID}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("CONSUL_HTTP_TOKEN", "")

	t.Run("NoToken", func(t *testing.T) {
		c := openConsul(t, consul.Config{Nodes: []string{a.http}})
		_, err := c.Snapshot(reqCtx(t), []string{"/secure/"})
		if err == nil || !strings.Contains(err.Error(), "ACL") {
			t.Fatalf("Snapshot without a token: err = %v, want one about the ACL token", err)
		}
		t.Logf("error without a token: %v", err)
		if _, err := c.Watch(reqCtx(t), []string{"/secure/"}, 1); err == nil || !strings.Contains(err.Error(), "ACL") {
			t.Errorf("Watch without a token: err = %v, want one about the ACL token", err)
		}
	})
	tokens := []struct {
		name  string
		token string
		env   bool
	}{
		{name: "Management", token: consulMgmtToken},
		{name: "ReadPolicy", token: tok.SecretID},
		{name: "ReadPolicyFromEnv", token: tok.SecretID, env: true},
	}
	for _, tt := range tokens {
		t.Run(tt.name, func(t *testing.T) {
			cfg := consul.Config{Nodes: []string{a.http}, AuthToken: tt.token}
			if tt.env {
				cfg.AuthToken = ""
				t.Setenv("CONSUL_HTTP_TOKEN", tt.token)
			}
			c := openConsul(t, cfg)
			s, err := c.Snapshot(reqCtx(t), []string{"/secure/"})
			if err != nil {
				t.Fatal(err)
			}
			if want := map[string]string{"/secure/db/host": "db.example"}; !maps.Equal(s.KVs, want) {
				t.Errorf("Snapshot = %v, want %v", s.KVs, want)
			}
			if err != nil && strings.Contains(err.Error(), tt.token) {
				t.Errorf("error %q shows the token", err)
			}
		})
	}
}

// TestConsulKvconf renders a template from Consul with the kvconf binary.
func TestConsulKvconf(t *testing.T) {
	a := startConsul(t, false)
	cli := a.client(t, "")
	consulPut(t, cli, "/myapp/database/url", "db.example.com")
	consulPut(t, cli, "/myapp/database/user", "rob")
	dir := kvconfDir(t)
	cmd := exec.CommandContext(t.Context(), kvconfBin, "-onetime", "-config-file", os.DevNull,
		"-confdir", dir, "-backend", "consul", "-node", a.http)
	cmd.Env = append(os.Environ(), "CONSUL_HTTP_ADDR=", "CONSUL_HTTP_TOKEN=")
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
}

// restartDuringWatch takes a snapshot of prefixes, restarts the agent
// while a Watch from the snapshot's revision blocks, and checks that the
// Watch ends; it returns the snapshot.
func restartDuringWatch(t *testing.T, a *consulAgent, c *consul.Client, prefixes []string) backends.Snapshot {
	t.Helper()
	s, err := c.Snapshot(reqCtx(t), prefixes)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), watchTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := c.Watch(ctx, prefixes, s.Rev)
		done <- err
	}()
	time.Sleep(300 * time.Millisecond) // let Watch block
	a.restart(t)
	select {
	case err := <-done:
		t.Logf("pending Watch after the restart: %v", err)
	case <-time.After(watchTimeout):
		t.Fatal("Watch still pending after the agent restarted")
	}
	return s
}

// fullAfterRestart calls Watch from after, a revision from before the
// agent restarted, until a call succeeds (the agent may still be starting),
// and checks that it returns a full snapshot at the new store's lower
// index.
func fullAfterRestart(t *testing.T, c *consul.Client, prefixes []string, after uint64) backends.Update {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), watchTimeout)
	defer cancel()
	deadline := time.Now().Add(watchTimeout)
	for time.Now().Before(deadline) {
		u, err := c.Watch(ctx, prefixes, after)
		if err != nil {
			t.Logf("Watch(after=%d): %v; again", after, err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if u.Full == nil {
			t.Fatalf("Watch(after=%d) = %+v, want a full snapshot after the reset", after, u)
		}
		if u.Rev >= after {
			t.Errorf("Watch(after=%d).Rev = %d, want the new store's lower index", after, u.Rev)
		}
		return u
	}
	t.Fatal("no Watch succeeded after the restart")
	return backends.Update{}
}
