package kvlisting

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"unsafe"

	"github.com/kvconf/kvconf/backends"
)

// slowListing decodes a listing with encoding/json alone: the reference
// the decoder must agree with.
func slowListing(b []byte) ([]backends.KV, error) {
	var pairs []struct {
		Key   *string
		Value []byte
	}
	if err := json.Unmarshal(b, &pairs); err != nil {
		return nil, err
	}
	kvs := []backends.KV{}
	for _, p := range pairs {
		if p.Key == nil {
			return nil, errors.New("no key")
		}
		kvs = append(kvs, backends.KV{Key: "/" + *p.Key, Value: string(p.Value)})
	}
	return kvs, nil
}

// kvList returns the pairs of key, value, key, value…
func kvList(kv ...string) []backends.KV {
	kvs := []backends.KV{}
	for i := 0; i < len(kv); i += 2 {
		kvs = append(kvs, backends.KV{Key: kv[i], Value: kv[i+1]})
	}
	return kvs
}

// parseListing decodes b with a decoder of the usual sizes, and returns
// how many pairs encoding/json read.
func parseListing(b []byte) ([]backends.KV, int, error) {
	d := newDecoder(bytes.NewReader(b), nil)
	kvs, err := d.decode()
	return kvs, d.slow, err
}

// parseTiny decodes b as parseListing does, a byte at a time, through a
// window of a few bytes, with a page per pair: every pair is cut by the
// window at least once.
func parseTiny(b []byte) ([]backends.KV, error) {
	d := newDecoder(iotest.OneByteReader(bytes.NewReader(b)), nil)
	d.winMin, d.winMax, d.ahead, d.pageMax, d.pageLen = 1, 4, 2, 1, 1
	return d.decode()
}

func TestParseListing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		want     []backends.KV // nil: an error
		slow     int           // pairs read by encoding/json
	}{
		{"empty", `[]`, kvList(), 0},
		{"null", ` null `, kvList(), 0},
		{"consul's shape", `[{"LockIndex":0,"Key":"app/db","Flags":0,"Value":"aG9zdA==","CreateIndex":12,"ModifyIndex":13},` +
			`{"LockIndex":0,"Key":"app/dir/","Flags":0,"Value":null,"CreateIndex":14,"ModifyIndex":14}]`,
			kvList("/app/db", "host", "/app/dir/", ""), 0},
		{"indented", "[\n    {\n        \"LockIndex\": 0,\n        \"Key\": \"a\",\n        \"Value\": \"eA==\"\n    },\n" +
			"    {\n        \"Key\": \"b\",\n        \"Value\": null\n    }\n]", kvList("/a", "x", "/b", ""), 0},
		{"white space and session", " [ { \"Key\" : \"a\" , \"Session\" : \"5f-1\", \"Value\" : \"\" , \"Flags\": -1.5e3 } ] \n",
			kvList("/a", ""), 0},
		{"unicode key", `[{"Key":"app/naïve/😀","Value":"eA=="}]`, kvList("/app/naïve/😀", "x"), 0},
		{"escaped key", `[{"Key":"a\"b\u00e9\ud83d\ude00","Value":"eA=="},{"Key":"c","Value":"eQ=="}]`,
			kvList("/a\"bé😀", "x", "/c", "y"), 1},
		{"binary value", `[{"Key":"k","Value":"AP8Kgw=="}]`, kvList("/k", "\x00\xff\n\x83"), 0},
		{"escaped slash in value", `[{"Key":"k","Value":"Lz8\/"}]`, kvList("/k", "/??"), 1},
		{"nested field", `[{"Key":"k","Value":"eA==","Extra":{"a":[1,"}"]}}]`, kvList("/k", "x"), 1},
		{"later value wins", `[{"Key":"k","Value":"eA==","Value":"eQ=="}]`, kvList("/k", "y"), 0},
		{"names ignore case", `[{"Key":"k","value":"eA=="},{"key":"a","Key":"b"},{"Key":"c","VALUE":"eA==","Value":null}]`,
			kvList("/k", "x", "/b", "", "/c", ""), 3},
		{"kelvin sign", `[{"Key":"a","\u212aey":"b"},{"Key":"c","Key":"d"}]`, kvList("/b", "", "/d", ""), 2},
		{"no key", `[{"Value":"eA=="}]`, nil, 0},
		{"null key", `[{"Key":null}]`, nil, 0},
		{"number key", `[{"Key":1}]`, nil, 0},
		{"not an object", `[{"Key":"a"},1]`, nil, 0},
		{"null pair", `[null]`, nil, 0},
		{"bad base64", `[{"Key":"k","Value":"%%%"}]`, nil, 0},
		{"newline in value", "[{\"Key\":\"k\",\"Value\":\"eA\n==\"}]", nil, 0},
		{"truncated", `[{"Key":"k","Value":"eA=="}`, nil, 0},
		{"truncated in a pair", `[{"Key":"k","Value":"eA=`, nil, 0},
		{"comma before end", `[{"Key":"k"},]`, nil, 0},
		{"no comma", `[{"Key":"k"} {"Key":"l"}]`, nil, 0},
		{"not an array", `{"Key":"k"}`, nil, 0},
		{"trailing garbage", `[] x`, nil, 0},
		{"two arrays", `[][]`, nil, 0},
		{"nothing", ``, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, slow, err := parseListing([]byte(tt.in))
			tiny, tinyErr := parseTiny([]byte(tt.in))
			if tt.want == nil {
				if !errors.Is(err, ErrMalformed) || !errors.Is(tinyErr, ErrMalformed) {
					t.Fatalf("decode = %q, %v; a byte at a time %v; want an ErrMalformed", got, err, tinyErr)
				}
				if _, err := slowListing([]byte(tt.in)); err == nil {
					t.Errorf("encoding/json reads it")
				}
				return
			}
			if err != nil || tinyErr != nil {
				t.Fatal(err, tinyErr)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("decode = %q, want %q", got, tt.want)
			}
			if !slices.Equal(tiny, tt.want) {
				t.Errorf("decode a byte at a time = %q, want %q", tiny, tt.want)
			}
			if ref, err := slowListing([]byte(tt.in)); err != nil || !slices.Equal(got, ref) {
				t.Errorf("encoding/json reads %q, %v", ref, err)
			}
			if slow != tt.slow {
				t.Errorf("%d pairs read by encoding/json, want %d", slow, tt.slow)
			}
		})
	}
}

// FuzzParseListing checks that the decoder agrees with encoding/json on
// whatever both accept, and fails where encoding/json does, whatever the
// size of its window.
func FuzzParseListing(f *testing.F) {
	for _, s := range []string{`[]`, `[{"Key":"a","Value":"eA==","Flags":0}]`, `[{"Key":"a\u00e9","Value":null}]`,
		`[{"LockIndex":0,"Key":"x/","Flags":0,"Value":null,"CreateIndex":1,"ModifyIndex":2,"Session":"s"}]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, _, err := parseListing(b)
		tiny, tinyErr := parseTiny(b)
		want, werr := slowListing(b)
		if werr != nil {
			if err == nil || tinyErr == nil {
				t.Fatalf("decode(%q) = %q, %q a byte at a time; encoding/json fails: %v", b, got, tiny, werr)
			}
			return
		}
		if err != nil || tinyErr != nil {
			t.Fatalf("decode(%q): %v, %v a byte at a time; encoding/json reads %q", b, err, tinyErr, want)
		}
		if !slices.Equal(got, want) || !slices.Equal(tiny, want) {
			t.Fatalf("decode(%q) = %q, %q a byte at a time; encoding/json reads %q", b, got, tiny, want)
		}
	})
}

// BenchmarkParseListing decodes a listing of 100,000 keys, sorted, in Consul's
// shape (about 16 MB), and indented as a dev agent gives it (about 25
// MB), also with the same listing as the previous one, next to
// encoding/json alone.
func BenchmarkParseListing(b *testing.B) {
	var sb strings.Builder
	sb.WriteByte('[')
	for i := range 100_000 {
		if i > 0 {
			sb.WriteByte(',')
		}
		v := base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "value of key %06d, some forty bytes", i))
		fmt.Fprintf(&sb, `{"LockIndex":0,"Key":"bench/svc%03d/key%06d","Flags":0,"Value":%q,"CreateIndex":%d,"ModifyIndex":%d}`, i/1000, i, v, 1000+i, 1000+i)
	}
	sb.WriteByte(']')
	compact := []byte(sb.String())
	var indented bytes.Buffer
	if err := json.Indent(&indented, compact, "", "    "); err != nil {
		b.Fatal(err)
	}
	stream := func(body []byte) ([]backends.KV, error) {
		return newDecoder(bytes.NewReader(body), nil).decode()
	}
	prev, err := stream(compact)
	if err != nil {
		b.Fatal(err)
	}
	again := func(body []byte) ([]backends.KV, error) {
		return newDecoder(bytes.NewReader(body), prev).decode()
	}
	for _, c := range []struct {
		name  string
		body  []byte
		parse func([]byte) ([]backends.KV, error)
	}{
		{"fast", compact, stream},
		{"fast-indented", indented.Bytes(), stream},
		// As a watch does: the previous listing holds every pair.
		{"fast-indented-unchanged", indented.Bytes(), again},
		{"encoding-json", compact, slowListing},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.body)))
			b.ReportAllocs()
			for b.Loop() {
				kvs, err := c.parse(c.body)
				if err != nil || len(kvs) != 100_000 {
					b.Fatalf("%d pairs, %v", len(kvs), err)
				}
			}
		})
	}
}

// TestDecodeRandom decodes listings made of random pieces, most of them of
// Consul's shape, some not (escapes, names that differ only in case,
// values that are not base64, bodies cut short), and checks that the
// decoder agrees with encoding/json, whatever its window.
func TestDecodeRandom(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	ws := []string{"", " ", "\n    ", "\t", "        ", "\r\n"}
	keys := []string{`"a"`, `"a/b/"`, `"\u00e9"`, `"x\"y"`, `"ké"`, `""`, `"a\\b"`, `"\/"`, `"` + strings.Repeat("z", 40) + `"`}
	values := []string{`"eA=="`, `null`, `"AP8Kgw=="`, `""`, `"Lz8\/"`, `"%%"`, `"eA\n=="`, `1`, `"` + strings.Repeat("QUJD", 30) + `"`}
	names := []string{`"Key"`, `"Value"`, `"LockIndex"`, `"Flags"`, `"key"`, `"VALUE"`, `"\u212aey"`, `"Session"`, `"K"`, `"Valu\u0065"`}
	others := []string{`0`, `-1.5e3`, `true`, `false`, `null`, `"s"`, `{"a":[1,"}"]}`, `[]`, `01`, `1.`, `2e`}
	pick := func(s []string) string { return s[r.IntN(len(s))] }
	for range 20_000 {
		var b strings.Builder
		b.WriteString(pick(ws) + "[")
		for i := range r.IntN(5) {
			if i > 0 {
				b.WriteString(pick(ws) + ",")
			}
			b.WriteString(pick(ws) + "{")
			for j := range r.IntN(5) {
				if j > 0 {
					b.WriteString(pick(ws) + ",")
				}
				name := pick(names)
				b.WriteString(pick(ws) + name + pick(ws) + ":" + pick(ws))
				switch {
				case strings.EqualFold(name, `"key"`) || name == `"\u212aey"`:
					b.WriteString(pick(keys))
				case strings.EqualFold(name, `"value"`) || name == `"Valu\u0065"`:
					b.WriteString(pick(values))
				default:
					b.WriteString(pick(others))
				}
			}
			b.WriteString(pick(ws) + "}")
		}
		b.WriteString(pick(ws) + "]" + pick(ws))
		in := []byte(b.String())
		if r.IntN(10) == 0 {
			in = in[:r.IntN(len(in)+1)]
		}
		got, _, err := parseListing(in)
		tiny, tinyErr := parseTiny(in)
		want, werr := slowListing(in)
		if (werr != nil) != (err != nil) || (werr != nil) != (tinyErr != nil) {
			t.Fatalf("decode(%q): %v, %v a byte at a time; encoding/json: %v", in, err, tinyErr, werr)
		}
		if werr == nil && (!slices.Equal(got, want) || !slices.Equal(tiny, want)) {
			t.Fatalf("decode(%q) = %q, %q a byte at a time; encoding/json reads %q", in, got, tiny, want)
		}
	}
}

// TestDecodeReuse checks that a listing decoded with a previous one holds
// the same pairs as without it, and shares the previous listing's strings
// where the key, or the key and the value, did not change.
func TestDecodeReuse(t *testing.T) {
	t.Parallel()
	body := func(kv ...string) []byte {
		var b strings.Builder
		b.WriteString("[")
		for i := 0; i < len(kv); i += 2 {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `{"LockIndex":0,"Key":%q,"Flags":0,"Value":%q,"CreateIndex":1,"ModifyIndex":2}`,
				kv[i], base64.StdEncoding.EncodeToString([]byte(kv[i+1])))
		}
		b.WriteString("]")
		return []byte(b.String())
	}
	prev, _, err := parseListing(body("app/a", "1", "app/b", "2", "app/c", "3", "app/dir/", "", "app/e", "5"))
	if err != nil {
		t.Fatal(err)
	}
	// As the consul package keeps it: "/app/dir" without its "/".
	for i := range prev {
		if prev[i].Key == "/app/dir/" {
			prev[i].Key = "/app/dir"
		}
	}
	next := body("app/a", "1", "app/b", "two", "app/bb", "new", "app/dir/", "", "app/e", "5", "app/f", "6")
	want, _, err := parseListing(next)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		d    *decoder
	}{
		{"usual sizes", newDecoder(bytes.NewReader(next), prev)},
		{"a byte at a time", func() *decoder {
			d := newDecoder(iotest.OneByteReader(bytes.NewReader(next)), prev)
			d.winMin, d.winMax, d.ahead, d.pageMax, d.pageLen = 1, 4, 2, 1, 1
			return d
		}()},
		{"every page kept compact", func() *decoder {
			// No room in kvs: every page, reused pairs too, waits as
			// pageSpans for the list at the end.
			d := newDecoder(bytes.NewReader(next), prev)
			d.kvs, d.pageLen = nil, 2
			return d
		}()},
	} {
		got, err := tt.d.decode()
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("%s: decode = %q, %v; want %q", tt.name, got, err, want)
		}
		same := func(a, b string) bool { return unsafe.StringData(a) == unsafe.StringData(b) }
		for i, w := range []struct{ key, value bool }{
			{true, true},   // /app/a: unchanged
			{true, false},  // /app/b: a new value
			{false, false}, // /app/bb: new
			{false, false}, // /app/dir/: its key was cleaned
			{true, true},   // /app/e
			{false, false}, // /app/f: new
		} {
			j, ok := slices.BinarySearchFunc(prev, got[i].Key, func(kv backends.KV, k string) int { return strings.Compare(kv.Key, k) })
			if !ok {
				if w.key {
					t.Errorf("%s: %q not in the previous listing", tt.name, got[i].Key)
				}
				continue
			}
			if same(got[i].Key, prev[j].Key) != w.key || same(got[i].Value, prev[j].Value) != w.value {
				t.Errorf("%s: %q shares key %t, value %t; want %t, %t", tt.name, got[i].Key,
					same(got[i].Key, prev[j].Key), same(got[i].Value, prev[j].Value), w.key, w.value)
			}
		}
	}
}

// TestCompactSpan checks that a span survives its trip through pageSpan,
// and that a page too large for one is refused.
func TestCompactSpan(t *testing.T) {
	t.Parallel()
	for _, sp := range []span{
		{k0: 0, k1: 4, v0: 4, v1: 9},
		{k0: 10, k1: 12, v0: 3, v1: 3}, // an empty value, read before the key
		{v0: 7, v1: 11, prev: 1},       // the key of the previous listing's first pair
		{prev: 100_000, same: true},    // its key and value
		{k0: 0, k1: 0, v0: 0, v1: 1<<31 - 1},
	} {
		ps, ok := compact(sp)
		if !ok {
			t.Errorf("compact(%+v) refused", sp)
			continue
		}
		got := ps.span()
		if sp.prev > 0 {
			got.k0, got.k1, sp.k0, sp.k1 = 0, 0, 0, 0 // the key is prev's: its offsets are not kept
			if sp.same {
				got.v0, got.v1, sp.v0, sp.v1 = 0, 0, 0, 0 // nor the value's
			}
		}
		if got != sp {
			t.Errorf("compact(%+v).span() = %+v", sp, got)
		}
	}
	for _, sp := range []span{{k0: 0, k1: 1, v0: 1, v1: 1 << 31}, {k0: 1 << 31, k1: 1<<31 + 1}} {
		if ps, ok := compact(sp); ok {
			t.Errorf("compact(%+v) = %+v, want it refused", sp, ps)
		}
	}
}
