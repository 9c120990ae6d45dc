package template

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// GoldenCase is one directory of testdata: in.tmpl rendered against
// kv.json (a flat map of full keys to values) with the directory as
// include directory, and the expected output in want.out or the expected
// error text in want.err. It is exported for the package's external
// tests; the fast path's corpus test renders the same directories.
type GoldenCase struct {
	Name string
	Dir  string
	Src  []byte
	KV   map[string]string
}

// LoadGoldenCases reads every directory of testdata.
func LoadGoldenCases(t testing.TB) []GoldenCase {
	t.Helper()
	ins, err := filepath.Glob(filepath.Join("testdata", "*", "in.tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ins) == 0 {
		t.Fatal("no testdata/*/in.tmpl")
	}
	cases := make([]GoldenCase, 0, len(ins))
	for _, in := range ins {
		dir := filepath.Dir(in)
		src, err := os.ReadFile(in)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := os.ReadFile(filepath.Join(dir, "kv.json"))
		if err != nil {
			t.Fatal(err)
		}
		var kv map[string]string
		if err := json.Unmarshal(raw, &kv); err != nil {
			t.Fatalf("%s/kv.json: %v", dir, err)
		}
		cases = append(cases, GoldenCase{Name: filepath.Base(dir), Dir: dir, Src: src, KV: kv})
	}
	return cases
}
