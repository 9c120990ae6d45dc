package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kvconf/kvconf/internal/metrics"
	"github.com/kvconf/kvconf/resource"
)

// get fetches path from the server at base and returns the status code
// and body.
func get(t *testing.T, base, path string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// TestServe serves a real listener on a random loopback port and walks
// /health and /ready through start-up, and /metrics.
func TestServe(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	m.Expect([]metrics.Resource{{Name: "conf.d/a.toml", Dest: "/out/a"}}, []string{"etcd"})
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	log := slog.New(slog.DiscardHandler)
	go func() { done <- Serve(ctx, ln, Handler(m, log), log) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve = %v, want nil after ctx is done", err)
		}
	})
	base := "http://" + ln.Addr().String()

	if code, _ := get(t, base, "/health"); code != http.StatusServiceUnavailable {
		t.Errorf("/health before the loops run = %d, want 503", code)
	}
	m.Status().SetRunning(true)
	if code, _ := get(t, base, "/health"); code != http.StatusOK {
		t.Errorf("/health while the loops run = %d, want 200", code)
	}
	code, body := get(t, base, "/ready")
	if code != http.StatusServiceUnavailable {
		t.Errorf("/ready before anything = %d, want 503", code)
	}
	var rep metrics.Report
	if err := json.Unmarshal([]byte(body), &rep); err != nil {
		t.Fatalf("/ready body %q: %v", body, err)
	}
	if want := []string{"backend etcd: no answer yet", "resource conf.d/a.toml: not rendered yet"}; strings.Join(rep.NotReady, "|") != strings.Join(want, "|") {
		t.Errorf("/ready names %q, want %q", rep.NotReady, want)
	}
	m.Backend("etcd").ObserveBackend(resource.BackendEvent{Kind: resource.BackendSnapshot, Rev: 5})
	m.ObserveResource(resource.Event{Kind: resource.EventDone, Resource: "conf.d/a.toml", Err: errors.New("check_cmd: exit status 1")})
	if code, _ := get(t, base, "/ready"); code != http.StatusServiceUnavailable {
		t.Errorf("/ready after a failure only = %d, want 503", code)
	}
	m.ObserveResource(resource.Event{Kind: resource.EventDone, Resource: "conf.d/a.toml"})
	code, body = get(t, base, "/ready?verbose")
	if code != http.StatusOK {
		t.Errorf("/ready after the first render = %d, want 200: %s", code, body)
	}
	var v struct {
		Resources []map[string]any `json:"resources"`
		Backends  []map[string]any `json:"backends"`
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Resources) != 1 || v.Resources[0]["file"] != "conf.d/a.toml" || v.Resources[0]["dest"] != "/out/a" ||
		v.Resources[0]["last_success"] == nil || v.Resources[0]["last_error"] != "" {
		t.Errorf("verbose resources = %v", v.Resources)
	}
	if len(v.Backends) != 1 || v.Backends[0]["name"] != "etcd" || v.Backends[0]["revision"] != 5.0 {
		t.Errorf("verbose backends = %v", v.Backends)
	}
	code, body = get(t, base, "/metrics")
	if code != http.StatusOK || !strings.Contains(body, `kvconf_backend_revision{backend="etcd"} 5`) ||
		!strings.Contains(body, `kvconf_resource_failures_total{resource="conf.d/a.toml"} 1`) {
		t.Errorf("/metrics = %d:\n%s", code, body)
	}
}
