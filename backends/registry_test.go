package backends_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/kvconf/kvconf/backends"
	"github.com/kvconf/kvconf/backends/backendtest"
)

// The registry is process-wide and cannot forget a name, so the test-only
// backends are registered once, here, under names no real backend takes.
func init() {
	backends.Register("kvconf-test-b", func() backends.Config { return new(testConfig) })
	backends.Register("kvconf-test-a", func() backends.Config { return new(testConfig) })
}

var errInvalid = errors.New("test: invalid")

// testConfig is a backend config with options, validation and a failing
// Open, over a fake.
type testConfig struct {
	Greeting string   `toml:"greeting"`
	Nodes    []string `toml:"nodes"`
	Invalid  bool     `toml:"invalid"`
	FailOpen bool     `toml:"fail_open"`
}

func (c *testConfig) Validate() error {
	if c.Invalid {
		return errInvalid
	}
	return nil
}

var errOpen = errors.New("test: cannot open")

func (c *testConfig) Open(context.Context) (backends.Backend, error) {
	if c.FailOpen {
		return nil, errOpen
	}
	f := backendtest.NewFake()
	f.Set("/greeting", c.Greeting)
	return f, nil
}

func TestRegisterPanics(t *testing.T) {
	t.Parallel()
	factory := func() backends.Config { return new(testConfig) }
	tests := []struct {
		name      string
		backend   string
		newConfig func() backends.Config
	}{
		{name: "empty name", backend: "", newConfig: factory},
		{name: "nil factory", backend: "kvconf-test-nil", newConfig: nil},
		{name: "duplicate", backend: "kvconf-test-a", newConfig: factory},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			defer func() {
				if recover() == nil {
					t.Errorf("Register(%q) did not panic", tt.backend)
				}
			}()
			backends.Register(tt.backend, tt.newConfig)
		})
	}
	if slices.Contains(backends.Names(), "kvconf-test-nil") {
		t.Error("a Register that panicked registered its name")
	}
}

func TestNames(t *testing.T) {
	t.Parallel()
	names := backends.Names()
	if !slices.IsSorted(names) {
		t.Errorf("Names() = %v, not sorted", names)
	}
	for _, n := range []string{"kvconf-test-a", "kvconf-test-b"} {
		if !slices.Contains(names, n) {
			t.Errorf("Names() = %v, missing %q", names, n)
		}
	}
	// The result is a copy.
	names[0] = "changed"
	if backends.Names()[0] == "changed" {
		t.Error("Names() returned the registry's own slice")
	}
}

func TestNewConfigUnknown(t *testing.T) {
	t.Parallel()
	_, err := backends.NewConfig("kvconf-test-nope")
	if err == nil || !strings.Contains(err.Error(), `"kvconf-test-nope"`) || !strings.Contains(err.Error(), "backends/all") {
		t.Errorf("NewConfig(unknown) = %v, want an error naming it and hinting at backends/all", err)
	}
}

func TestDecode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		opts    map[string]any
		want    testConfig
		wantKey []string // unknown options, each reported as an *OptionError
		wantIs  error
	}{
		{name: "no options", opts: nil},
		{
			name: "options",
			opts: map[string]any{"greeting": "hi", "nodes": []string{"a", "b"}},
			want: testConfig{Greeting: "hi", Nodes: []string{"a", "b"}},
		},
		{name: "unknown option", opts: map[string]any{"greeting": "hi", "bogus": 1}, wantKey: []string{"bogus"}},
		{name: "two unknown options", opts: map[string]any{"bogus": 1, "other": "x"}, wantKey: []string{"bogus", "other"}},
		{name: "nested unknown option", opts: map[string]any{"tls": map[string]any{"ca": "x"}}, wantKey: []string{"tls"}},
		{name: "validated", opts: map[string]any{"invalid": true}, wantIs: errInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := backends.Decode("kvconf-test-a", tt.opts)
			switch {
			case tt.wantKey != nil:
				var keys []string
				for _, e := range unjoin(err) {
					var oe *backends.OptionError
					if !errors.As(e, &oe) {
						t.Fatalf("Decode error %v is not an *OptionError", e)
					}
					if oe.Backend != "kvconf-test-a" {
						t.Errorf("OptionError.Backend = %q", oe.Backend)
					}
					keys = append(keys, oe.Key)
				}
				for _, k := range tt.wantKey {
					if !slices.Contains(keys, k) {
						t.Errorf("Decode(%v) rejected %v, want %q among them", tt.opts, keys, k)
					}
				}
			case tt.wantIs != nil:
				if !errors.Is(err, tt.wantIs) {
					t.Errorf("Decode(%v) = %v, want %v", tt.opts, err, tt.wantIs)
				}
			default:
				if err != nil {
					t.Fatalf("Decode(%v): %v", tt.opts, err)
				}
				got := cfg.(*testConfig)
				if got.Greeting != tt.want.Greeting || !slices.Equal(got.Nodes, tt.want.Nodes) {
					t.Errorf("Decode(%v) = %+v, want %+v", tt.opts, got, tt.want)
				}
			}
		})
	}
}

// unjoin returns the errors that err joins, or err alone.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	if err == nil {
		return nil
	}
	return []error{err}
}

func TestOpen(t *testing.T) {
	t.Parallel()
	b, err := backends.Open(t.Context(), "kvconf-test-b", map[string]any{"greeting": "hello"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := b.Close(); err != nil {
			t.Error(err)
		}
	}()
	s, err := b.Snapshot(t.Context(), []string{"/"})
	if err != nil || s.KVs["/greeting"] != "hello" {
		t.Errorf("Snapshot = %+v, %v; want /greeting = hello", s, err)
	}

	if _, err := backends.Open(t.Context(), "kvconf-test-b", map[string]any{"fail_open": true}); !errors.Is(err, errOpen) {
		t.Errorf("Open of a failing backend = %v, want %v", err, errOpen)
	}
	if _, err := backends.Open(t.Context(), "kvconf-test-b", map[string]any{"invalid": true}); !errors.Is(err, errInvalid) {
		t.Errorf("Open of an invalid config = %v, want %v", err, errInvalid)
	}
	var oe *backends.OptionError
	if _, err := backends.Open(t.Context(), "kvconf-test-b", map[string]any{"bogus": true}); !errors.As(err, &oe) {
		t.Errorf("Open with an unknown option = %v, want an *OptionError", err)
	}
}

func TestOptionError(t *testing.T) {
	t.Parallel()
	err := &backends.OptionError{Backend: "etcd", Key: "bogus"}
	if got, want := err.Error(), `backends: backend "etcd" does not take option "bogus"`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestUnknownError(t *testing.T) {
	t.Parallel()
	_, err := backends.Flags("kvconf-test-nope")
	var ue *backends.UnknownError
	if !errors.As(err, &ue) || ue.Name != "kvconf-test-nope" || !slices.Contains(ue.Known, "kvconf-test-a") {
		t.Errorf("Flags(unknown) = %v, want an *UnknownError naming it and the registered ones", err)
	}
	opts, err := backends.Flags("kvconf-test-a")
	if err != nil || opts != nil {
		t.Errorf("Flags of a config without Flagger = %v, %v; want none", opts, err)
	}
}

// TestInvalidError: a config that fails Validate reads the validator's
// message once, with the backend named once.
func TestInvalidError(t *testing.T) {
	t.Parallel()
	_, err := backends.Decode("kvconf-test-a", map[string]any{"invalid": true})
	var ie *backends.InvalidError
	if !errors.As(err, &ie) || ie.Backend != "kvconf-test-a" || !errors.Is(err, errInvalid) {
		t.Fatalf("Decode = %v, want an *InvalidError wrapping errInvalid", err)
	}
	if got, want := err.Error(), "kvconf-test-a: test: invalid"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	named := &backends.InvalidError{Backend: "file", Err: errors.New("file: no file given")}
	if got, want := named.Error(), "file: no file given"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
