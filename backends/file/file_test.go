package file_test

import (
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"go.uber.org/goleak"
	"go.yaml.in/yaml/v3"

	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/backends/backendtest"
	"github.com/kvconf/kvconf/backends/file"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// store is a YAML file that holds flat keys ("/a/b": v, which the backend
// reads as /a/b), replaced on every change as editors do (see
// replaceFile), so that a watch never reads it half written.
type store struct {
	path string
	kvs  map[string]string
}

func (s *store) write(t *testing.T) {
	t.Helper()
	data, err := yaml.Marshal(s.kvs)
	if err != nil {
		t.Fatal(err)
	}
	replaceFile(t, s.path, string(data))
}

func TestConformance(t *testing.T) {
	t.Parallel()
	var s *store
	backendtest.Run(t, backendtest.Harness{
		Open: func(t *testing.T) backends.Backend {
			s = &store{path: filepath.Join(t.TempDir(), "data.yaml"), kvs: map[string]string{}}
			s.write(t)
			c, err := file.New(t.Context(), file.Config{File: []string{s.path}})
			if err != nil {
				t.Fatal(err)
			}
			return c
		},
		Put: func(t *testing.T, key, value string) {
			s.kvs[key] = value
			s.write(t)
		},
		Delete: func(t *testing.T, key string) {
			delete(s.kvs, key)
			s.write(t)
		},
	})
}

func writeFile(t *testing.T, name, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func newClient(t *testing.T, cfg file.Config) *file.Client {
	t.Helper()
	c, err := file.New(t.Context(), cfg)
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

func TestRevision(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
	writeFile(t, a, "app: {name: one}\n")
	writeFile(t, b, "other: x\n")
	c := newClient(t, file.Config{File: []string{a, b}})
	steps := []struct {
		name   string
		change func()
		prefix string
		want   uint64
	}{
		{name: "first snapshot", change: func() {}, prefix: "/app", want: 1},
		{name: "nothing changed", change: func() {}, prefix: "/app", want: 1},
		{name: "other prefix", change: func() {}, prefix: "/other", want: 1},
		{name: "same content rewritten", change: func() { writeFile(t, a, "app:\n  name: one\n") }, prefix: "/app", want: 1},
		{name: "change outside the prefix", change: func() { writeFile(t, b, "other: y\n") }, prefix: "/app", want: 2},
		{name: "change under the prefix", change: func() { writeFile(t, a, "app: {name: two}\n") }, prefix: "/app", want: 3},
		{name: "back to the old content", change: func() { writeFile(t, a, "app: {name: one}\n") }, prefix: "/app", want: 4},
	}
	for _, st := range steps {
		st.change()
		s, err := c.Snapshot(t.Context(), []string{st.prefix})
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if s.Rev != st.want {
			t.Errorf("%s: revision %d, want %d", st.name, s.Rev, st.want)
		}
	}
}

func TestSnapshotErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	writeFile(t, good, "a: 1\n")
	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, "a: [\n")

	t.Run("missing file", func(t *testing.T) {
		t.Parallel()
		missing := filepath.Join(dir, "missing.yaml")
		_, err := newClient(t, file.Config{File: []string{good, missing}}).Snapshot(t.Context(), []string{"/"})
		if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
			t.Errorf("err = %v, want fs.ErrNotExist naming %s", err, missing)
		}
	})
	t.Run("parse error", func(t *testing.T) {
		t.Parallel()
		_, err := newClient(t, file.Config{File: []string{good, bad}}).Snapshot(t.Context(), []string{"/"})
		if err == nil || !strings.Contains(err.Error(), "file: parse "+bad+": ") || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("err = %v, want a parse error naming %s and its line", err, bad)
		}
	})
	t.Run("error in a directory", func(t *testing.T) {
		t.Parallel()
		_, err := newClient(t, file.Config{File: []string{dir}, Filter: "b*"}).Snapshot(t.Context(), []string{"/"})
		if err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("err = %v, want a parse error naming %s", err, bad)
		}
	})
	t.Run("file removed after a good snapshot", func(t *testing.T) {
		t.Parallel()
		gone := filepath.Join(t.TempDir(), "gone.yaml")
		writeFile(t, gone, "a: 1\n")
		c := newClient(t, file.Config{File: []string{gone}})
		if _, err := c.Snapshot(t.Context(), []string{"/"}); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(gone); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Snapshot(t.Context(), []string{"/"}); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("err = %v, want fs.ErrNotExist", err)
		}
	})
}

func TestSymlinks(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	outside := t.TempDir()
	writeFile(t, filepath.Join(outside, "target.yaml"), "linked-file: yes\n")
	writeFile(t, filepath.Join(outside, "sub", "inner.yaml"), "linked-dir: yes\n")
	writeFile(t, filepath.Join(dir, "conf", "own.yaml"), "own: yes\n")
	for link, target := range map[string]string{
		filepath.Join(dir, "conf", "link.yaml"): filepath.Join(outside, "target.yaml"),
		filepath.Join(dir, "conf", "subdir"):    filepath.Join(outside, "sub"),
		filepath.Join(dir, "root"):              filepath.Join(dir, "conf"),
	} {
		if err := os.Symlink(target, link); err != nil {
			t.Skipf("no symbolic links here: %v", err)
		}
	}
	// The root is a symbolic link to a directory: it is read. Inside, a
	// link to a file is read, a link to a directory is not descended.
	s, err := newClient(t, file.Config{File: []string{filepath.Join(dir, "root")}}).Snapshot(t.Context(), []string{"/"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"/own": "true", "/linked-file": "true"}
	if !maps.Equal(s.KVs, want) {
		t.Errorf("Snapshot = %v, want %v", s.KVs, want)
	}
}

func TestConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		opts    map[string]any
		wantErr string
	}{
		{name: "one file", opts: map[string]any{"file": []string{"a.yaml"}}},
		{name: "files and filter", opts: map[string]any{"file": []string{"a.yaml", "conf.d"}, "filter": "*.yaml"}},
		{name: "no file", opts: map[string]any{}, wantErr: "no file given"},
		{name: "empty list", opts: map[string]any{"file": []string{}}, wantErr: "no file given"},
		{name: "empty name", opts: map[string]any{"file": []string{""}}, wantErr: "empty file name"},
		{name: "bad filter", opts: map[string]any{"file": []string{"a.yaml"}, "filter": "[a-"}, wantErr: "filter"},
		{name: "unknown option", opts: map[string]any{"file": []string{"a.yaml"}, "nodes": []string{"x"}}, wantErr: "does not take option"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := backends.Decode("file", tt.opts)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Decode(%v): %v", tt.opts, err)
				}
				if d, ok := cfg.(backends.Describer); !ok || d.Description() == "" {
					t.Errorf("config %T has no description", cfg)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Decode(%v) = %v, want an error about %q", tt.opts, err, tt.wantErr)
			}
		})
	}

	t.Run("New validates", func(t *testing.T) {
		t.Parallel()
		if _, err := file.New(t.Context(), file.Config{}); err == nil {
			t.Error("New with no file: err = nil")
		}
	})
	t.Run("Open", func(t *testing.T) {
		t.Parallel()
		name := filepath.Join(t.TempDir(), "a.yaml")
		writeFile(t, name, "a: 1\n")
		b, err := backends.Open(t.Context(), "file", map[string]any{"file": []string{name}})
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := b.Close(); err != nil {
				t.Error(err)
			}
		}()
		s, err := b.Snapshot(t.Context(), []string{"/a"})
		if err != nil || s.KVs["/a"] != "1" {
			t.Errorf("Snapshot = %v, %v; want /a = 1", s, err)
		}
	})
}

func TestSample(t *testing.T) {
	t.Parallel()
	var doc struct {
		Backends map[string]map[string]any `toml:"backends"`
	}
	md, err := toml.Decode(file.Sample, &doc)
	if err != nil {
		t.Fatal(err)
	}
	if len(md.Undecoded()) != 0 {
		t.Errorf("sample has keys outside [backends.file]: %v", md.Undecoded())
	}
	opts, ok := doc.Backends["file"]
	if !ok || opts["type"] != "file" {
		t.Fatalf("sample has no [backends.file] table with type = \"file\": %v", doc.Backends)
	}
	delete(opts, "type") // the config file's, not the backend's
	cfg, err := backends.Decode("file", opts)
	if err != nil {
		t.Fatalf("Decode(sample): %v", err)
	}
	if got := cfg.(*file.Config); len(got.File) == 0 || got.Filter == "" {
		t.Errorf("sample decodes to %+v, want files and a filter", got)
	}
}
