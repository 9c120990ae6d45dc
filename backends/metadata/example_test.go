package metadata_test

import (
	"bytes"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvconf/kvconf/backends/metadata"
	"github.com/kvconf/kvconf/backends/metadata/metadatatest"
	"github.com/kvconf/kvconf/resource"
)

var updateExample = flag.Bool("update-example", false, "rewrite examples/metadata/golden")

// TestExample renders the example of examples/metadata (conf.d,
// templates) from its metadata.json, served by the test server as
// rancher-metadata serves it, and compares the output with
// examples/metadata/golden/haproxy.cfg. Run `go test -run TestExample
// -update-example` to rewrite the golden file. It then stops a container
// and checks that its server line goes.
func TestExample(t *testing.T) {
	t.Parallel()
	root := filepath.Join("..", "..", "examples", "metadata")
	doc, err := os.ReadFile(filepath.Join(root, "metadata.json"))
	if err != nil {
		t.Fatal(err)
	}
	s := newServer(t, metadatatest.Options{})
	if err := s.SetJSON(doc); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, metadata.Config{Nodes: []string{s.URL()}})

	// A copy of the example whose dest is in a scratch directory.
	dir := t.TempDir()
	for _, sub := range []string{"conf.d", "templates"} {
		if err := os.CopyFS(filepath.Join(dir, sub), os.DirFS(filepath.Join(root, sub))); err != nil {
			t.Fatal(err)
		}
	}
	toml := filepath.Join(dir, "conf.d", "haproxy.toml")
	data, err := os.ReadFile(toml)
	if err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(dir, "out", "metadata-haproxy.cfg")
	data = bytes.Replace(data, []byte(`dest = "out/metadata-haproxy.cfg"`), []byte(`dest = "`+dest+`"`), 1)
	if err := os.WriteFile(toml, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		t.Fatal(err)
	}
	rs, err := resource.LoadDir(resource.Options{ConfDir: dir, SyncOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := resource.Once(t.Context(), c, rs); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(dest)
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join(root, "golden", "haproxy.cfg")
	if *updateExample {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	} else {
		want, err := os.ReadFile(golden)
		if errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("no golden file %s (go test -run TestExample -update-example writes it)", golden)
		}
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("output differs from %s (-update-example rewrites it)\ngot:\n%s\nwant:\n%s", golden, got, want)
		}
	}
	if gets := s.Stats().Gets; len(gets) != 1 || gets["/stacks/shop"] != 1 {
		t.Errorf("requests %v, want the sub-tree /stacks/shop only", gets)
	}

	// shop-web-2 stops.
	doc = bytes.Replace(doc, []byte(`"primary_ip": "10.42.1.11", "state": "running"`), []byte(`"primary_ip": "10.42.1.11", "state": "stopped"`), 1)
	if err := s.SetJSON(doc); err != nil {
		t.Fatal(err)
	}
	if err := resource.Once(t.Context(), c, rs); err != nil {
		t.Fatal(err)
	}
	after, err := os.ReadFile(dest)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(after), "shop-web-2") || !strings.Contains(string(after), "shop-web-1") {
		t.Errorf("after shop-web-2 stopped:\n%s", after)
	}
}
