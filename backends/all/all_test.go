package all_test

import (
	"slices"
	"testing"

	"github.com/BurntSushi/toml"
	"go.uber.org/goleak"

	"github.com/kvconf/kvconf/backends"
	_ "github.com/kvconf/kvconf/backends/all"
	"github.com/kvconf/kvconf/backends/env"
	"github.com/kvconf/kvconf/backends/file"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// samples maps each backend to its sample configuration; a backend added
// to package all is added here too.
var samples = map[string]string{
	"env":  env.Sample,
	"file": file.Sample,
}

func TestRegistered(t *testing.T) {
	t.Parallel()
	names := backends.Names()
	for name := range samples {
		if !slices.Contains(names, name) {
			t.Errorf("Names() = %v, missing %q", names, name)
		}
	}
	for _, name := range names {
		if _, ok := samples[name]; !ok {
			t.Errorf("backend %q has no sample in this test", name)
		}
	}
}

// TestSamples decodes the [backend.NAME] table of every sample with the
// backend's own Config, which must take every option the sample shows and
// describe itself.
func TestSamples(t *testing.T) {
	t.Parallel()
	for name, sample := range samples {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var doc struct {
				Backend map[string]map[string]any `toml:"backend"`
			}
			md, err := toml.Decode(sample, &doc)
			if err != nil {
				t.Fatal(err)
			}
			if keys := md.Undecoded(); len(keys) != 0 {
				t.Errorf("sample has keys outside [backend.%s]: %v", name, keys)
			}
			opts, ok := doc.Backend[name]
			if !ok || len(doc.Backend) != 1 {
				t.Fatalf("sample has tables %v, want [backend.%s] only", doc.Backend, name)
			}
			cfg, err := backends.Decode(name, opts)
			if err != nil {
				t.Fatalf("Decode(sample): %v", err)
			}
			if d, ok := cfg.(backends.Describer); !ok || d.Description() == "" {
				t.Errorf("config %T has no description", cfg)
			}
		})
	}
}
