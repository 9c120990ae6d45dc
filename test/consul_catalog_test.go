package test

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/kvconf/kvconf/backends/consul"
	"github.com/kvconf/kvconf/backends/consul/catalog"
)

// The tests of the Consul backend's catalog keys (package catalog) run
// against a dev agent, as the KV tests do. Services are registered with the
// agent, which syncs them to the catalog a moment later: tests poll the
// catalog, or watch until a value shows the change.

// catRegister registers instance id of service name with the agent, with
// a TTL check "cat-"+id in status.
func catRegister(t *testing.T, cli *api.Client, name, id, addr string, port int, tags []string, status string) {
	t.Helper()
	err := cli.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: id, Name: name, Address: addr, Port: port, Tags: tags,
		Check: &api.AgentServiceCheck{CheckID: "cat-" + id, TTL: "1h", Status: status},
	})
	if err != nil {
		t.Fatalf("register %s: %v", id, err)
	}
}

// catCheck sets the TTL check of instance id to status.
func catCheck(t *testing.T, cli *api.Client, id, status string) {
	t.Helper()
	if err := cli.Agent().UpdateTTL("cat-"+id, "", status); err != nil {
		t.Fatalf("update the check of %s: %v", id, err)
	}
}

// catSynced waits until the catalog's instances of service name, by ID,
// have the statuses of want.
func catSynced(t *testing.T, cli *api.Client, name string, want map[string]string) {
	t.Helper()
	eventually(t, "service "+name+" in the catalog", func() bool {
		entries, _, err := cli.Health().Service(name, "", false, nil)
		if err != nil || len(entries) != len(want) {
			return false
		}
		for _, e := range entries {
			if st, ok := want[e.Service.ID]; !ok || e.Checks.AggregatedStatus() != st {
				return false
			}
		}
		return true
	})
}

// catDecode decodes the value v of a catalog key.
func catDecode[T any](t *testing.T, key, v string) T {
	t.Helper()
	var out T
	if err := json.Unmarshal([]byte(v), &out); err != nil {
		t.Fatalf("value of %s: %v: %s", key, err, v)
	}
	return out
}

// catStatuses returns the instances' statuses by ID.
func catStatuses(is []catalog.Instance) map[string]string {
	m := map[string]string{}
	for _, in := range is {
		m[in.ID] = in.Status
	}
	return m
}

// catWatchUntil watches prefixes from after, applying each update to
// state, the content under prefixes at after, until cond(state) holds, and
// returns the revision of the last update. Every update must be a list of
// changes, each of a key that starts with one of allowed.
func catWatchUntil(t *testing.T, c *consul.Client, prefixes []string, after uint64, state map[string]string,
	allowed []string, cond func(map[string]string) bool,
) uint64 {
	t.Helper()
	deadline := time.Now().Add(watchTimeout)
	for !cond(state) {
		if time.Now().After(deadline) {
			t.Fatalf("Watch(%q): still not as wanted after %v: %v", prefixes, watchTimeout, state)
		}
		u := consulWatch(t, c, prefixes, after)
		if u.Full != nil || u.Rev <= after {
			t.Fatalf("Watch(%q, after=%d) = rev %d, full %t; want changes after %d", prefixes, after, u.Rev, u.Full != nil, after)
		}
		for _, ch := range u.Changes {
			if !slices.ContainsFunc(allowed, func(p string) bool { return strings.HasPrefix(ch.Key, p) }) {
				t.Errorf("Watch(%q, after=%d) changed %s, want only keys under %q", prefixes, after, ch.Key, allowed)
			}
			if ch.Deleted {
				delete(state, ch.Key)
			} else {
				state[ch.Key] = ch.Value
			}
		}
		after = u.Rev
	}
	return after
}

// catValue returns a condition on the value of key, false when it has none.
func catValue(key string, ok func(string) bool) func(map[string]string) bool {
	return func(kvs map[string]string) bool {
		v, found := kvs[key]
		return found && ok(v)
	}
}

// catStatusesAre returns a condition on the value of a service key: its
// instances have the statuses of want, by ID.
func catStatusesAre(t *testing.T, key string, want map[string]string) func(map[string]string) bool {
	return catValue(key, func(v string) bool {
		return maps.Equal(catStatuses(catDecode[[]catalog.Instance](t, key, v)), want)
	})
}

// TestConsulCatalogSnapshot reads a service with two instances, the
// services and the nodes, beside a key/value prefix "/" that must not
// take the catalog keys in, and the service again through the agent's own
// datacenter by name.
func TestConsulCatalogSnapshot(t *testing.T) {
	a := startConsul(t, false)
	cli := a.client(t, "")
	node, err := cli.Agent().NodeName()
	if err != nil {
		t.Fatal(err)
	}
	catRegister(t, cli, "web", "web-2", "", 8082, nil, api.HealthCritical)
	catRegister(t, cli, "web", "web-1", "10.0.0.1", 8081, []string{"v1", "canary"}, api.HealthPassing)
	consulPut(t, cli, "/app/x", "1")
	catSynced(t, cli, "web", map[string]string{"web-1": api.HealthPassing, "web-2": api.HealthCritical})

	c := openConsul(t, consul.Config{Nodes: []string{a.http}})
	web := catalog.Query{Kind: catalog.KindService, Name: "web"}
	webDC1 := catalog.Query{Kind: catalog.KindService, Name: "web", Datacenter: "dc1"}
	services := catalog.Query{Kind: catalog.KindServices}
	nodes := catalog.Query{Kind: catalog.KindNodes}
	s, err := c.Snapshot(reqCtx(t), []string{nodes.Prefix(), "/", web.Prefix(), services.Prefix(), webDC1.Prefix()})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range s.KVs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	wantKeys := []string{"/app/x", nodes.Prefix(), web.Prefix(), webDC1.Prefix(), services.Prefix()}
	slices.Sort(wantKeys)
	if !slices.Equal(keys, wantKeys) {
		t.Fatalf("Snapshot keys = %q, want %q", keys, wantKeys)
	}

	got := catDecode[[]catalog.Instance](t, web.Prefix(), s.KVs[web.Prefix()])
	want := []catalog.Instance{
		{Name: "web", ID: "web-1", Node: node, NodeAddress: "127.0.0.1", Address: "10.0.0.1", Port: 8081,
			Tags: catalog.Tags{"v1", "canary"}, Datacenter: "dc1", Status: catalog.StatusPassing},
		{Name: "web", ID: "web-2", Node: node, NodeAddress: "127.0.0.1", Address: "127.0.0.1", Port: 8082,
			Tags: catalog.Tags{}, Datacenter: "dc1", Status: catalog.StatusCritical},
	}
	if len(got) != len(want) {
		t.Fatalf("instances = %+v, want %+v", got, want)
	}
	for i := range want {
		g := got[i]
		g.Meta, g.NodeMeta = nil, nil // the agent's own, checked below
		if w := want[i]; g.Name != w.Name || g.ID != w.ID || g.Node != w.Node || g.NodeAddress != w.NodeAddress ||
			g.Address != w.Address || g.Port != w.Port || !slices.Equal(g.Tags, w.Tags) ||
			g.Datacenter != w.Datacenter || g.Status != w.Status {
			t.Errorf("instance %d = %+v, want %+v", i, got[i], w)
		}
		if got[i].NodeMeta == nil || got[i].Meta == nil {
			t.Errorf("instance %d has nil metadata: %+v", i, got[i])
		}
	}
	if v := s.KVs[web.Prefix()]; !strings.Contains(v, `"Tags":[]`) {
		t.Errorf("value %s: want empty tags as [], not null", v)
	}
	if a, b := s.KVs[web.Prefix()], s.KVs[webDC1.Prefix()]; a != b {
		t.Errorf("service web@dc1 = %s, want the same as web in the agent's datacenter: %s", b, a)
	}

	svcs := catDecode[[]catalog.Service](t, services.Prefix(), s.KVs[services.Prefix()])
	wantSvcs := []catalog.Service{{Name: "consul", Tags: catalog.Tags{}}, {Name: "web", Tags: catalog.Tags{"canary", "v1"}}}
	if !slices.EqualFunc(svcs, wantSvcs, func(a, b catalog.Service) bool { return a.Name == b.Name && slices.Equal(a.Tags, b.Tags) }) {
		t.Errorf("services = %+v, want %+v", svcs, wantSvcs)
	}

	ns := catDecode[[]catalog.Node](t, nodes.Prefix(), s.KVs[nodes.Prefix()])
	if len(ns) != 1 || ns[0].Node != node || ns[0].Address != "127.0.0.1" || ns[0].Datacenter != "dc1" || ns[0].ID == "" {
		t.Errorf("nodes = %+v, want the agent's node %s", ns, node)
	}

	// A datacenter that does not exist is an error.
	nowhere := catalog.Query{Kind: catalog.KindService, Name: "web", Datacenter: "nodc"}
	if _, err := c.Snapshot(reqCtx(t), []string{nowhere.Prefix()}); err == nil {
		t.Errorf("Snapshot(%s) = nil error, want one", nowhere.Prefix())
	} else {
		t.Logf("Snapshot(%s): %v", nowhere.Prefix(), err)
	}
	// A malformed catalog prefix is an error.
	if _, err := c.Snapshot(reqCtx(t), []string{"consul:service"}); err == nil {
		t.Error("Snapshot(consul:service) = nil error, want one")
	}
}

// TestConsulCatalogWatchService watches one service: instances registered
// and deregistered and a check going critical change its key, a key/value
// change elsewhere does not wake the watch, and with a key/value prefix
// beside it each change shows under its own key.
func TestConsulCatalogWatchService(t *testing.T) {
	a := startConsul(t, false)
	cli := a.client(t, "")
	catRegister(t, cli, "web", "web-1", "10.0.0.1", 8081, nil, api.HealthPassing)
	catSynced(t, cli, "web", map[string]string{"web-1": api.HealthPassing})

	c := openConsul(t, consul.Config{Nodes: []string{a.http}})
	web := catalog.Query{Kind: catalog.KindService, Name: "web"}
	key := web.Prefix()
	prefixes := []string{key}
	s, err := c.Snapshot(reqCtx(t), prefixes)
	if err != nil {
		t.Fatal(err)
	}
	after, state := s.Rev, s.KVs
	steps := []struct {
		name   string
		change func()
		want   map[string]string
	}{
		{"register", func() { catRegister(t, cli, "web", "web-2", "", 8082, []string{"v2"}, api.HealthPassing) },
			map[string]string{"web-1": catalog.StatusPassing, "web-2": catalog.StatusPassing}},
		{"check critical", func() { catCheck(t, cli, "web-1", api.HealthCritical) },
			map[string]string{"web-1": catalog.StatusCritical, "web-2": catalog.StatusPassing}},
		{"deregister", func() {
			if err := cli.Agent().ServiceDeregister("web-2"); err != nil {
				t.Fatal(err)
			}
		}, map[string]string{"web-1": catalog.StatusCritical}},
	}
	for _, st := range steps {
		st.change()
		after = catWatchUntil(t, c, prefixes, after, state, prefixes, catStatusesAre(t, key, st.want))
	}

	// A change outside the prefixes does not wake Watch.
	consulPut(t, cli, "/elsewhere", time.Now().String())
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	if u, err := c.Watch(ctx, prefixes, after); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Watch after a change elsewhere = %+v, %v; want it still blocked", u, err)
	}

	// Beside a key/value prefix, each change shows under its own key.
	mixed := []string{"/app", key}
	s, err = c.Snapshot(reqCtx(t), mixed)
	if err != nil {
		t.Fatal(err)
	}
	after, state = s.Rev, s.KVs
	consulPut(t, cli, "/app/y", "y")
	after = catWatchUntil(t, c, mixed, after, state, []string{"/app/y"}, catValue("/app/y", func(v string) bool { return v == "y" }))
	catCheck(t, cli, "web-1", api.HealthPassing)
	catWatchUntil(t, c, mixed, after, state, []string{key}, catStatusesAre(t, key, map[string]string{"web-1": catalog.StatusPassing}))
}

// TestConsulCatalogWatchServicesNodes watches the services and the nodes,
// named by the agent's own datacenter: a new service with tags changes
// the services, a node registered in the catalog changes the nodes.
func TestConsulCatalogWatchServicesNodes(t *testing.T) {
	a := startConsul(t, false)
	cli := a.client(t, "")
	c := openConsul(t, consul.Config{Nodes: []string{a.http}})
	services := catalog.Query{Kind: catalog.KindServices, Datacenter: "dc1"}.Prefix()
	nodes := catalog.Query{Kind: catalog.KindNodes, Datacenter: "dc1"}.Prefix()
	prefixes := []string{services, nodes}
	s, err := c.Snapshot(reqCtx(t), prefixes)
	if err != nil {
		t.Fatal(err)
	}
	if ns := catDecode[[]catalog.Node](t, nodes, s.KVs[nodes]); len(ns) != 1 {
		t.Fatalf("nodes = %+v, want the agent's", ns)
	}
	after, state := s.Rev, s.KVs

	catRegister(t, cli, "api", "api-1", "", 7001, []string{"y", "x"}, api.HealthPassing)
	catRegister(t, cli, "api", "api-2", "", 7002, []string{"z", "y"}, api.HealthPassing)
	// The agent may still be updating its own node: either key may change.
	after = catWatchUntil(t, c, prefixes, after, state, prefixes, catValue(services, func(v string) bool {
		for _, svc := range catDecode[[]catalog.Service](t, services, v) {
			if svc.Name == "api" {
				return slices.Equal(svc.Tags, catalog.Tags{"x", "y", "z"})
			}
		}
		return false
	}))

	if _, err := cli.Catalog().Register(&api.CatalogRegistration{Node: "ext", Address: "192.0.2.7"}, nil); err != nil {
		t.Fatal(err)
	}
	catWatchUntil(t, c, prefixes, after, state, prefixes, catValue(nodes, func(v string) bool {
		ns := catDecode[[]catalog.Node](t, nodes, v)
		return len(ns) == 2 && slices.ContainsFunc(ns, func(n catalog.Node) bool { return n.Node == "ext" && n.Address == "192.0.2.7" })
	}))
}

// TestConsulCatalogAllServices watches every service of the default
// datacenter: a new service shows in the names and under its own key, a
// check going critical changes its service's key, and so does a change of
// the address of a node that a service without an address of its own
// runs on (which only the nodes endpoint reports).
func TestConsulCatalogAllServices(t *testing.T) {
	a := startConsul(t, false)
	cli := a.client(t, "")
	catRegister(t, cli, "web", "web-1", "10.0.0.1", 8081, nil, api.HealthPassing)
	catSynced(t, cli, "web", map[string]string{"web-1": api.HealthPassing})

	c := openConsul(t, consul.Config{Nodes: []string{a.http}})
	all := catalog.Query{Kind: catalog.KindAllServices}.Prefix()
	svcKey := func(name string) string { return catalog.Query{Kind: catalog.KindService, Name: name}.Prefix() }
	prefixes := []string{all}
	s, err := c.Snapshot(reqCtx(t), prefixes)
	if err != nil {
		t.Fatal(err)
	}
	if names := catDecode[[]string](t, all, s.KVs[all]); !slices.Equal(names, []string{"consul", "web"}) {
		t.Errorf("names = %q, want consul and web", names)
	}
	one, err := c.Snapshot(reqCtx(t), []string{svcKey("web")})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.KVs) != 3 || s.KVs[svcKey("web")] != one.KVs[svcKey("web")] || s.KVs[svcKey("consul")] == "" {
		t.Errorf("every service = %v, want the names, consul and web (%s)", s.KVs, one.KVs[svcKey("web")])
	}
	after, state := s.Rev, s.KVs
	allowed := []string{all}

	catRegister(t, cli, "api", "api-1", "", 7001, nil, api.HealthPassing)
	after = catWatchUntil(t, c, prefixes, after, state, allowed, func(kvs map[string]string) bool {
		return kvs[all] == `["api","consul","web"]` && catStatusesAre(t, svcKey("api"), map[string]string{"api-1": catalog.StatusPassing})(kvs)
	})
	catCheck(t, cli, "api-1", api.HealthCritical)
	after = catWatchUntil(t, c, prefixes, after, state, allowed, catStatusesAre(t, svcKey("api"), map[string]string{"api-1": catalog.StatusCritical}))

	// A node of its own, registered in the catalog, with a service that
	// takes the node's address; then the node moves.
	ext := func(addr string) {
		t.Helper()
		_, err := cli.Catalog().Register(&api.CatalogRegistration{
			Node: "ext", Address: addr,
			Service: &api.AgentService{ID: "ext-1", Service: "ext", Port: 9000},
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
	}
	addressIs := func(want string) func(map[string]string) bool {
		return catValue(svcKey("ext"), func(v string) bool {
			is := catDecode[[]catalog.Instance](t, svcKey("ext"), v)
			return len(is) == 1 && is[0].Address == want && is[0].NodeAddress == want
		})
	}
	ext("192.0.2.7")
	after = catWatchUntil(t, c, prefixes, after, state, allowed, addressIs("192.0.2.7"))
	ext("192.0.2.8")
	catWatchUntil(t, c, prefixes, after, state, allowed, addressIs("192.0.2.8"))
}

// TestConsulCatalogWatchRestart restarts the dev agent, which empties its
// catalog and starts its index again, while a Watch of a service is
// pending: the Watch ends, and watching on from where it was returns a
// full snapshot at the new store's lower revision, then the service
// registered again, then changes as usual.
func TestConsulCatalogWatchRestart(t *testing.T) {
	a := startConsul(t, false)
	cli := a.client(t, "")
	for i := range 40 {
		consulPut(t, cli, "/r/k", strings.Repeat("x", i)) // raise the index
	}
	catRegister(t, cli, "web", "web-1", "10.0.0.1", 8081, nil, api.HealthPassing)
	catSynced(t, cli, "web", map[string]string{"web-1": api.HealthPassing})

	c := openConsul(t, consul.Config{Nodes: []string{a.http}})
	key := catalog.Query{Kind: catalog.KindService, Name: "web"}.Prefix()
	prefixes := []string{key}
	s := restartDuringWatch(t, a, c, prefixes)
	cli = a.client(t, "")
	catRegister(t, cli, "web", "web-9", "10.0.0.9", 8089, nil, api.HealthPassing)

	webIs := func(v string) bool {
		var is []catalog.Instance
		return json.Unmarshal([]byte(v), &is) == nil && len(is) == 1 && is[0].ID == "web-9" && is[0].Address == "10.0.0.9" &&
			is[0].Status == catalog.StatusPassing
	}
	u := fullAfterRestart(t, c, prefixes, s.Rev)
	if _, ok := u.Full.KVs[key]; len(u.Full.KVs) != 1 || !ok {
		t.Fatalf("Full = %v, want the key %s only", u.Full.KVs, key)
	}
	// The agent may not have synced web-9 to the catalog yet.
	after := catWatchUntil(t, c, prefixes, u.Rev, u.Full.KVs, prefixes, catValue(key, webIs))
	// And watching goes on from the new store's index.
	catCheck(t, cli, "web-9", api.HealthCritical)
	catWatchUntil(t, c, prefixes, after, u.Full.KVs, prefixes, catStatusesAre(t, key, map[string]string{"web-9": catalog.StatusCritical}))
}

// TestConsulCatalogACL runs an agent with ACLs that deny by default: a
// token that may read keys but not services is told so, rather than given
// a service without instances; one that may read services and nodes reads
// them.
func TestConsulCatalogACL(t *testing.T) {
	a := startConsul(t, true)
	mgmt := a.client(t, consulMgmtToken)
	// Registered in the catalog directly: the agent has no token to sync
	// services of its own with.
	_, err := mgmt.Catalog().Register(&api.CatalogRegistration{
		Node: "ext", Address: "192.0.2.7",
		Service: &api.AgentService{ID: "web-1", Service: "web", Port: 80},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	token := func(name, rules string) string {
		t.Helper()
		pol, _, err := mgmt.ACL().PolicyCreate(&api.ACLPolicy{Name: name, Rules: rules}, nil)
		if err != nil {
			t.Fatal(err)
		}
		tok, _, err := mgmt.ACL().TokenCreate(&api.ACLToken{Policies: []*api.ACLTokenPolicyLink{{ID: pol.ID}}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return tok.SecretID
	}
	t.Setenv("CONSUL_HTTP_TOKEN", "")
	web := catalog.Query{Kind: catalog.KindService, Name: "web"}.Prefix()
	services := catalog.Query{Kind: catalog.KindServices}.Prefix()

	keysOnly := openConsul(t, consul.Config{Nodes: []string{a.http}, AuthToken: token("keys-only", `key_prefix "" { policy = "read" }`)})
	for _, p := range []string{web, services} {
		_, err := keysOnly.Snapshot(reqCtx(t), []string{p})
		if err == nil || !strings.Contains(err.Error(), "ACL") {
			t.Errorf("Snapshot(%s) with a token that may not read services: err = %v, want one about the ACL token", p, err)
		}
		t.Logf("Snapshot(%s): %v", p, err)
	}

	readAll := openConsul(t, consul.Config{Nodes: []string{a.http},
		AuthToken: token("catalog-read", `service_prefix "" { policy = "read" }
node_prefix "" { policy = "read" }`)})
	s, err := readAll.Snapshot(reqCtx(t), []string{web})
	if err != nil {
		t.Fatal(err)
	}
	if is := catDecode[[]catalog.Instance](t, web, s.KVs[web]); len(is) != 1 || is[0].Address != "192.0.2.7" {
		t.Errorf("instances = %+v, want web-1 at 192.0.2.7", is)
	}
}
