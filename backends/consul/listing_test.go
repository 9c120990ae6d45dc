package consul

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// slowListing decodes a listing with encoding/json alone: the reference
// parseListing must agree with.
func slowListing(b []byte) ([]entry, error) {
	var pairs []struct {
		Key   *string
		Value []byte
	}
	if err := json.Unmarshal(b, &pairs); err != nil {
		return nil, err
	}
	es := []entry{}
	for _, p := range pairs {
		if p.Key == nil {
			return nil, errors.New("no key")
		}
		es = append(es, entry{full: "/" + *p.Key, value: string(p.Value)})
	}
	return es, nil
}

func TestParseListing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		want     []entry // nil: an error
		fast     bool    // read without encoding/json
	}{
		{"empty", `[]`, []entry{}, true},
		{"consul's shape", `[{"LockIndex":0,"Key":"app/db","Flags":0,"Value":"aG9zdA==","CreateIndex":12,"ModifyIndex":13},` +
			`{"LockIndex":0,"Key":"app/dir/","Flags":0,"Value":null,"CreateIndex":14,"ModifyIndex":14}]`,
			[]entry{{"/app/db", "host"}, {"/app/dir/", ""}}, true},
		{"white space and session", " [ { \"Key\" : \"a\" , \"Session\" : \"5f-1\", \"Value\" : \"\" , \"Flags\": -1.5e3 } ] \n",
			[]entry{{"/a", ""}}, true},
		{"unicode key", `[{"Key":"app/naïve/😀","Value":"eA=="}]`, []entry{{"/app/naïve/😀", "x"}}, true},
		{"escaped key", `[{"Key":"a\"b\u00e9\ud83d\ude00","Value":"eA=="}]`, []entry{{"/a\"bé😀", "x"}}, false},
		{"binary value", `[{"Key":"k","Value":"AP8Kgw=="}]`, []entry{{"/k", "\x00\xff\n\x83"}}, true},
		{"escaped slash in value", `[{"Key":"k","Value":"Lz8\/"}]`, []entry{{"/k", "/??"}}, false},
		{"nested field", `[{"Key":"k","Value":"eA==","Extra":{"a":[1,2]}}]`, []entry{{"/k", "x"}}, false},
		{"no key", `[{"Value":"eA=="}]`, nil, false},
		{"bad base64", `[{"Key":"k","Value":"%%%"}]`, nil, false},
		{"truncated", `[{"Key":"k","Value":"eA=="}`, nil, false},
		{"not an array", `{"Key":"k"}`, nil, false},
		{"trailing garbage", `[] x`, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseListing([]byte(tt.in))
			if tt.want == nil {
				if err == nil || !errors.Is(err, errListing) {
					t.Fatalf("parseListing = %q, %v; want an errListing", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("parseListing = %q, want %q", got, tt.want)
			}
			if ref, err := slowListing([]byte(tt.in)); err != nil || !slices.Equal(got, ref) {
				t.Errorf("encoding/json reads %q, %v", ref, err)
			}
			if _, fast := fastListing([]byte(tt.in)); fast != tt.fast {
				t.Errorf("read quickly: %t, want %t", fast, tt.fast)
			}
		})
	}
}

// FuzzParseListing checks that parseListing agrees with encoding/json on
// whatever both accept, and fails where encoding/json does.
func FuzzParseListing(f *testing.F) {
	for _, s := range []string{`[]`, `[{"Key":"a","Value":"eA==","Flags":0}]`, `[{"Key":"a\u00e9","Value":null}]`,
		`[{"LockIndex":0,"Key":"x/","Flags":0,"Value":null,"CreateIndex":1,"ModifyIndex":2,"Session":"s"}]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := parseListing(b)
		want, werr := slowListing(b)
		if werr != nil {
			if err == nil {
				t.Fatalf("parseListing(%q) = %q, encoding/json fails: %v", b, got, werr)
			}
			return
		}
		if err != nil {
			t.Fatalf("parseListing(%q): %v; encoding/json reads %q", b, err, want)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("parseListing(%q) = %q, encoding/json reads %q", b, got, want)
		}
	})
}

// TestListingTransport checks that a marked request's body is decoded
// into its slot and the API library gets an empty array, and that other
// requests and error statuses pass through untouched.
func TestListingTransport(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.Error(w, "nope", http.StatusNotFound)
			return
		}
		fmt.Fprint(w, `[{"Key":"a","Value":"eA=="}]`)
	}))
	defer srv.Close()
	hc := &http.Client{Transport: listingTransport{base: http.DefaultTransport}}
	get := func(path string, s *listingSlot) (int, string) {
		t.Helper()
		ctx := t.Context()
		if s != nil {
			ctx = withSlot(ctx, s)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(t, resp)
		if err := resp.Body.Close(); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, body
	}
	var s listingSlot
	if code, body := get("/list", &s); code != 200 || body != "[]" {
		t.Errorf("marked request: %d %q, want 200 []", code, body)
	}
	if s.err != nil || !slices.Equal(s.entries, []entry{{"/a", "x"}}) {
		t.Errorf("slot = %q, %v", s.entries, s.err)
	}
	if code, body := get("/list", nil); code != 200 || !strings.Contains(body, `"Key":"a"`) {
		t.Errorf("unmarked request: %d %q", code, body)
	}
	var s404 listingSlot
	if code, body := get("/missing", &s404); code != 404 || !strings.Contains(body, "nope") || s404.entries != nil {
		t.Errorf("404: %d %q, slot %q", code, body, s404.entries)
	}
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	var b strings.Builder
	buf := make([]byte, 512)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}

// BenchmarkParseListing decodes a listing of 100,000 keys in Consul's
// shape (about 19 MB), next to encoding/json alone.
func BenchmarkParseListing(b *testing.B) {
	var sb strings.Builder
	sb.WriteByte('[')
	for i := range 100_000 {
		if i > 0 {
			sb.WriteByte(',')
		}
		v := base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "value of key %06d, some forty bytes", i))
		fmt.Fprintf(&sb, `{"LockIndex":0,"Key":"bench/svc%03d/key%06d","Flags":0,"Value":%q,"CreateIndex":%d,"ModifyIndex":%d}`, i%100, i, v, 1000+i, 1000+i)
	}
	sb.WriteByte(']')
	body := []byte(sb.String())
	for _, c := range []struct {
		name  string
		parse func([]byte) ([]entry, error)
	}{{"fast", parseListing}, {"encoding-json", slowListing}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				es, err := c.parse(body)
				if err != nil || len(es) != 100_000 {
					b.Fatalf("%d entries, %v", len(es), err)
				}
			}
		})
	}
}
