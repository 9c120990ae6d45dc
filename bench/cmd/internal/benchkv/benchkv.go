// Package benchkv names the keys and values that the benchmark loaders
// write, so that every backend's benchmark renders the same data.
package benchkv

import "fmt"

// Key is the i-th benchmark key under prefix: <prefix>/k/<i in 6 digits>.
func Key(prefix string, i int) string { return fmt.Sprintf("%s/k/%06d", prefix, i) }

// Value is the value of the i-th benchmark key, an address of 16 to 20
// bytes.
func Value(i int) string { return fmt.Sprintf("10.%d.%d.%d:8080", i>>16&255, i>>8&255, i&255) }
