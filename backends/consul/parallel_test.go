package consul

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"

	"github.com/kvconf/kvconf/backends"
)

// bigListing returns a listing of n pairs in Consul's shape, indented as a
// dev agent gives it when indent is set, and its pairs.
func bigListing(n int, indent bool) ([]byte, []backends.KV) {
	var b strings.Builder
	want := make([]backends.KV, 0, n)
	nl := func(depth int) string {
		if !indent {
			return ""
		}
		return "\n" + strings.Repeat("    ", depth)
	}
	b.WriteString("[")
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		key := fmt.Sprintf("app/k%06d", i)
		if i%1000 == 7 {
			key += "},{x" // a false cut, now and then
		}
		v := fmt.Sprintf("10.0.%d.%d:8080", i/256%256, i%256)
		fmt.Fprintf(&b, `%s{%s"LockIndex": 0,%s"Key": %q,%s"Flags": 0,%s"Value": %q,%s"CreateIndex": %d,%s"ModifyIndex": %d%s}`,
			nl(1), nl(2), nl(2), key, nl(2), nl(2), b64(v), nl(2), 10+i, nl(2), 10+i, nl(1))
		want = append(want, backends.KV{Key: "/" + key, Value: v})
	}
	b.WriteString(nl(0) + "]")
	return []byte(b.String()), want
}

// TestDecodeParallelBig decodes listings of many fragments, with a false
// cut now and then, on one to four workers, and a listing of one very
// long pair.
func TestDecodeParallelBig(t *testing.T) {
	t.Parallel()
	for _, indent := range []bool{false, true} {
		body, want := bigListing(20_000, indent)
		for _, workers := range []int{1, 2, 4} {
			for _, size := range []int{1 << 10, 16 << 10, fragmentBytes} {
				got, err := parseParallel(body, workers, size)
				if err != nil || !slices.Equal(got, want) {
					t.Fatalf("indent %v, %d workers, fragments of %d: %d pairs, %v; want %d", indent, workers, size, len(got), err, len(want))
				}
			}
		}
	}
	long := strings.Repeat("x", 3*fragmentBytes)
	body := []byte(fmt.Sprintf(`[{"Key":"a","Value":%q},{"Key":"b","Value":%q},{"Key":"c","Value":null}]`, b64(long), b64("v")))
	got, err := parseParallel(body, 2, 1<<10)
	if want := kvList("/a", long, "/b", "v", "/c", ""); err != nil || !slices.Equal(got, want) {
		t.Fatalf("a pair longer than many fragments: %d pairs, %v", len(got), err)
	}
}

// TestDecodeParallelErrors checks that a malformed listing fails in
// fragments as in one piece, message and all, and that an error of the
// body is returned as it is.
func TestDecodeParallelErrors(t *testing.T) {
	t.Parallel()
	body, _ := bigListing(5_000, true)
	for _, bad := range []struct{ name, old, new string }{
		{"no key", `"Key": "app/k004321"`, `"Kex": "app/k004321"`},
		{"not an object", `{` + "\n        " + `"LockIndex": 0,` + "\n        " + `"Key": "app/k003000"`, `7,{"Key": "app/k003000"`},
		{"cut short", "", ""},
		{"data after", "", ""},
	} {
		b := bytes.Replace(body, []byte(bad.old), []byte(bad.new), 1)
		switch bad.name {
		case "cut short":
			b = body[:len(body)*2/3]
		case "data after":
			b = append(slices.Clip(body), `,{"Key":"z"}]`...)
		}
		_, want := parseTiny(b)
		for _, size := range []int{1 << 10, 16 << 10} {
			_, err := parseParallel(b, 3, size)
			if !errors.Is(err, errListing) || want == nil || err.Error() != want.Error() {
				t.Errorf("%s, fragments of %d: %v; want %v", bad.name, size, err, want)
			}
		}
	}
	boom := errors.New("connection reset")
	r := io.MultiReader(bytes.NewReader(body[:len(body)/2]), iotest.ErrReader(boom))
	one := func(r io.Reader) ([]backends.KV, error) { return newDecoder(r, nil).decode() }
	if _, err := decodeParallel(r, 2, 1<<10, new(sync.Pool), one); !errors.Is(err, boom) || errors.Is(err, errListing) {
		t.Errorf("a body failing halfway: %v; want its error, %v", err, boom)
	}
}

// b64 returns s in base64, as Consul gives values.
func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
