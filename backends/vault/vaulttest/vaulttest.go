// Package vaulttest is a FAKE of the few paths of Vault's HTTP API that
// the vault backend uses (mounts, KV version 1 and 2 list and read, token
// lookup and renewal, AppRole login), for tests that cannot run a real
// `vault server`, and for token TTLs of a second. Tests of the backend
// against the real server are in test/vault_test.go.
package vaulttest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
)

// Fake is a fake Vault server on a loopback port. It has a KV version 2
// mount at secret/ and a version 1 mount at kv1/; the token "root" never
// expires; AppRole role ID "role" with secret ID "Fake-Secret-ID-9q" logs in for tokens
// of a 1 s TTL that cannot be renewed.
type Fake struct {
	mu      sync.Mutex
	v2      map[string]bool           // mount path ("secret/") → KV v2
	secrets map[string]map[string]any // mount path + secret path → data
	tokens  map[string]int64          // token → TTL in seconds
	calls   map[string]int            // "METHOD path" → count
	srv     *httptest.Server

	// URL is the fake's address, http://127.0.0.1:port.
	URL string
}

// Close stops the fake.
func (f *Fake) Close() { f.srv.Close() }

// New starts a fake; Close stops it.
func New() *Fake {
	f := &Fake{v2: map[string]bool{"secret/": true, "kv1/": false}, secrets: map[string]map[string]any{},
		tokens: map[string]int64{"root": 0}, calls: map[string]int{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	f.URL = f.srv.URL
	return f
}

// Put sets the secret p, a mount path and a secret path ("secret/app/db").
func (f *Fake) Put(p string, data map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.secrets[p] = data
}

// Count returns how many requests "METHOD path" the fake received,
// such as "POST auth/approle/login".
func (f *Fake) Count(call string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[call]
}

func reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (f *Fake) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := strings.TrimPrefix(r.URL.Path, "/v1/")
	f.calls[r.Method+" "+p]++
	if p == "auth/approle/login" {
		var body map[string]string
		_ = json.NewDecoder(r.Body).Decode(&body)
		if body["role_id"] != "role" || body["secret_id"] != "Fake-Secret-ID-9q" {
			reply(w, http.StatusBadRequest, map[string]any{"errors": []string{"invalid role or secret ID"}})
			return
		}
		tok := "tok-" + strings.Repeat("x", len(f.tokens))
		f.tokens[tok] = 1
		reply(w, 200, map[string]any{"auth": map[string]any{"client_token": tok, "lease_duration": 1, "renewable": false}})
		return
	}
	ttl, ok := f.tokens[r.Header.Get("X-Vault-Token")]
	if !ok {
		reply(w, http.StatusForbidden, map[string]any{"errors": []string{"permission denied"}})
		return
	}
	switch p {
	case "auth/token/lookup-self":
		reply(w, 200, map[string]any{"data": map[string]any{"ttl": ttl, "renewable": ttl > 0}})
		return
	case "auth/token/renew-self":
		reply(w, 200, map[string]any{"auth": map[string]any{"lease_duration": ttl, "renewable": true}})
		return
	case "sys/internal/ui/mounts":
		ms := map[string]any{"cubbyhole/": map[string]any{"type": "cubbyhole"}}
		for m, v2 := range f.v2 {
			ver := "1"
			if v2 {
				ver = "2"
			}
			ms[m] = map[string]any{"type": "kv", "options": map[string]string{"version": ver}}
		}
		reply(w, 200, map[string]any{"data": map[string]any{"secret": ms}})
		return
	}
	for m, v2 := range f.v2 {
		if !strings.HasPrefix(p, m) {
			continue
		}
		rel := p[len(m):]
		list := r.URL.Query().Get("list") == "true"
		if v2 && list {
			rel = strings.TrimPrefix(rel, "metadata/")
		} else if v2 {
			rel = strings.TrimPrefix(rel, "data/")
		}
		if !list {
			data, ok := f.secrets[m+rel]
			if !ok {
				reply(w, 404, map[string]any{"errors": []string{}})
			} else if v2 {
				reply(w, 200, map[string]any{"data": map[string]any{"data": data, "metadata": map[string]any{"version": 1}}})
			} else {
				reply(w, 200, map[string]any{"data": data})
			}
			return
		}
		seen := map[string]bool{}
		for k := range f.secrets {
			if rest, ok := strings.CutPrefix(k, m+rel); ok && rest != "" {
				if i := strings.Index(rest, "/"); i >= 0 {
					rest = rest[:i+1]
				}
				seen[rest] = true
			}
		}
		if len(seen) == 0 {
			reply(w, 404, map[string]any{"errors": []string{}})
			return
		}
		keys := make([]string, 0, len(seen))
		for k := range seen {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		reply(w, 200, map[string]any{"data": map[string]any{"keys": keys}})
		return
	}
	reply(w, 404, map[string]any{"errors": []string{"no handler for route"}})
}
