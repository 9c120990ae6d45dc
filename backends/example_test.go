package backends_test

import (
	"context"
	"fmt"
	"log"

	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/backends/backendtest"
)

// MemConfig is the Config of an example backend that serves one key. A
// real backend's package has a Config like it, with TOML tags on its
// options, and registers it from its init function.
type MemConfig struct {
	Greeting string `toml:"greeting"`
}

// Open opens the backend that the config describes.
func (c *MemConfig) Open(context.Context) (backends.Backend, error) {
	f := backendtest.NewFake()
	f.Set("/greeting", c.Greeting)
	return f, nil
}

func init() {
	backends.Register("example-mem", func() backends.Config { return new(MemConfig) })
}

// A backend registers a factory of its Config under its name, from its
// package's init function. kvconf then opens it by name, from options keyed
// by their TOML names.
func ExampleRegister() {
	ctx := context.Background()
	b, err := backends.Open(ctx, "example-mem", map[string]any{"greeting": "hello"})
	if err != nil {
		log.Fatal(err)
	}
	s, err := b.Snapshot(ctx, []string{"/"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(s.KVs["/greeting"])
	if err := b.Close(); err != nil {
		log.Fatal(err)
	}
	// Output: hello
}

// Diff turns two snapshots of a backend that cannot send changes into the
// changes between them.
func ExampleDiff() {
	old := map[string]string{"/app/a": "1", "/app/b": "2", "/app/c": "3"}
	cur := map[string]string{"/app/a": "1", "/app/b": "20", "/app/d": "4"}
	for _, c := range backends.Diff(old, cur) {
		fmt.Printf("%s %q deleted=%t\n", c.Key, c.Value, c.Deleted)
	}
	// Output:
	// /app/b "20" deleted=false
	// /app/c "" deleted=true
	// /app/d "4" deleted=false
}
