package consul

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/backends/consul/internal/kvlisting"
)

// TestGetListing checks the listing request kvconf makes itself: the
// options of the query and of the node in the URL and headers, the index
// and ACL headers read back, a missing prefix listing nothing, and other
// statuses and malformed bodies as errors.
func TestGetListing(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if r.URL.Path != "/v1/kv/app/" || !q.Has("recurse") || q.Get("dc") != "dc2" || !q.Has("stale") ||
			q.Get("index") != "7" || q.Get("wait") != "60000ms" || r.Header.Get("X-Consul-Token") != "tok" {
			http.Error(w, "unexpected request "+r.URL.String(), http.StatusBadRequest)
			return
		}
		w.Header().Set("X-Consul-Index", "9")
		switch r.Header.Get("X-Test") {
		case "missing":
			http.NotFound(w, r)
		case "denied":
			http.Error(w, "Permission denied", http.StatusForbidden)
		case "malformed":
			_, _ = w.Write([]byte(`[{"Key":1}]`))
		default:
			_, _ = w.Write([]byte(`[{"Key":"app/a","Value":"eA=="},{"Key":"app/b","Value":null}]`))
		}
	}))
	defer srv.Close()
	c, err := New(t.Context(), Config{Nodes: []string{srv.URL}, AuthToken: "tok", Datacenter: "dc2", Consistency: ConsistencyStale})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }() // a test server
	get := func(test string) ([]backends.KV, *api.QueryMeta, error) {
		cl := c.clients[0]
		cl.SetHeaders(http.Header{"X-Test": {test}})
		q := c.query
		q.WaitIndex, q.WaitTime = 7, waitTime
		return c.getListing(cl, "app/", q.WithContext(t.Context()), nil)
	}
	kvs, meta, err := get("")
	if err != nil || meta.LastIndex != 9 || !slices.Equal(kvs, []backends.KV{{Key: "/app/a", Value: "x"}, {Key: "/app/b"}}) {
		t.Errorf("listing = %q, %+v, %v", kvs, meta, err)
	}
	if kvs, meta, err := get("missing"); err != nil || kvs != nil || meta.LastIndex != 9 {
		t.Errorf("404 = %q, %+v, %v; want nothing at index 9", kvs, meta, err)
	}
	if _, _, err := get("denied"); !errors.As(err, new(api.StatusError)) {
		t.Errorf("403 = %v, want an api.StatusError", err)
	}
	if _, _, err := get("malformed"); !errors.Is(err, kvlisting.ErrMalformed) {
		t.Errorf("malformed = %v, want kvlisting.ErrMalformed", err)
	}
}
