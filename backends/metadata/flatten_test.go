package metadata

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestFlattenGolden flattens each testdata/flatten/<case>.json at the root
// and compares the keys, one `key = "value"` line each (Go-quoted values),
// with <case>.golden. Run `go test -run TestFlattenGolden -update` to
// rewrite the golden files.
func TestFlattenGolden(t *testing.T) {
	t.Parallel()
	cases, err := filepath.Glob(filepath.Join("testdata", "flatten", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) == 0 {
		t.Fatal("no case in testdata/flatten")
	}
	for _, in := range cases {
		name := strings.TrimSuffix(filepath.Base(in), ".json")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			kvs := map[string]string{}
			if err := flatten(bytes.NewReader(data), "", kvs); err != nil {
				t.Fatal(err)
			}
			got := dump(kvs)
			golden := strings.TrimSuffix(in, ".json") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("no golden file %s (go test -run TestFlattenGolden -update writes it)", golden)
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("flatten(%s) differs from %s (go test -update rewrites it)\ngot:\n%s\nwant:\n%s", in, golden, got, want)
			}
		})
	}
}

// dump writes kvs one `key = "value"` line each, sorted by key.
func dump(kvs map[string]string) string {
	keys := make([]string, 0, len(kvs))
	for k := range kvs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s = %s\n", k, strconv.Quote(kvs[k]))
	}
	return b.String()
}

func TestFlattenRoot(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, root, doc string
		want            map[string]string
	}{
		{name: "sub-tree", root: "/self/service", doc: `{"name": "web", "ports": ["80"]}`,
			want: map[string]string{"/self/service/name": "web", "/self/service/ports/0": "80"}},
		{name: "scalar at a sub-path", root: "/self/service/name", doc: `"web"`,
			want: map[string]string{"/self/service/name": "web"}},
		{name: "array at a sub-path", root: "/containers", doc: `[{"name": "a", "ip": "1"}]`,
			want: map[string]string{"/containers/a/ip": "1", "/containers/a/name": "a"}},
		{name: "scalar document", root: "", doc: `12`, want: map[string]string{"/": "12"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			kvs := map[string]string{}
			if err := flatten(strings.NewReader(tt.doc), tt.root, kvs); err != nil {
				t.Fatal(err)
			}
			if dump(kvs) != dump(tt.want) {
				t.Errorf("flatten at %q = %v, want %v", tt.root, kvs, tt.want)
			}
		})
	}
}

func TestFlattenErrors(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, doc, want string }{
		{name: "empty", doc: "", want: "empty body"},
		{name: "html", doc: "<html>oops</html>", want: "invalid character '<'"},
		{name: "truncated", doc: `{"a": [1, 2`, want: "EOF"},
		{name: "two values", doc: `{} {}`, want: "data after the JSON value"},
		{name: "too deep", doc: strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1), want: "nested deeper"},
		{name: "too deep in objects", doc: strings.Repeat(`{"a":`, maxDepth+1) + "1" + strings.Repeat("}", maxDepth+1), want: "nested deeper"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := flatten(strings.NewReader(tt.doc), "", map[string]string{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("flatten(%.40q) = %v, want an error with %q", tt.doc, err, tt.want)
			}
		})
	}
}

func FuzzFlatten(f *testing.F) {
	cases, _ := filepath.Glob(filepath.Join("testdata", "flatten", "*.json"))
	for _, c := range cases {
		if data, err := os.ReadFile(c); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		kvs := map[string]string{}
		_ = flatten(bytes.NewReader(data), "/r", kvs) // no panic
		for k := range kvs {
			if k != "/r" && !strings.HasPrefix(k, "/r/") {
				t.Errorf("key %q outside the root /r", k)
			}
		}
	})
}

func TestDirs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		prefixes, want []string
	}{
		{prefixes: nil, want: []string{}},
		{prefixes: []string{"/"}, want: []string{""}},
		{prefixes: []string{""}, want: []string{""}},
		{prefixes: []string{"/self/service"}, want: []string{"/self"}},
		{prefixes: []string{"/self/service/"}, want: []string{"/self/service"}},
		{prefixes: []string{"/a/b/", "/a-b/c/", "/a/", "/a/b/c/"}, want: []string{"/a", "/a-b/c"}},
		{prefixes: []string{"/ab/", "/a/"}, want: []string{"/a", "/ab"}},
		{prefixes: []string{"/x/", "/"}, want: []string{""}},
		{prefixes: []string{"consul:service//web/", "/a/"}, want: []string{"/a"}},
		{prefixes: []string{"consul:nodes//"}, want: []string{}},
	}
	for _, tt := range tests {
		if got := dirs(tt.prefixes); !slices.Equal(got, tt.want) {
			t.Errorf("dirs(%q) = %q, want %q", tt.prefixes, got, tt.want)
		}
	}
}
