package all_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/BurntSushi/toml"
	"go.uber.org/goleak"

	"github.com/kvconf/kvconf/backends"
	_ "github.com/kvconf/kvconf/backends/all"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestRegistered checks that package all registers the shipped backends
// and that every registered backend shows a sample configuration.
func TestRegistered(t *testing.T) {
	t.Parallel()
	names := backends.Names()
	for _, name := range []string{"env", "file"} {
		if !slices.Contains(names, name) {
			t.Errorf("Names() = %v, missing %q", names, name)
		}
	}
}

// samples returns the sample configuration of every registered backend.
func samples(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, name := range backends.Names() {
		cfg, err := backends.NewConfig(name)
		if err != nil {
			t.Fatal(err)
		}
		sm, ok := cfg.(backends.Sampler)
		if !ok || sm.Sample() == "" {
			t.Errorf("backend %q has no sample", name)
			continue
		}
		out[name] = sm.Sample()
	}
	return out
}

// TestSamples decodes the [backends.NAME] table of every sample with the
// backend's own Config, which must take every option the sample shows and
// describe itself.
func TestSamples(t *testing.T) {
	t.Parallel()
	for name, sample := range samples(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var doc struct {
				Backends map[string]map[string]any `toml:"backends"`
			}
			md, err := toml.Decode(sample, &doc)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range md.Undecoded() {
				// Nested tables of the backend's own options (such as the
				// plugin's options) are decoded by backends.Decode below.
				if len(k) < 3 || k[0] != "backends" || k[1] != name {
					t.Errorf("sample has key %s outside [backends.%s]", k, name)
				}
			}
			opts, ok := doc.Backends[name]
			if !ok || len(doc.Backends) != 1 {
				t.Fatalf("sample has tables %v, want [backends.%s] only", doc.Backends, name)
			}
			if opts["type"] != name {
				t.Errorf("sample's [backends.%s] has type = %v, want %q", name, opts["type"], name)
			}
			delete(opts, "type") // the config file's, not the backend's
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

// TestFlagsDecode checks the options every registered backend declares
// for the command line: each key is an option of the backend's config,
// with a value of the declared kind, and a flag that several backends
// declare has the same key and kind in each.
func TestFlagsDecode(t *testing.T) {
	t.Parallel()
	type decl struct {
		backend, key string
		kind         backends.OptionKind
	}
	byFlag := map[string]decl{}
	for _, name := range backends.Names() {
		opts, err := backends.Flags(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range opts {
			if o.Flag == "" || o.Key == "" || o.Usage == "" {
				t.Errorf("%s: option %+v lacks a flag, key or usage", name, o)
			}
			if d, ok := byFlag[o.Flag]; ok && (d.key != o.Key || d.kind != o.Kind) {
				t.Errorf("flag -%s: key %q kind %d in %s, key %q kind %d in %s", o.Flag, d.key, d.kind, d.backend, o.Key, o.Kind, name)
			}
			byFlag[o.Flag] = decl{backend: name, key: o.Key, kind: o.Kind}
			var v any
			switch o.Kind {
			case backends.BoolOption:
				v = false
			case backends.ListOption:
				v = []string{}
			default:
				v = ""
			}
			_, err := backends.Decode(name, map[string]any{o.Key: v})
			// A validation error is about the value; any other means
			// the key or kind does not match the config.
			var ie *backends.InvalidError
			if err != nil && !errors.As(err, &ie) {
				t.Errorf("%s: declared option -%s (key %q) does not decode into its config: %v", name, o.Flag, o.Key, err)
			}
		}
	}
	for _, f := range []string{"node", "file", "username", "password", "auth-token", "client-cert", "consul-datacenter", "metadata-mode"} {
		if _, ok := byFlag[f]; !ok {
			t.Errorf("no backend declares -%s", f)
		}
	}
}
