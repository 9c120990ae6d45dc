package consul

import (
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/kvconf/kvconf/backends/consul/catalog"
)

func TestPartition(t *testing.T) {
	t.Parallel()
	svc := func(dc, name string) catalog.Query {
		return catalog.Query{Kind: catalog.KindService, Datacenter: dc, Name: name}
	}
	all := func(dc string) catalog.Query { return catalog.Query{Kind: catalog.KindAllServices, Datacenter: dc} }
	services := catalog.Query{Kind: catalog.KindServices}
	nodes2 := catalog.Query{Kind: catalog.KindNodes, Datacenter: "dc2"}
	tests := []struct {
		name     string
		prefixes []string
		wantKV   []string
		wantQ    []catalog.Query
		wantErr  string
	}{
		{name: "none"},
		{name: "kv only", prefixes: []string{"/app/db", "/app", "/b"}, wantKV: []string{"app", "b"}},
		{
			name:     "root does not cover the catalog",
			prefixes: []string{"/", svc("", "web").Prefix(), "/app"},
			wantKV:   []string{""},
			wantQ:    []catalog.Query{svc("", "web")},
		},
		{
			name:     "every service covers its services",
			prefixes: []string{svc("", "web").Prefix(), all("").Prefix(), svc("dc2", "web").Prefix(), svc("", "api").Prefix()},
			wantQ:    []catalog.Query{all(""), svc("dc2", "web")},
		},
		{
			name:     "kinds apart, duplicates dropped",
			prefixes: []string{nodes2.Prefix(), services.Prefix(), all("").Prefix(), services.Prefix(), svc("", "services").Prefix()},
			wantQ:    []catalog.Query{nodes2, all(""), services},
		},
		{
			name:     "names with slashes and dots",
			prefixes: []string{svc("", "a/b").Prefix(), svc("", "a").Prefix(), svc("", "a.b").Prefix()},
			// Sorted by prefix ("%" < "." < "/"); none covers another.
			wantQ: []catalog.Query{svc("", "a/b"), svc("", "a.b"), svc("", "a")},
		},
		{name: "not a catalog prefix", prefixes: []string{"consul:services"}, wantErr: "not a catalog prefix"},
		{name: "unknown kind", prefixes: []string{"consul:kv//"}, wantErr: "not a catalog prefix"},
		{name: "not canonical", prefixes: []string{"consul:nodes/d%63/"}, wantErr: "not a catalog prefix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			kv, qs, err := partition(tt.prefixes)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("partition(%q) = %v, want an error about %q", tt.prefixes, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("partition(%q): %v", tt.prefixes, err)
			}
			if !slices.Equal(kv, tt.wantKV) {
				t.Errorf("partition(%q) kv = %q, want %q", tt.prefixes, kv, tt.wantKV)
			}
			if !slices.Equal(qs, tt.wantQ) {
				t.Errorf("partition(%q) queries = %+v, want %+v", tt.prefixes, qs, tt.wantQ)
			}
		})
	}
}

// entry returns a service entry of web on node n at address addr, with
// checks of the given statuses.
func testEntry(n, id, addr string, statuses ...string) *api.ServiceEntry {
	e := &api.ServiceEntry{
		Node:    &api.Node{Node: n, Address: "10.0.0." + n[len(n)-1:], Datacenter: "dc1", Meta: map[string]string{"rack": "r1"}},
		Service: &api.AgentService{ID: id, Service: "web", Address: addr, Port: 80, Tags: []string{"b", "a"}},
	}
	for i, s := range statuses {
		e.Checks = append(e.Checks, &api.HealthCheck{CheckID: "c" + string(rune('0'+i)), Status: s})
	}
	return e
}

func TestInstances(t *testing.T) {
	t.Parallel()
	maint := testEntry("n3", "web", "", api.HealthPassing)
	maint.Checks = append(maint.Checks, &api.HealthCheck{CheckID: "_service_maintenance:web", Status: api.HealthCritical})
	entries := []*api.ServiceEntry{
		testEntry("n2", "web-2", "", api.HealthPassing, api.HealthWarning),
		nil,
		testEntry("n1", "web-b", "192.0.2.1", api.HealthCritical, api.HealthPassing),
		testEntry("n1", "web-a", "", api.HealthPassing),
		maint,
		{Node: &api.Node{Node: "n0"}, Service: &api.AgentService{ID: "bare", Service: "web"}},
	}
	got := instances(entries)
	want := []catalog.Instance{
		{Name: "web", ID: "bare", Node: "n0", Tags: catalog.Tags{}, Meta: map[string]string{}, NodeMeta: map[string]string{}, Status: catalog.StatusPassing},
		{Name: "web", ID: "web-a", Node: "n1", NodeAddress: "10.0.0.1", Address: "10.0.0.1", Port: 80, Tags: catalog.Tags{"b", "a"},
			Meta: map[string]string{}, NodeMeta: map[string]string{"rack": "r1"}, Datacenter: "dc1", Status: catalog.StatusPassing},
		{Name: "web", ID: "web-b", Node: "n1", NodeAddress: "10.0.0.1", Address: "192.0.2.1", Port: 80, Tags: catalog.Tags{"b", "a"},
			Meta: map[string]string{}, NodeMeta: map[string]string{"rack": "r1"}, Datacenter: "dc1", Status: catalog.StatusCritical},
		{Name: "web", ID: "web-2", Node: "n2", NodeAddress: "10.0.0.2", Address: "10.0.0.2", Port: 80, Tags: catalog.Tags{"b", "a"},
			Meta: map[string]string{}, NodeMeta: map[string]string{"rack": "r1"}, Datacenter: "dc1", Status: catalog.StatusWarning},
		{Name: "web", ID: "web", Node: "n3", NodeAddress: "10.0.0.3", Address: "10.0.0.3", Port: 80, Tags: catalog.Tags{"b", "a"},
			Meta: map[string]string{}, NodeMeta: map[string]string{"rack": "r1"}, Datacenter: "dc1", Status: catalog.StatusMaintenance},
	}
	gj, wj := mustJSON(t, got), mustJSON(t, want)
	if gj != wj {
		t.Errorf("instances =\n%s\nwant\n%s", gj, wj)
	}
	if !strings.Contains(gj, `"Tags":[]`) || strings.Contains(gj, "null") {
		t.Errorf("instances JSON %s has null tags or metadata", gj)
	}
	// The order Consul answers in does not show.
	slices.Reverse(entries)
	if rj := mustJSON(t, instances(entries)); rj != gj {
		t.Errorf("instances of the entries reversed =\n%s\nwant\n%s", rj, gj)
	}
	if j := mustJSON(t, instances(nil)); j != "[]" {
		t.Errorf("instances(nil) = %s, want []", j)
	}
}

// TestInstancesChange checks that every change of an instance that a
// template may show changes the value.
func TestInstancesChange(t *testing.T) {
	t.Parallel()
	base := func() []*api.ServiceEntry {
		return []*api.ServiceEntry{testEntry("n1", "web-1", "", api.HealthPassing), testEntry("n2", "web-2", "", api.HealthPassing)}
	}
	tests := []struct {
		name   string
		change func([]*api.ServiceEntry) []*api.ServiceEntry
	}{
		{name: "instance added", change: func(es []*api.ServiceEntry) []*api.ServiceEntry {
			return append(es, testEntry("n3", "web-3", "", api.HealthPassing))
		}},
		{name: "instance removed", change: func(es []*api.ServiceEntry) []*api.ServiceEntry { return es[:1] }},
		{name: "tag added", change: func(es []*api.ServiceEntry) []*api.ServiceEntry {
			es[0].Service.Tags = append(es[0].Service.Tags, "c")
			return es
		}},
		{name: "tags reordered", change: func(es []*api.ServiceEntry) []*api.ServiceEntry {
			es[0].Service.Tags = []string{"a", "b"}
			return es
		}},
		{name: "service address", change: func(es []*api.ServiceEntry) []*api.ServiceEntry {
			es[1].Service.Address = "192.0.2.9"
			return es
		}},
		{name: "node address", change: func(es []*api.ServiceEntry) []*api.ServiceEntry {
			es[1].Node.Address = "192.0.2.10"
			return es
		}},
		{name: "port", change: func(es []*api.ServiceEntry) []*api.ServiceEntry {
			es[0].Service.Port = 8080
			return es
		}},
		{name: "check critical", change: func(es []*api.ServiceEntry) []*api.ServiceEntry {
			es[0].Checks[0].Status = api.HealthCritical
			return es
		}},
		{name: "meta", change: func(es []*api.ServiceEntry) []*api.ServiceEntry {
			es[0].Service.Meta = map[string]string{"v": "2"}
			return es
		}},
		{name: "node meta", change: func(es []*api.ServiceEntry) []*api.ServiceEntry {
			es[0].Node.Meta = map[string]string{"rack": "r2"}
			return es
		}},
	}
	before := mustJSON(t, instances(base()))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if after := mustJSON(t, instances(tt.change(base()))); after == before {
				t.Errorf("value unchanged: %s", after)
			}
		})
	}
}

func TestServiceList(t *testing.T) {
	t.Parallel()
	got := mustJSON(t, serviceList(map[string][]string{
		"web":    {"v2", "http", "v2", "a"},
		"consul": nil,
		"api":    {},
	}))
	want := `[{"Name":"api","Tags":[]},{"Name":"consul","Tags":[]},{"Name":"web","Tags":["a","http","v2"]}]`
	if got != want {
		t.Errorf("serviceList = %s, want %s", got, want)
	}
	if got := mustJSON(t, serviceList(nil)); got != "[]" {
		t.Errorf("serviceList(nil) = %s, want []", got)
	}
}

func TestNodeList(t *testing.T) {
	t.Parallel()
	got := nodeList([]*api.Node{
		{Node: "b", ID: "id-b", Address: "10.0.0.2", Datacenter: "dc1", TaggedAddresses: map[string]string{"lan": "10.0.0.2"}},
		nil,
		{Node: "a", ID: "id-a", Address: "10.0.0.1", Datacenter: "dc1", Meta: map[string]string{"k": "v"}},
	})
	want := []catalog.Node{
		{Node: "a", ID: "id-a", Address: "10.0.0.1", Datacenter: "dc1", TaggedAddresses: map[string]string{}, Meta: map[string]string{"k": "v"}},
		{Node: "b", ID: "id-b", Address: "10.0.0.2", Datacenter: "dc1", TaggedAddresses: map[string]string{"lan": "10.0.0.2"}, Meta: map[string]string{}},
	}
	if gj, wj := mustJSON(t, got), mustJSON(t, want); gj != wj {
		t.Errorf("nodeList = %s, want %s", gj, wj)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestCatalogSnapshotFake reads catalog prefixes of another datacenter,
// and the key/value prefix "/", from a fake agent: every catalog request
// names the datacenter, every service gets its key, and "/" takes no
// catalog key.
func TestCatalogSnapshotFake(t *testing.T) {
	t.Parallel()
	bodies := map[string]string{
		"/v1/kv/":                  "",
		"/v1/catalog/services":     `{"web":["b","a","b"],"db":[]}`,
		"/v1/catalog/nodes":        `[{"Node":"n1","ID":"i1","Address":"10.0.0.1","Datacenter":"dc2"}]`,
		"/v1/health/state/any":     `[]`,
		"/v1/health/service/db":    `[]`,
		"/v1/health/service/web":   `[{"Node":{"Node":"n1","Address":"10.0.0.1","Datacenter":"dc2"},"Service":{"ID":"web1","Service":"web","Port":80,"Tags":["b","a"]},"Checks":[{"CheckID":"serfHealth","Status":"passing"}]}]`,
		"/v1/health/service/other": `[]`,
	}
	indexes := map[string]string{"/v1/catalog/nodes": "12", "/v1/health/state/any": "15", "/v1/catalog/services": "11"}
	var mu sync.Mutex
	var dcs []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := bodies[r.URL.Path]
		idx := indexes[r.URL.Path]
		if idx == "" {
			idx = "9"
		}
		w.Header().Set("X-Consul-Index", idx)
		if !ok || body == "" {
			http.NotFound(w, r)
			return
		}
		mu.Lock()
		dcs = append(dcs, r.URL.Path+"?dc="+r.URL.Query().Get("dc"))
		mu.Unlock()
		_, _ = w.Write([]byte(body))
	}))
	defer srv.Close()
	c := openFake(t, srv.URL, Config{})
	all := catalog.Query{Kind: catalog.KindAllServices, Datacenter: "dc2"}
	nodes := catalog.Query{Kind: catalog.KindNodes, Datacenter: "dc2"}
	web := catalog.Query{Kind: catalog.KindService, Datacenter: "dc2", Name: "web"}
	s, err := c.Snapshot(t.Context(), []string{"/", nodes.Prefix(), web.Prefix(), all.Prefix()})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		all.Prefix(): `["db","web"]`,
		web.Prefix(): `[{"Name":"web","ID":"web1","Node":"n1","NodeAddress":"10.0.0.1","Address":"10.0.0.1","Port":80,` +
			`"Tags":["b","a"],"Meta":{},"NodeMeta":{},"Datacenter":"dc2","Status":"passing"}]`,
		catalog.Query{Kind: catalog.KindService, Datacenter: "dc2", Name: "db"}.Prefix(): `[]`,
		nodes.Prefix(): `[{"Node":"n1","ID":"i1","Address":"10.0.0.1","Datacenter":"dc2","TaggedAddresses":{},"Meta":{}}]`,
	}
	if !maps.Equal(s.KVs, want) {
		t.Errorf("Snapshot =\n%v\nwant\n%v", s.KVs, want)
	}
	l, err := c.List(t.Context(), []string{"/", nodes.Prefix(), web.Prefix(), all.Prefix()})
	if err != nil {
		t.Fatal(err)
	}
	checkList(t, l, s)
	// "/" is listed first, at index 9; the catalog's indexes are higher.
	if s.Rev < 9 {
		t.Errorf("Snapshot.Rev = %d, want at least 9", s.Rev)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, d := range dcs {
		if !strings.HasSuffix(d, "?dc=dc2") {
			t.Errorf("request %s, want every catalog request in dc2", d)
		}
	}
	// The listing of every service is at the highest index of the nodes,
	// the checks and the services.
	if idx := c.indexes[all.Prefix()]; idx != 15 {
		t.Errorf("index of %s = %d, want 15", all.Prefix(), idx)
	}
}

// TestAllServicesRereadsChangedChecks lists every service from a fake
// agent whose state the test changes between listings, and counts the
// health queries: when only the checks of a service, or of a node itself,
// changed, only the services of that service or on that node are read
// again; a change to the services or the nodes reads them all.
func TestAllServicesRereadsChangedChecks(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	indexes := map[string]int{"/v1/catalog/nodes": 10, "/v1/health/state/any": 20, "/v1/catalog/services": 30}
	checks := map[string]int{"web": 6, "db": 7}    // a check each, with its ModifyIndex
	nodeChecks := map[string]int{"n1": 4, "n2": 5} // serfHealth of each node
	nodeOf := map[string]string{"web": "n1", "db": "n2"}
	port := map[string]int{"web": 80, "db": 5432}
	healthReads := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if idx, ok := indexes[r.URL.Path]; ok {
			w.Header().Set("X-Consul-Index", strconv.Itoa(idx))
		} else {
			w.Header().Set("X-Consul-Index", "40")
		}
		var body any
		switch p := r.URL.Path; {
		case p == "/v1/catalog/nodes":
			body = []map[string]any{{"Node": "n1", "Address": "10.0.0.1"}}
		case p == "/v1/health/state/any":
			var list []map[string]any
			for svc, mi := range checks {
				list = append(list, map[string]any{"Node": nodeOf[svc], "CheckID": "c-" + svc, "ServiceName": svc, "Status": "passing", "ModifyIndex": mi})
			}
			for node, mi := range nodeChecks {
				list = append(list, map[string]any{"Node": node, "CheckID": "serfHealth", "Status": "passing", "ModifyIndex": mi})
			}
			body = list
		case p == "/v1/catalog/services":
			body = map[string][]string{"web": {}, "db": {}}
		case strings.HasPrefix(p, "/v1/health/service/"):
			name := strings.TrimPrefix(p, "/v1/health/service/")
			healthReads[name]++
			body = []map[string]any{{
				"Node":    map[string]any{"Node": nodeOf[name], "Address": "10.0.0.1"},
				"Service": map[string]any{"ID": name + "1", "Service": name, "Port": port[name]},
				"Checks":  []map[string]any{{"CheckID": "c-" + name, "Status": "passing"}},
			}}
		default:
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(body)
	}))
	defer srv.Close()
	c := openFake(t, srv.URL, Config{})
	all := catalog.Query{Kind: catalog.KindAllServices}.Prefix()
	dbKey := catalog.Query{Kind: catalog.KindService, Name: "db"}.Prefix()
	list := func(step string, change func(), wantReads map[string]int) map[string]string {
		t.Helper()
		mu.Lock()
		change()
		clear(healthReads)
		mu.Unlock()
		s, err := c.Snapshot(t.Context(), []string{all})
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		mu.Lock()
		defer mu.Unlock()
		if !maps.Equal(healthReads, wantReads) {
			t.Errorf("%s: health reads %v, want %v", step, healthReads, wantReads)
		}
		return s.KVs
	}
	both := map[string]int{"web": 1, "db": 1}
	list("first listing", func() {}, both)
	got := list("db's check changed", func() {
		checks["db"] = 21
		indexes["/v1/health/state/any"] = 21
		port["db"] = 6432 // shows only if db is read again
		port["web"] = 8080
	}, map[string]int{"db": 1})
	if !strings.Contains(got[dbKey], `"Port":6432`) {
		t.Errorf("db after its check changed = %s, want port 6432", got[dbKey])
	}
	list("nothing changed", func() {}, map[string]int{})
	list("a service changed", func() { indexes["/v1/catalog/services"] = 31 }, both)
	list("a node changed", func() { indexes["/v1/catalog/nodes"] = 11 }, both)
	list("a node's own check changed", func() {
		nodeChecks["n2"] = 22
		indexes["/v1/health/state/any"] = 22
	}, map[string]int{"db": 1})
	list("web's check removed", func() {
		delete(checks, "web")
		indexes["/v1/health/state/any"] = 23
	}, map[string]int{"web": 1})
}

// TestAllServicesNameCaseAndStale checks two limits of reading again only
// the services whose checks changed. Consul's health query of a service
// matches its name in any case, so a check of "Redis" changes what "redis"
// shows too: both are read again. Under the stale consistency mode no
// health read is kept for later: every listing reads every service.
func TestAllServicesNameCaseAndStale(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	checkIndex := 20
	checks := map[string]int{"redis": 6, "Redis": 7}
	healthReads := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.Header().Set("X-Consul-Index", "10")
		var body any
		switch p := r.URL.Path; {
		case p == "/v1/catalog/nodes":
			body = []map[string]any{{"Node": "n1", "Address": "10.0.0.1"}}
		case p == "/v1/health/state/any":
			w.Header().Set("X-Consul-Index", strconv.Itoa(checkIndex))
			var list []map[string]any
			for svc, mi := range checks {
				list = append(list, map[string]any{"Node": "n1", "CheckID": "c-" + svc, "ServiceName": svc, "ModifyIndex": mi})
			}
			body = list
		case p == "/v1/catalog/services":
			body = map[string][]string{"redis": {}, "Redis": {}}
		case strings.HasPrefix(p, "/v1/health/service/"):
			name := strings.TrimPrefix(p, "/v1/health/service/")
			healthReads[name]++
			var entries []map[string]any
			for _, svc := range []string{"Redis", "redis"} { // matched in any case, as Consul does
				if strings.EqualFold(svc, name) {
					entries = append(entries, map[string]any{
						"Node":    map[string]any{"Node": "n1", "Address": "10.0.0.1"},
						"Service": map[string]any{"ID": svc + "-1", "Service": svc, "Port": checks[svc]},
					})
				}
			}
			body = entries
		default:
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(body)
	}))
	defer srv.Close()
	all := catalog.Query{Kind: catalog.KindAllServices}.Prefix()
	for _, consistency := range []string{ConsistencyDefault, ConsistencyStale} {
		c := openFake(t, srv.URL, Config{Consistency: consistency})
		list := func(step string, change func(), want map[string]int) {
			t.Helper()
			mu.Lock()
			change()
			clear(healthReads)
			mu.Unlock()
			if _, err := c.Snapshot(t.Context(), []string{all}); err != nil {
				t.Fatalf("%s %s: %v", consistency, step, err)
			}
			mu.Lock()
			defer mu.Unlock()
			if !maps.Equal(healthReads, want) {
				t.Errorf("%s %s: health reads %v, want %v", consistency, step, healthReads, want)
			}
		}
		both := map[string]int{"redis": 1, "Redis": 1}
		list("first listing", func() {}, both)
		list("Redis's check changed", func() { checks["Redis"]++; checkIndex++ }, both)
		if consistency == ConsistencyStale {
			list("nothing changed", func() {}, both)
		} else {
			list("nothing changed", func() {}, map[string]int{})
		}
	}
}

// openFake returns a client of cfg for the fake agent at url, closed when
// the test ends.
func openFake(t *testing.T, url string, cfg Config) *Client {
	t.Helper()
	cfg.Nodes = []string{url}
	c, err := New(t.Context(), cfg)
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
