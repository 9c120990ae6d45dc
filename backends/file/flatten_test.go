package file

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
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
			err := flatten(t.Context(), []byte(tt.doc), map[string]string{})
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

// FuzzFlatten checks that flatten never panics, returns clean keys, and
// agrees with flattenDecode, the decoder-based reference: the same keys
// when both succeed, and an error from flatten only where the reference
// fails too or two leaves share a key path (which the reference resolves
// silently).
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
	for _, doc := range differentialDocs {
		f.Add([]byte(doc))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		compareFlatten(t, data)
	})
}

// compareFlatten checks flatten against flattenDecode on data.
func compareFlatten(t *testing.T, data []byte) {
	t.Helper()
	got, want := map[string]string{}, map[string]string{}
	err := flatten(t.Context(), data, got)
	refErr := flattenDecode(data, want)
	for k := range got {
		if !strings.HasPrefix(k, "/") || k != path.Clean(k) {
			t.Errorf("key %q is not a clean absolute path", k)
		}
	}
	aliasing := func(err error) bool { return err != nil && strings.Contains(err.Error(), "excessive aliasing") }
	switch {
	case aliasing(err) || aliasing(refErr):
		// The two count nodes differently near the limit.
	case err == nil && refErr != nil:
		t.Errorf("flatten(%q) succeeded, the reference failed: %v", data, refErr)
	case err == nil && !maps.Equal(got, want):
		t.Errorf("flatten(%q) = %v, the reference gives %v", data, got, want)
	case err != nil && refErr == nil && !errors.Is(err, errSamePath):
		t.Errorf("flatten(%q) = %v, the reference succeeded", data, err)
	}
}

// differentialDocs are documents beyond testdata on which flatten and the
// reference must agree: merges, aliases, nulls and key forms.
var differentialDocs = []string{
	"a: &a {x: 1, y: 2}\nb:\n  <<: *a\n  y: 3\n",
	"a: &a {x: 1}\nb: &b {x: 2, z: 0}\nc:\n  <<: [*a, *b]\n  w: 9\n",
	"a: &a {x: 1}\nb: &b {<<: *a, y: 2}\nc: {<<: *b, x: 3}\n",
	"a: {<<: {x: 1, <<: {x: 2, y: 3}}}\n",
	"a: ~\nb: null\nc:\nd: [~, 1, null]\ne: {f: ~}\n",
	"k: &k key\n*k : aliased key\n",
	"n: &n 5\n*n : number key\n",
	"0x10: hex key\n1.50: float key\nyes: bool key\n",
	"a: !!binary aGVsbG8=\nb: !custom tagged\nc: !!str 12\nd: !!float 1\n",
	"a: 2001-12-14t21:59:43.10-05:00\nb: 0777\nc: 0o17\nd: -0\ne: +5\nf: 1_000\n",
	"a: [&x {b: 1}, *x, *x]\n",
	"list: &l [1, [2, 3]]\ncopy: *l\n",
	"a: {x: 1}\nb: {<<: [], y: 2}\n",
	"s: 'y'\nt: y\nu: !!bool yes\nv: NO\n",
}

// TestFlattenDifferential runs the differential check of FuzzFlatten on
// testdata and differentialDocs.
func TestFlattenDifferential(t *testing.T) {
	t.Parallel()
	seeds, err := filepath.Glob("testdata/*/*.*")
	if err != nil {
		t.Fatal(err)
	}
	docs := slices.Clone(differentialDocs)
	for _, name := range seeds {
		if data, err := os.ReadFile(name); err == nil {
			docs = append(docs, string(data))
		}
	}
	for _, doc := range docs {
		compareFlatten(t, []byte(doc))
	}
}

// TestFlattenSamePath checks that two leaves of one document at the same key
// path are an error naming the path and both lines, whatever forms the keys
// take, and that null values give no key, as with confd.
func TestFlattenSamePath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, doc, path string
	}{
		{name: "empty and dot-dot", doc: "\"\": a\n\"..\": b\n", path: "/"},
		{name: "empty and dot", doc: "x:\n  \"\": a\n  \".\": b\n", path: "/x"},
		{name: "slash and nesting", doc: "a/b: 1\na:\n  b: 2\n", path: "/a/b"},
		{name: "cleaned", doc: "y: 1\nx/../y: 2\n", path: "/y"},
		{name: "list index", doc: "a/0: 1\na: [2]\n", path: "/a/0"},
		{name: "trailing slash", doc: "c: 1\n/c/: 2\n", path: "/c"},
		{name: "merged", doc: "m: &m {\"a/b\": 1}\nt:\n  <<: *m\n  a: {b: 2}\n", path: "/t/a/b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := flatten(t.Context(), []byte(tt.doc), map[string]string{})
			if !errors.Is(err, errSamePath) {
				t.Fatalf("flatten(%q) = %v, want an error wrapping errSamePath", tt.doc, err)
			}
			if !strings.Contains(err.Error(), strconv.Quote(tt.path)) {
				t.Errorf("error %q does not name the key path %q", err, tt.path)
			}
		})
	}

	// Null values give no key, and do not collide.
	kvs := map[string]string{}
	if err := flatten(t.Context(), []byte("a: ~\nb:\nc: [~, x]\nd: {e: null}\n\"\": ~\n\"..\": ~\n"), kvs); err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"/c/1": "x"}; !maps.Equal(kvs, want) {
		t.Errorf("nulls: got %v, want %v", kvs, want)
	}
}

// TestFlattenCanceled checks that flatten stops on a canceled context.
func TestFlattenCanceled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := flatten(ctx, bigDoc(10_000), map[string]string{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("flatten with a canceled context = %v, want context.Canceled", err)
	}
}

// TestFlattenAliasBomb checks that a document whose aliases expand
// exponentially fails fast instead of expanding.
func TestFlattenAliasBomb(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i <= 9; i++ {
		fmt.Fprintf(&b, "a%d: &a%d [", i, i)
		for j := range 10 {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*a%d", i-1)
		}
		b.WriteString("]\n")
	}
	err := flatten(t.Context(), []byte(b.String()), map[string]string{})
	if err == nil || !strings.Contains(err.Error(), "excessive aliasing") {
		t.Fatalf("flatten(alias bomb) = %v, want excessive aliasing", err)
	}
}

// bigDoc returns a YAML map of n entries, grouped ten to a sub-map, with
// string and integer values.
func bigDoc(n int) []byte {
	var b bytes.Buffer
	for i := 0; i < n; i++ {
		if i%10 == 0 {
			fmt.Fprintf(&b, "group%06d:\n", i/10)
		}
		if i%2 == 0 {
			fmt.Fprintf(&b, "  key%06d: value-%d\n", i, i)
		} else {
			fmt.Fprintf(&b, "  key%06d: %d\n", i, i)
		}
	}
	return b.Bytes()
}

// flatDoc returns a YAML map of n entries at the top level.
func flatDoc(n int) []byte {
	var b bytes.Buffer
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "key%06d: value-%d\n", i, i)
	}
	return b.Bytes()
}
