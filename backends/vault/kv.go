package vault

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path"
	"sort"
	"strings"

	"github.com/kvconf/kvconf/backends"
)

// mount is a KV secrets engine mount.
type mount struct {
	path string // "secret/", always with a trailing "/"
	v2   bool
}

// mounts returns the KV mounts that the token can use, sorted by path, as
// sys/internal/ui/mounts lists them.
func (c *Client) mounts(ctx context.Context) ([]mount, error) {
	var ans struct {
		Data struct {
			Secret map[string]struct {
				Type    string            `json:"type"`
				Options map[string]string `json:"options"`
			} `json:"secret"`
		} `json:"data"`
	}
	if err := c.authed(ctx, request{op: "list mounts", method: http.MethodGet, path: "sys/internal/ui/mounts"}, &ans); err != nil {
		return nil, err
	}
	var ms []mount
	for p, m := range ans.Data.Secret {
		if m.Type != "kv" && m.Type != "generic" {
			continue
		}
		if !strings.HasSuffix(p, "/") {
			p += "/"
		}
		ms = append(ms, mount{path: p, v2: m.Options["version"] == "2"})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].path < ms[j].path })
	return ms, nil
}

// Snapshot returns the keys under prefixes (see the package doc for how
// secrets map to keys), with revision 0: Vault has none. Every call lists
// the mounts and the folders again and reads every secret the prefixes
// reach.
func (c *Client) Snapshot(ctx context.Context, prefixes []string) (backends.Snapshot, error) {
	if err := c.checkOpen(); err != nil {
		return backends.Snapshot{}, err
	}
	if err := ctx.Err(); err != nil {
		return backends.Snapshot{}, fmt.Errorf("vault: snapshot: %w", err)
	}
	kvs := map[string]string{}
	if len(prefixes) == 0 {
		return backends.Snapshot{KVs: kvs}, nil
	}
	ms, err := c.mounts(ctx)
	if err != nil {
		return backends.Snapshot{}, err
	}
	norm := make([]string, len(prefixes))
	for i, p := range prefixes {
		if !strings.HasPrefix(p, "/") {
			p = "/" + p
		}
		norm[i] = p
	}
	r := &reader{c: c, done: map[string]bool{}, kvs: kvs}
	for _, p := range norm {
		for _, m := range ms {
			root := "/" + m.path
			switch {
			case strings.HasPrefix(root, p):
				err = r.walk(ctx, m, "")
			case strings.HasPrefix(p, root):
				err = r.prefix(ctx, m, p[len(root):])
			}
			if err != nil {
				return backends.Snapshot{}, err
			}
		}
	}
	for k := range kvs {
		if !matches(k, norm) {
			delete(kvs, k)
		}
	}
	return backends.Snapshot{KVs: kvs}, nil
}

// matches reports whether key starts with one of prefixes.
func matches(key string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// reader reads the secrets of one snapshot, each once.
type reader struct {
	c    *Client
	done map[string]bool // mount path + secret path, read or listed
	kvs  map[string]string
}

// prefix reads what the mount holds under rel, a plain prefix of secret
// paths: the secrets of the folders it reaches into and the secrets above
// it, whose fields may fall under it.
func (r *reader) prefix(ctx context.Context, m mount, rel string) error {
	for i := 1; i < len(rel); i++ {
		if rel[i] == '/' {
			if err := r.read(ctx, m, rel[:i], true); err != nil {
				return err
			}
		}
	}
	dir, name := "", rel
	if i := strings.LastIndex(rel, "/"); i >= 0 {
		dir, name = rel[:i+1], rel[i+1:]
	}
	if name == "" {
		return r.walk(ctx, m, dir)
	}
	entries, err := r.list(ctx, m, dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !strings.HasPrefix(e, name) {
			continue
		}
		if err := r.entry(ctx, m, dir+e); err != nil {
			return err
		}
	}
	return nil
}

// walk reads every secret under the folder dir ("" or ending in "/").
func (r *reader) walk(ctx context.Context, m mount, dir string) error {
	if r.done[m.path+dir+"/"] {
		return nil
	}
	r.done[m.path+dir+"/"] = true
	entries, err := r.list(ctx, m, dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := r.entry(ctx, m, dir+e); err != nil {
			return err
		}
	}
	return nil
}

// entry reads p, a listing's entry: a folder when it ends in "/", else a
// secret.
func (r *reader) entry(ctx context.Context, m mount, p string) error {
	if strings.HasSuffix(p, "/") {
		return r.walk(ctx, m, p)
	}
	return r.read(ctx, m, p, false)
}

// list returns the entries of the folder dir: names of secrets, and of
// folders with a trailing "/". A folder that does not exist is empty.
func (r *reader) list(ctx context.Context, m mount, dir string) ([]string, error) {
	p := m.path + dir
	if m.v2 {
		p = m.path + "metadata/" + dir
	}
	var ans struct {
		Data struct {
			Keys []string `json:"keys"`
		} `json:"data"`
	}
	err := r.c.authed(ctx, request{op: "list", method: http.MethodGet, path: escapePath(p), query: "list=true"}, &ans)
	if isStatus(err, http.StatusNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return ans.Data.Keys, nil
}

// read reads the secret p of the mount and adds its keys. A secret that
// does not exist, or whose latest version is deleted, adds none; so does
// one the token may not read, when optional (a secret above a prefix).
func (r *reader) read(ctx context.Context, m mount, p string, optional bool) error {
	if r.done[m.path+p] {
		return nil
	}
	r.done[m.path+p] = true
	api := m.path + p
	if m.v2 {
		api = m.path + "data/" + p
	}
	var ans struct {
		Data json.RawMessage `json:"data"`
	}
	err := r.c.authed(ctx, request{op: "read", method: http.MethodGet, path: escapePath(api)}, &ans)
	if isStatus(err, http.StatusNotFound) || (optional && isStatus(err, http.StatusForbidden)) {
		return nil
	}
	if err != nil {
		return err
	}
	raw := ans.Data
	if m.v2 {
		var v2 struct {
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(raw, &v2); err != nil {
			return fmt.Errorf("vault: read %s: decode answer: %w", api, err)
		}
		raw = v2.Data
	}
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil
	}
	var data map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // numbers keep their text in the JSON value
	if err := dec.Decode(&data); err != nil {
		return fmt.Errorf("vault: read %s: decode secret: %w", api, err)
	}
	if data == nil {
		return nil
	}
	return addSecret(r.kvs, "/"+m.path+p, data)
}

// addSecret adds the keys of the secret data at key, as confd does: a
// secret whose only field is the string "value" is that string; any other
// is its JSON, plus its string fields flattened under it.
func addSecret(kvs map[string]string, key string, data map[string]any) error {
	if v, ok := data["value"].(string); ok && len(data) == 1 {
		kvs[key] = v
		return nil
	}
	js, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("vault: secret %s: encode as JSON: %w", key, err)
	}
	kvs[key] = string(js)
	flatten(kvs, key, data)
	return nil
}

// flatten adds the string fields of v under key, one level deeper for
// each object; other types show only in the secret's JSON.
func flatten(kvs map[string]string, key string, v any) {
	switch v := v.(type) {
	case string:
		kvs[key] = v
	case map[string]any:
		for k, iv := range v {
			flatten(kvs, path.Join(key, "/", k), iv)
		}
	}
}
