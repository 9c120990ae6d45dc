package vault

import (
	"maps"
	"testing"
)

// TestAddSecret pins confd's mapping of a secret's fields to keys.
func TestAddSecret(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		data map[string]any
		want map[string]string
	}{
		{"value only", map[string]any{"value": "v"}, map[string]string{"/s/a": "v"}},
		{"value not a string", map[string]any{"value": true}, map[string]string{"/s/a": `{"value":true}`}},
		{"fields", map[string]any{"value": "v", "b": "<c>"}, map[string]string{
			"/s/a": `{"b":"\u003cc\u003e","value":"v"}`, "/s/a/value": "v", "/s/a/b": "<c>"}},
		{"nested and other types", map[string]any{"n": map[string]any{"x": "y", "l": []any{"z"}}, "f": 1.5}, map[string]string{
			"/s/a": `{"f":1.5,"n":{"l":["z"],"x":"y"}}`, "/s/a/n/x": "y"}},
		{"empty", map[string]any{}, map[string]string{"/s/a": `{}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := map[string]string{}
			if err := addSecret(got, "/s/a", tt.data); err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("addSecret = %v, want %v", got, tt.want)
			}
		})
	}
}
