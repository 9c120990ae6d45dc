package test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/backends/backendtest"
	"github.com/kvconf/kvconf/backends/vault"
	"github.com/kvconf/kvconf/backends/vault/vaulttest"
)

// The tests of the Vault backend run a real `vault server` from
// $VAULT_BIN (see vaultBin), one per test, on a loopback port. It keeps
// its data in a file storage backend rather than in memory (-dev), so
// that a restart keeps the secrets, as a production server does: each
// start unseals it again with its one unseal key.

// vaultServer is a Vault server run by a test.
type vaultServer struct {
	bin    string
	config string
	addr   string // http://127.0.0.1:port
	root   string // root token
	unseal string // the unseal key

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	log  bytes.Buffer
}

// vaultBin returns the vault binary of $VAULT_BIN. Unset or missing, it
// fails the test under CI and skips it elsewhere.
func vaultBin(t testing.TB) string {
	t.Helper()
	return binFromEnv(t, "VAULT_BIN", `set VAULT_BIN="$(./scripts/vault-bin)" (it builds vault v1.21.4 once), or run make test`)
}

// startVault starts, initialises and unseals a server, with a KV version
// 2 mount at secret/ (as a dev server has) and a version 1 mount at kv1/,
// and stops it when the test ends.
func startVault(t testing.TB) *vaultServer {
	t.Helper()
	dir := t.TempDir()
	v := &vaultServer{bin: vaultBin(t), addr: "http://" + freePort(t)}
	hcl := fmt.Sprintf(`storage "file" {
  path = %q
}
listener "tcp" {
  address = %q
  tls_disable = true
}
disable_mlock = true
api_addr = %q
`, filepath.Join(dir, "data"), strings.TrimPrefix(v.addr, "http://"), v.addr)
	v.config = filepath.Join(dir, "vault.hcl")
	if err := os.WriteFile(v.config, []byte(hcl), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		v.stop(t)
		if t.Failed() {
			v.mu.Lock()
			t.Logf("vault server log:\n%s", v.log.String())
			v.mu.Unlock()
		}
	})
	v.start(t)
	v.mount(t, "secret", 2)
	v.mount(t, "kv1", 1)
	return v
}

// start runs the server, initialises it the first time, unseals it and
// waits until it serves.
func (v *vaultServer) start(t testing.TB) {
	t.Helper()
	cmd := exec.Command(v.bin, "server", "-config", v.config, "-log-level", "warn")
	cmd.Stdout, cmd.Stderr = &vaultLog{v}, &vaultLog{v}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait() // its status tells nothing: stop kills it
		close(done)
	}()
	v.mu.Lock()
	v.cmd, v.done = cmd, done
	v.mu.Unlock()

	deadline := time.Now().Add(60 * time.Second)
	for {
		code, _, err := v.call("GET", "sys/health", "", nil)
		if err == nil && code == http.StatusOK {
			return
		}
		if err == nil && code == http.StatusNotImplemented { // not initialised
			var init struct {
				Keys      []string `json:"keys"`
				RootToken string   `json:"root_token"`
			}
			v.must(t, "PUT", "sys/init", "", map[string]any{"secret_shares": 1, "secret_threshold": 1}, &init)
			v.unseal, v.root = init.Keys[0], init.RootToken
			continue
		}
		if err == nil && code == http.StatusServiceUnavailable && v.unseal != "" { // sealed
			v.must(t, "PUT", "sys/unseal", "", map[string]any{"key": v.unseal}, nil)
			continue
		}
		select {
		case <-done:
			t.Fatalf("vault server exited (health: %d, %v)", code, err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("vault server not ready after 60s (health: %d, %v)", code, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop stops the server, if it runs, and waits for it to exit.
func (v *vaultServer) stop(t testing.TB) {
	t.Helper()
	v.mu.Lock()
	cmd, done := v.cmd, v.done
	v.cmd = nil
	v.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM) // it may have exited already
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// restart stops the server and starts it again on the same storage.
func (v *vaultServer) restart(t testing.TB) {
	t.Helper()
	v.stop(t)
	v.start(t)
}

type vaultLog struct{ v *vaultServer }

func (w *vaultLog) Write(p []byte) (int, error) {
	w.v.mu.Lock()
	defer w.v.mu.Unlock()
	return w.v.log.Write(p)
}

// call sends a request to the HTTP API with token (none if empty) and
// decodes a JSON answer into out; it returns the status code.
func (v *vaultServer) call(method, path, token string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, v.addr+"/v1/"+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if token != "" {
		req.Header.Set("X-Vault-Token", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer func() { _ = resp.Body.Close() }() // read to the end below or abandoned
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, err
}

// must sends a request with token (the root token if empty) and fails the
// test unless it succeeds; it decodes the answer into out if not nil.
func (v *vaultServer) must(t testing.TB, method, path, token string, body, out any) {
	t.Helper()
	if token == "" {
		token = v.root
	}
	code, data, err := v.call(method, path, token, body)
	if err != nil {
		t.Fatalf("vault %s %s: %v", method, path, err)
	}
	if code/100 != 2 {
		t.Fatalf("vault %s %s: %d %s", method, path, code, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("vault %s %s: %v", method, path, err)
		}
	}
}

// mount (re)creates a KV mount of that version at path, empty.
func (v *vaultServer) mount(t testing.TB, path string, version int) {
	t.Helper()
	v.must(t, "DELETE", "sys/mounts/"+path, "", nil, nil)
	v.must(t, "POST", "sys/mounts/"+path, "", map[string]any{"type": "kv", "options": map[string]string{"version": fmt.Sprint(version)}}, nil)
	if version == 2 {
		// A new version 2 mount takes writes once it has set itself up.
		deadline := time.Now().Add(60 * time.Second)
		for {
			code, _, err := v.call("POST", path+"/data/kvconf-ready", v.root, map[string]any{"data": map[string]string{"a": "b"}})
			if err == nil && code == http.StatusOK {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("mount %s not writable after 60s: %d %v", path, code, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		v.must(t, "DELETE", path+"/metadata/kvconf-ready", "", nil, nil)
	}
}

// put writes the secret p (a path inside the mount) of a mount of that
// version.
func (v *vaultServer) put(t testing.TB, mount string, version int, p string, data map[string]any) {
	t.Helper()
	if version == 2 {
		v.must(t, "POST", mount+"/data/"+p, "", map[string]any{"data": data}, nil)
		return
	}
	v.must(t, "POST", mount+"/"+p, "", data, nil)
}

// del deletes the secret p of the mount, every version of it.
func (v *vaultServer) del(t testing.TB, mount string, version int, p string) {
	t.Helper()
	if version == 2 {
		v.must(t, "DELETE", mount+"/metadata/"+p, "", nil, nil)
		return
	}
	v.must(t, "DELETE", mount+"/"+p, "", nil, nil)
}

// openVault opens the backend on cfg (the root token by default) and
// closes it when the test ends.
func openVault(t testing.TB, v *vaultServer, cfg vault.Config) *vault.Client {
	t.Helper()
	if len(cfg.Nodes) == 0 {
		cfg.Nodes = []string{v.addr}
	}
	if cfg.AuthType == "" {
		cfg.AuthType, cfg.AuthToken = "token", v.root
	}
	c, err := vault.New(reqCtx(t), cfg)
	if err != nil {
		t.Fatalf("vault.New: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

func vaultSnapshot(t testing.TB, c *vault.Client, prefixes ...string) map[string]string {
	t.Helper()
	s, err := c.Snapshot(reqCtx(t), prefixes)
	if err != nil {
		t.Fatalf("Snapshot(%q): %v", prefixes, err)
	}
	return s.KVs
}

// TestVaultConformance runs the backend conformance suite against a KV
// version 2 mount and a version 1 mount at kvconftest/: each conformance
// key is a secret whose only field is "value", which is that key's value.
func TestVaultConformance(t *testing.T) {
	v := startVault(t)
	for _, version := range []int{2, 1} {
		t.Run(fmt.Sprintf("v%d", version), func(t *testing.T) {
			backendtest.Run(t, backendtest.Harness{
				Open: func(t *testing.T) backends.Backend {
					v.mount(t, "kvconftest", version)
					c, err := vault.New(t.Context(), vault.Config{Nodes: []string{v.addr}, AuthType: "token", AuthToken: v.root})
					if err != nil {
						t.Fatal(err)
					}
					return c
				},
				Put: func(t *testing.T, key, value string) {
					v.put(t, "kvconftest", version, strings.TrimPrefix(key, "/kvconftest/"), map[string]any{"value": value})
				},
				Delete: func(t *testing.T, key string) {
					v.del(t, "kvconftest", version, strings.TrimPrefix(key, "/kvconftest/"))
				},
			})
		})
	}
}

// TestVaultKeys checks confd's mapping of secrets to keys on both KV
// versions: a "value"-only secret is its value; any other is its JSON plus
// its string fields, nested objects one level deeper, other types only in
// the JSON; prefixes match plainly, reaching into the fields of a secret
// above them; a soft-deleted version 2 secret does not show.
func TestVaultKeys(t *testing.T) {
	v := startVault(t)
	c := openVault(t, v, vault.Config{})
	db := map[string]any{"host": "db.example", "port": "5432", "max": 10, "tls": map[string]any{"ca": "pem"}}
	for _, m := range []struct {
		mount   string
		version int
	}{{"secret", 2}, {"kv1", 1}} {
		v.put(t, m.mount, m.version, "app/db", db)
		v.put(t, m.mount, m.version, "app/single", map[string]any{"value": "only"})
		v.put(t, m.mount, m.version, "app/dbx/name", map[string]any{"value": "x"})
		root := "/" + m.mount
		want := map[string]string{
			root + "/app/db":        `{"host":"db.example","max":10,"port":"5432","tls":{"ca":"pem"}}`,
			root + "/app/db/host":   "db.example",
			root + "/app/db/port":   "5432",
			root + "/app/db/tls/ca": "pem",
			root + "/app/single":    "only",
			root + "/app/dbx/name":  "x",
		}
		if got := vaultSnapshot(t, c, root+"/app"); !maps.Equal(got, want) {
			t.Errorf("Snapshot(%s/app) = %v, want %v", root, got, want)
		}
		if got, w := vaultSnapshot(t, c, root+"/app/db/h"), map[string]string{root + "/app/db/host": "db.example"}; !maps.Equal(got, w) {
			t.Errorf("Snapshot(%s/app/db/h) = %v, want %v", root, got, w)
		}
		if got := vaultSnapshot(t, c, root+"/app/db"); len(got) != 5 || got[root+"/app/dbx/name"] != "x" {
			t.Errorf("Snapshot(%s/app/db) = %v, want the 4 keys of app/db and app/dbx/name", root, got)
		}
	}
	all := vaultSnapshot(t, c, "/")
	if all["/secret/app/single"] != "only" || all["/kv1/app/single"] != "only" {
		t.Errorf("Snapshot(/) = %v, want the keys of both mounts", all)
	}
	v.must(t, "DELETE", "secret/data/app/single", "", nil, nil) // soft delete
	if got := vaultSnapshot(t, c, "/secret/app/single"); len(got) != 0 {
		t.Errorf("Snapshot of a soft-deleted secret = %v, want no key", got)
	}
}

// TestVaultTokenRenewal gives the client a renewable token with a 10 s
// TTL and checks that it still reads after 25 s: only renewals keep it
// alive, since an auth type token cannot log in again.
func TestVaultTokenRenewal(t *testing.T) {
	t.Parallel()
	v := startVault(t)
	v.put(t, "secret", 2, "app", map[string]any{"value": "v"})
	var tok struct {
		Auth struct {
			ClientToken string `json:"client_token"`
		} `json:"auth"`
	}
	v.must(t, "POST", "auth/token/create", "", map[string]any{"ttl": "10s", "renewable": true, "policies": []string{"root"}}, &tok)
	c := openVault(t, v, vault.Config{AuthType: "token", AuthToken: tok.Auth.ClientToken})
	time.Sleep(25 * time.Second)
	if got := vaultSnapshot(t, c, "/secret/app"); got["/secret/app"] != "v" {
		t.Errorf("Snapshot after 25 s = %v", got)
	}
	code, _, err := v.call("GET", "auth/token/lookup-self", tok.Auth.ClientToken, nil)
	if err != nil || code != http.StatusOK {
		t.Errorf("token lookup after 25 s: %d %v, want it alive", code, err)
	}
}

// setupAppRole enables AppRole and userpass with a policy that reads
// secret/, and returns a role ID and a secret ID whose tokens live 5 s
// at most, and a user kvconf with password userPW.
func setupAppRole(t testing.TB, v *vaultServer) (roleID, secretID string) {
	t.Helper()
	v.must(t, "PUT", "sys/policies/acl/kvconf", "", map[string]any{"policy": `path "secret/*" { capabilities = ["read", "list"] }`}, nil)
	v.must(t, "POST", "sys/auth/approle", "", map[string]any{"type": "approle"}, nil)
	v.must(t, "POST", "auth/approle/role/kvconf", "", map[string]any{"token_policies": []string{"kvconf"}, "token_ttl": "3s", "token_max_ttl": "5s"}, nil)
	var rid struct {
		Data struct {
			RoleID string `json:"role_id"`
		} `json:"data"`
	}
	v.must(t, "GET", "auth/approle/role/kvconf/role-id", "", nil, &rid)
	var sid struct {
		Data struct {
			SecretID string `json:"secret_id"`
		} `json:"data"`
	}
	v.must(t, "POST", "auth/approle/role/kvconf/secret-id", "", map[string]any{}, &sid)
	v.must(t, "POST", "sys/auth/userpass", "", map[string]any{"type": "userpass"}, nil)
	v.must(t, "POST", "auth/userpass/users/kvconf", "", map[string]any{"password": "userPW-9f3k", "token_policies": []string{"kvconf"}}, nil)
	return rid.Data.RoleID, sid.Data.SecretID
}

// TestVaultLogin logs in with AppRole, whose tokens die after 5 s, and
// reads for 15 s (the client logs in again as they expire), and with
// userpass; a token of the policy reads secret/ but is refused kv1/.
func TestVaultLogin(t *testing.T) {
	t.Parallel()
	v := startVault(t)
	roleID, secretID := setupAppRole(t, v)
	v.put(t, "secret", 2, "app/db", map[string]any{"password": "pw-1"})
	c := openVault(t, v, vault.Config{AuthType: "approle", RoleID: roleID, SecretID: secretID})
	for i := range 6 {
		if got := vaultSnapshot(t, c, "/secret/app"); got["/secret/app/db/password"] != "pw-1" {
			t.Fatalf("Snapshot %d = %v", i, got)
		}
		time.Sleep(2500 * time.Millisecond)
	}
	u := openVault(t, v, vault.Config{AuthType: "userpass", Username: "kvconf", Password: "userPW-9f3k"})
	if got := vaultSnapshot(t, u, "/secret/app/db/password"); got["/secret/app/db/password"] != "pw-1" {
		t.Errorf("userpass Snapshot = %v", got)
	}
	v.put(t, "kv1", 1, "x", map[string]any{"value": "y"})
	// kv1/ is not in the policy: the mount is hidden or refused.
	if s, err := u.Snapshot(reqCtx(t), []string{"/kv1/x"}); err == nil && len(s.KVs) != 0 {
		t.Errorf("Snapshot(/kv1/x) without the policy = %v, want nothing", s.KVs)
	} else {
		t.Logf("Snapshot(/kv1/x) without the policy: %v", err)
	}
}

// vaultConfdir writes a conf.d and template reading /secret/myapp from
// Vault into DIR/myapp.conf.
func vaultConfdir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"conf.d/myapp.toml": "[template]\nsrc = \"myapp.conf.tmpl\"\ndest = \"" +
			filepath.Join(dir, "myapp.conf") + "\"\nprefix = \"/secret/myapp\"\nkeys = [\"/database\", \"/mode\"]\n",
		"templates/myapp.conf.tmpl": "user = {{getv \"/database/user\"}}\npassword = {{getv \"/database/password\"}}\nmode = {{getv \"/mode\"}}\n",
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

// kvconfCmd returns the kvconf command with confd's flags, an empty config
// file and no VAULT_ variable.
func kvconfCmd(ctx context.Context, t *testing.T, dir string, args ...string) *exec.Cmd {
	t.Helper()
	empty := filepath.Join(dir, "confd.toml")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, kvconfBin, append([]string{"--log-level", "debug", "--confdir", dir}, args...)...)
	cmd.Env = append(os.Environ(), "KVCONF_CONFIG_FILE="+empty, "VAULT_ADDR=", "VAULT_TOKEN=")
	return cmd
}

// vaultEventually polls cond until it holds, for up to 60 s: a restart
// of the server may put kvconf's retries a few backoff steps apart.
func vaultEventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after 60s waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// leaked returns the planted secrets that out shows.
func leaked(out string, secrets ...string) []string {
	var found []string
	for _, s := range secrets {
		if strings.Contains(out, s) {
			found = append(found, s)
		}
	}
	return found
}

// TestVaultKvconf runs the kvconf binary with confd's command line:
// -onetime with a token and with AppRole; -watch with -interval (kvconf
// polls a backend that cannot watch) through a server restart; and wrong
// credentials, which fail naming the flag. No
// output shows a token, a credential or a secret's value.
func TestVaultKvconf(t *testing.T) {
	v := startVault(t)
	roleID, secretID := setupAppRole(t, v)
	const pw1, pw2, pw3 = "Pl4nted-pw-one", "Pl4nted-pw-two", "Pl4nted-pw-three"
	v.put(t, "secret", 2, "myapp/database", map[string]any{"user": "rob", "password": pw1})
	v.put(t, "secret", 2, "myapp/mode", map[string]any{"value": "prod"})
	planted := []string{pw1, pw2, pw3, v.root, secretID, v.unseal}
	var outputs []string
	check := func(dir, pw string) bool {
		got, err := os.ReadFile(filepath.Join(dir, "myapp.conf"))
		return err == nil && string(got) == "user = rob\npassword = "+pw+"\nmode = prod\n"
	}
	token := []string{"--backend", "vault", "--node", v.addr, "--auth-type", "token", "--auth-token", v.root}

	t.Run("onetime", func(t *testing.T) {
		for name, auth := range map[string][]string{
			"token":    token,
			"app-role": {"--backend", "vault", "--node", v.addr, "--auth-type", "app-role", "--role-id", roleID, "--secret-id", secretID},
		} {
			dir := vaultConfdir(t)
			out, err := kvconfCmd(t.Context(), t, dir, append([]string{"--onetime"}, auth...)...).CombinedOutput()
			outputs = append(outputs, string(out))
			if err != nil {
				t.Fatalf("%s: kvconf: %v\n%s", name, err, out)
			}
			if !check(dir, pw1) {
				t.Errorf("%s: myapp.conf not rendered with the secret\n%s", name, out)
			}
		}
	})

	t.Run("bad credentials", func(t *testing.T) {
		for _, tt := range []struct {
			name string
			args []string
			want string
		}{
			{"token", []string{"--auth-type", "token", "--auth-token", "hvs.Wr0ngT0kenPlanted"}, "-auth-token"},
			{"secret-id", []string{"--auth-type", "app-role", "--role-id", roleID, "--secret-id", "0000-Wr0ngSecretPlanted"}, "-secret-id"},
			{"password", []string{"--auth-type", "userpass", "--username", "kvconf", "--password", "Wr0ngPWPlanted"}, "-password"},
			{"no auth type", []string{"--auth-token", v.root}, "-auth-type"},
		} {
			dir := vaultConfdir(t)
			out, err := kvconfCmd(t.Context(), t, dir, append([]string{"--onetime", "--backend", "vault", "--node", v.addr}, tt.args...)...).CombinedOutput()
			outputs = append(outputs, string(out))
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				t.Errorf("%s: kvconf = %v, want a failure\n%s", tt.name, err, out)
			}
			if !strings.Contains(string(out), tt.want) {
				t.Errorf("%s: output does not name %s:\n%s", tt.name, tt.want, out)
			}
			if l := leaked(string(out), "Wr0ngT0kenPlanted", "Wr0ngSecretPlanted", "Wr0ngPWPlanted"); len(l) > 0 {
				t.Errorf("%s: output shows %q:\n%s", tt.name, l, out)
			}
		}
	})

	t.Run("interval", func(t *testing.T) {
		dir := vaultConfdir(t)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		var out lockedBuf
		cmd := kvconfCmd(ctx, t, dir, append([]string{"--watch", "--interval", "1"}, token...)...)
		cmd.Stdout, cmd.Stderr = &out, &out
		cmd.WaitDelay = 10 * time.Second
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait() // stopped by the test
			outputs = append(outputs, out.String())
			if t.Failed() {
				t.Logf("kvconf output:\n%s", out.String())
			}
		}()
		vaultEventually(t, "first render", func() bool { return check(dir, pw1) })
		v.put(t, "secret", 2, "myapp/database", map[string]any{"user": "rob", "password": pw2})
		vaultEventually(t, "render after a change", func() bool { return check(dir, pw2) })
		v.restart(t)
		v.put(t, "secret", 2, "myapp/database", map[string]any{"user": "rob", "password": pw3})
		vaultEventually(t, "render after a server restart", func() bool { return check(dir, pw3) })
	})

	all := strings.Join(outputs, "\n")
	if l := leaked(all, planted...); len(l) > 0 {
		t.Errorf("kvconf output shows %d planted secrets:\n%s", len(l), all)
	}
	if !strings.Contains(all, "vault") {
		t.Errorf("no output captured: %q", all)
	}
}

// TestVaultKvconfFake runs the kvconf binary against the FAKE Vault API
// of package vaulttest (not a real server: see TestVaultKvconf for that),
// so that the command line is checked where no vault binary is at hand:
// -onetime with a token and with AppRole, polling every -interval, a
// refused token naming -auth-token, and no planted secret in the output.
func TestVaultKvconfFake(t *testing.T) {
	f := vaulttest.New()
	defer f.Close()
	const pw1, pw2 = "Pl4nted-fake-one", "Pl4nted-fake-two"
	f.Put("secret/myapp/database", map[string]any{"user": "rob", "password": pw1})
	f.Put("secret/myapp/mode", map[string]any{"value": "prod"})
	check := func(dir, pw string) bool {
		got, err := os.ReadFile(filepath.Join(dir, "myapp.conf"))
		return err == nil && string(got) == "user = rob\npassword = "+pw+"\nmode = prod\n"
	}
	var outputs []string
	for name, auth := range map[string][]string{
		"token":    {"--auth-type", "token", "--auth-token", "root"},
		"app-role": {"--auth-type", "app-role", "--role-id", "role", "--secret-id", "Fake-Secret-ID-9q"},
	} {
		dir := vaultConfdir(t)
		out, err := kvconfCmd(t.Context(), t, dir, append([]string{"--onetime", "--backend", "vault", "--node", f.URL}, auth...)...).CombinedOutput()
		outputs = append(outputs, string(out))
		if err != nil || !check(dir, pw1) {
			t.Errorf("%s: kvconf = %v, or myapp.conf not rendered:\n%s", name, err, out)
		}
	}
	dir := vaultConfdir(t)
	out, err := kvconfCmd(t.Context(), t, dir, "--onetime", "--backend", "vault", "--node", f.URL, "--auth-type", "token", "--auth-token", "Wr0ngFakeT0ken").CombinedOutput()
	outputs = append(outputs, string(out))
	if err == nil || !strings.Contains(string(out), "-auth-token") {
		t.Errorf("kvconf with a wrong token = %v, want a failure naming -auth-token:\n%s", err, out)
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var poll lockedBuf
	cmd := kvconfCmd(ctx, t, dir, "--interval", "1", "--backend", "vault", "--node", f.URL, "--auth-type", "token", "--auth-token", "root")
	cmd.Stdout, cmd.Stderr = &poll, &poll
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	vaultEventually(t, "first render", func() bool { return check(dir, pw1) })
	f.Put("secret/myapp/database", map[string]any{"user": "rob", "password": pw2})
	vaultEventually(t, "render after a change", func() bool { return check(dir, pw2) })
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait() // stopped by the test
	outputs = append(outputs, poll.String())

	all := strings.Join(outputs, "\n")
	if l := leaked(all, pw1, pw2, "Wr0ngFakeT0ken", "Fake-Secret-ID-9q"); len(l) > 0 {
		t.Errorf("kvconf output shows %q:\n%s", l, all)
	}
}
