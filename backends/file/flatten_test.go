package file

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

var update = flag.Bool("update", false, "rewrite the want.json and want.err golden files of testdata")

// TestGolden reads each testdata/<case> directory with the file backend and
// compares the keys with <case>/want.json, or the error with <case>/want.err.
// The backend reads <case>/config.toml's options (file paths relative to the
// case), or else every .yaml, .yml and .json file of the case but
// want.json, in lexical order.
func TestGolden(t *testing.T) {
	t.Parallel()
	cases, err := os.ReadDir("testdata")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		if !c.IsDir() {
			continue
		}
		t.Run(c.Name(), func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join("testdata", c.Name())
			cfg := caseConfig(t, dir)
			cl, err := New(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			s, err := cl.Snapshot(t.Context(), []string{"/"})
			if err != nil {
				golden(t, filepath.Join(dir, "want.err"), []byte(err.Error()+"\n"))
				return
			}
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "\t")
			if err := enc.Encode(s.KVs); err != nil {
				t.Fatal(err)
			}
			golden(t, filepath.Join(dir, "want.json"), buf.Bytes())
		})
	}
}

// caseConfig returns the options for the case in dir.
func caseConfig(t *testing.T, dir string) Config {
	t.Helper()
	var cfg Config
	if _, err := toml.DecodeFile(filepath.Join(dir, "config.toml"), &cfg); err == nil {
		for i, f := range cfg.File {
			cfg.File[i] = filepath.Join(dir, f)
		}
		return cfg
	} else if !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || name == "want.json" {
			continue
		}
		if ext := filepath.Ext(name); ext == ".yaml" || ext == ".yml" || ext == ".json" {
			cfg.File = append(cfg.File, filepath.Join(dir, name))
		}
	}
	if len(cfg.File) == 0 {
		t.Fatalf("%s has no input file", dir)
	}
	return cfg
}

// golden compares got with the file want, or rewrites want with -update.
// A case has either want.json or want.err: -update removes the other one.
func golden(t *testing.T, want string, got []byte) {
	t.Helper()
	if *update {
		other := strings.TrimSuffix(want, filepath.Ext(want))
		if filepath.Ext(want) == ".json" {
			other += ".err"
		} else {
			other += ".json"
		}
		if err := os.Remove(other); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		if err := os.WriteFile(want, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	w, err := os.ReadFile(want)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, w) {
		t.Errorf("got:\n%s\nwant (%s):\n%s", got, want, w)
	}
}

// TestFlattenErrorsHideValues checks that no parse error quotes a value.
func TestFlattenErrorsHideValues(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		doc  string
	}{
		{name: "int tag", doc: "a: !!int s3cr3t\n"},
		{name: "float tag", doc: "a: !!float s3cr3t\n"},
		{name: "bool tag", doc: "a: !!bool s3cr3t\n"},
		{name: "bad base64", doc: "a: !!binary s3cr3t%%\n"},
		{name: "top-level scalar", doc: "s3cr3t\n"},
		{name: "unterminated quote", doc: "a: 's3cr3t\n"},
		{name: "bad escape", doc: "a: \"s3cr3t \\q\"\n"},
		{name: "tab indent", doc: "a:\n\tb: s3cr3t\n"},
		{name: "alias to a map as key", doc: "m: &m {x: s3cr3t}\n*m : v\n"},
		{name: "merge of a scalar", doc: "<<: s3cr3t\n"},
		{name: "self alias", doc: "a: &x [s3cr3t, *x]\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := flatten([]byte(tt.doc), map[string]string{})
			if err == nil {
				t.Fatalf("flatten(%q) = nil, want an error", tt.doc)
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("flatten(%q) = %q, which holds the value", tt.doc, err)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, in, want string }{
		{name: "none", in: "yaml: line 1: bad", want: "yaml: line 1: bad"},
		{name: "one", in: "cannot decode !!str `x` as a !!int", want: "cannot decode !!str (value hidden) as a !!int"},
		{name: "two", in: "`a` and `b`.", want: "(value hidden) and (value hidden)."},
		{name: "unterminated", in: "before `secret", want: "before "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := redact(errors.New(tt.in)).Error(); got != tt.want {
				t.Errorf("redact(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// FuzzFlatten checks that flatten never panics and returns clean keys.
func FuzzFlatten(f *testing.F) {
	seeds, err := filepath.Glob("testdata/*/*.*")
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range seeds {
		if data, err := os.ReadFile(name); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		kvs := map[string]string{}
		if err := flatten(data, kvs); err != nil {
			return
		}
		for k := range kvs {
			if !strings.HasPrefix(k, "/") || k != filepath.ToSlash(filepath.Clean(k)) {
				t.Errorf("key %q is not a clean absolute path", k)
			}
		}
	})
}
