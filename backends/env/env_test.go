package env_test

import (
	"errors"
	"maps"
	"os"
	"testing"

	"github.com/BurntSushi/toml"
	"go.uber.org/goleak"

	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/backends/backendtest"
	"github.com/kvconf/kvconf/backends/env"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// The tests of this package change the environment: none is parallel.

func TestConformance(t *testing.T) {
	backendtest.Run(t, backendtest.Harness{
		Open: func(t *testing.T) backends.Backend {
			c, err := env.New(t.Context(), env.Config{})
			if err != nil {
				t.Fatal(err)
			}
			return c
		},
		Put: func(t *testing.T, key, value string) {
			t.Setenv(env.VarName(key), value)
		},
		Delete: func(t *testing.T, key string) {
			unsetenv(t, env.VarName(key))
		},
	})
}

// newClient returns a client that is closed when the test ends.
func newClient(t *testing.T) *env.Client {
	t.Helper()
	c, err := env.New(t.Context(), env.Config{})
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

// unsetenv unsets name until the end of the test.
func unsetenv(t *testing.T, name string) {
	t.Helper()
	t.Setenv(name, "") // restores the old value at the end of the test
	if err := os.Unsetenv(name); err != nil {
		t.Fatal(err)
	}
}

func TestMapping(t *testing.T) {
	tests := []struct {
		name string
		key  string
		env  string
		back string // Key(env), when it differs from key
	}{
		{name: "nested", key: "/database/host", env: "DATABASE_HOST"},
		{name: "one level", key: "/port", env: "PORT"},
		{name: "no leading slash", key: "database/host", env: "DATABASE_HOST", back: "/database/host"},
		{name: "digits", key: "/app/1/port", env: "APP_1_PORT"},
		{name: "underscore in key", key: "/my_app/port", env: "MY_APP_PORT", back: "/my/app/port"},
		{name: "upper case in key", key: "/App/Port", env: "APP_PORT", back: "/app/port"},
		{name: "trailing slash", key: "/app/", env: "APP_", back: "/app/"},
		{name: "root", key: "/", env: "", back: "/"},
		{name: "double slash", key: "/a//b", env: "A__B"},
		{name: "unicode", key: "/café/ümlaut", env: "CAFÉ_ÜMLAUT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := env.VarName(tt.key); got != tt.env {
				t.Errorf("VarName(%q) = %q, want %q", tt.key, got, tt.env)
			}
			back := tt.back
			if back == "" {
				back = tt.key
			}
			if got := env.Key(tt.env); got != back {
				t.Errorf("Key(%q) = %q, want %q", tt.env, got, back)
			}
		})
	}
}

func TestSnapshot(t *testing.T) {
	vars := map[string]string{
		"KVCONFENV_DATABASE_HOST": "db1",
		"KVCONFENV_DATABASE_PORT": "5432",
		"KVCONFENV_DATABASEX":     "x",
		"KVCONFENV_WEB_URL":       "http://web/",
		"KVCONFENV_EMPTY":         "",
		"kvconfenv_lower_case":    "lower",
		"KVCONFENV_DUP_KEY":       "upper wins",
		"kvconfenv_dup_key":       "lower loses",
		"Kvconfenv_Dup_Key":       "mixed loses",
	}
	for k, v := range vars {
		t.Setenv(k, v)
	}
	tests := []struct {
		name     string
		prefixes []string
		want     map[string]string
	}{
		{
			name:     "one prefix",
			prefixes: []string{"/kvconfenv/database"},
			want: map[string]string{
				"/kvconfenv/database/host": "db1",
				"/kvconfenv/database/port": "5432",
				"/kvconfenv/databasex":     "x",
			},
		},
		{
			name:     "prefix ending in slash",
			prefixes: []string{"/kvconfenv/database/"},
			want: map[string]string{
				"/kvconfenv/database/host": "db1",
				"/kvconfenv/database/port": "5432",
			},
		},
		{
			name:     "several prefixes",
			prefixes: []string{"/kvconfenv/database/host", "/kvconfenv/web", "/kvconfenv/empty"},
			want: map[string]string{
				"/kvconfenv/database/host": "db1",
				"/kvconfenv/web/url":       "http://web/",
				"/kvconfenv/empty":         "",
			},
		},
		{
			// Prefixes are upper-cased, as with confd: lower-case
			// variables are reached only through "/".
			name:     "upper-case variables only",
			prefixes: []string{"/kvconfenv/lower"},
			want:     map[string]string{},
		},
		{
			name:     "same key twice",
			prefixes: []string{"/kvconfenv/dup"},
			want:     map[string]string{"/kvconfenv/dup/key": "upper wins"},
		},
		{
			name:     "key from a prefix with upper case",
			prefixes: []string{"/KvconfEnv/Web"},
			want:     map[string]string{"/kvconfenv/web/url": "http://web/"},
		},
		{
			name:     "no prefix",
			prefixes: nil,
			want:     map[string]string{},
		},
	}
	c := newClient(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := c.Snapshot(t.Context(), tt.prefixes)
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(s.KVs, tt.want) {
				t.Errorf("Snapshot(%q) = %v, want %v", tt.prefixes, s.KVs, tt.want)
			}
		})
	}

	t.Run("root", func(t *testing.T) {
		s, err := c.Snapshot(t.Context(), []string{"/"})
		if err != nil {
			t.Fatal(err)
		}
		for k, want := range map[string]string{
			"/kvconfenv/lower/case": "lower",
			"/kvconfenv/dup/key":    "upper wins",
			"/kvconfenv/databasex":  "x",
		} {
			if got := s.KVs[k]; got != want {
				t.Errorf("Snapshot(/)[%s] = %q, want %q", k, got, want)
			}
		}
	})
}

func TestRevision(t *testing.T) {
	c := newClient(t)
	rev := func() uint64 {
		t.Helper()
		s, err := c.Snapshot(t.Context(), []string{"/kvconfenv"})
		if err != nil {
			t.Fatal(err)
		}
		return s.Rev
	}
	if got := rev(); got != 1 {
		t.Fatalf("first revision = %d, want 1", got)
	}
	if got := rev(); got != 1 {
		t.Errorf("revision with the same environment = %d, want 1", got)
	}
	// A change outside the requested prefix changes the revision too: the
	// counter follows the whole environment.
	t.Setenv("KVCONFENV_OTHER_REV", "1")
	if got := rev(); got != 2 {
		t.Errorf("revision after a Setenv = %d, want 2", got)
	}
	unsetenv(t, "KVCONFENV_OTHER_REV")
	if got := rev(); got != 3 {
		t.Errorf("revision after an Unsetenv = %d, want 3", got)
	}
}

func TestClosed(t *testing.T) {
	c, err := env.New(t.Context(), env.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Snapshot(t.Context(), []string{"/"}); !errors.Is(err, backends.ErrClosed) {
		t.Errorf("Snapshot after Close: err = %v, want backends.ErrClosed", err)
	}
}

func TestNotWatcher(t *testing.T) {
	var b backends.Backend = new(env.Client)
	if _, ok := b.(backends.Watcher); ok {
		t.Error("env.Client implements backends.Watcher; the core must poll it instead")
	}
}

func TestRegistered(t *testing.T) {
	cfg, err := backends.Decode("env", nil)
	if err != nil {
		t.Fatal(err)
	}
	if d, ok := cfg.(backends.Describer); !ok || d.Description() == "" {
		t.Errorf("env config %T has no description", cfg)
	}
	b, err := cfg.Open(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	var oe *backends.OptionError
	if _, err := backends.Decode("env", map[string]any{"nodes": []string{"x"}}); !errors.As(err, &oe) || oe.Key != "nodes" {
		t.Errorf("Decode with an unknown option: err = %v, want an *OptionError for nodes", err)
	}
}

func TestSample(t *testing.T) {
	var doc struct {
		Backends map[string]map[string]any `toml:"backends"`
	}
	md, err := toml.Decode(env.Sample, &doc)
	if err != nil {
		t.Fatal(err)
	}
	if len(md.Undecoded()) != 0 {
		t.Errorf("sample has keys outside [backends.env]: %v", md.Undecoded())
	}
	opts, ok := doc.Backends["env"]
	if !ok || opts["type"] != "env" {
		t.Fatalf("sample has no [backends.env] table with type = \"env\": %v", doc.Backends)
	}
	delete(opts, "type") // the config file's, not the backend's
	if _, err := backends.Decode("env", opts); err != nil {
		t.Errorf("Decode(sample): %v", err)
	}
}
