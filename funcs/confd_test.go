package funcs_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	texttemplate "text/template"
	"time"

	"github.com/kvconf/kvconf/funcs"
)

// confdNames is every function of confd's template FuncMap plus memkv's
// store functions, as of confd v0.16/master.
var confdNames = []string{
	"add", "atoi", "base", "base64Decode", "base64Encode", "contains",
	"datetime", "dir", "div", "exists", "fileExists", "get", "getenv",
	"gets", "getv", "getvs", "join", "json", "jsonArray", "lookupIP",
	"lookupIPV4", "lookupIPV6", "lookupSRV", "ls", "lsdir", "map", "mod",
	"mul", "parseBool", "replace", "reverse", "seq", "sortByLength",
	"sortKVByLength", "split", "sub", "toLower", "toUpper", "trimSuffix",
}

func names(fm texttemplate.FuncMap) []string {
	out := make([]string, 0, len(fm))
	for n := range fm {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

func TestConfdNames(t *testing.T) {
	t.Parallel()
	fm, err := funcs.Map(t.Context(), []string{"confd"}, funcs.NewStore(nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := names(fm); !slices.Equal(got, confdNames) {
		t.Errorf("confd set defines\n%q\nwant\n%q", got, confdNames)
	}
	if !slices.Contains(funcs.Names(), "confd") || funcs.Description("confd") == "" {
		t.Errorf("confd is not registered with a description: %q", funcs.Names())
	}
}

// render runs src with the confd set alone, bound to kv.
func render(ctx context.Context, src string, kv map[string]string) (string, error) {
	fm, err := funcs.Map(ctx, []string{"confd"}, funcs.NewStore(kv))
	if err != nil {
		return "", err
	}
	t, err := texttemplate.New("t").Option("missingkey=error").Funcs(fm).Parse(src)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	err = t.Execute(&b, nil)
	return b.String(), err
}

func TestConfdFuncs(t *testing.T) {
	t.Parallel()
	kv := map[string]string{
		"/app/name":    "demo",
		"/app/port":    "8080",
		"/app/enabled": "true",
		"/app/empty":   "",
		"/hosts/b":     "10.0.0.2",
		"/hosts/a":     "10.0.0.10",
		"/hosts/c":     "10.0.0.1",
	}
	tests := []struct {
		name string
		src  string
		want string
	}{
		{name: "get", src: `{{with get "/app/name"}}{{.Key}}={{.Value}}{{end}}`, want: "/app/name=demo"},
		{name: "get cleans the key", src: `{{(get "app//name/").Key}}`, want: "/app/name"},
		{name: "get empty value", src: `[{{(get "/app/empty").Value}}]`, want: "[]"},
		{name: "getv", src: `{{getv "/app/port"}}`, want: "8080"},
		{name: "getv default", src: `{{getv "/app/nope" "dflt"}}`, want: "dflt"},
		{name: "getv empty default", src: `[{{getv "/app/nope" ""}}]`, want: "[]"},
		{name: "getv first default", src: `{{getv "/app/nope" "a" "b"}}`, want: "a"},
		{name: "getv existing ignores default", src: `[{{getv "/app/empty" "dflt"}}]`, want: "[]"},
		{name: "gets", src: `{{range gets "/hosts/*"}}{{.Key}}:{{.Value}} {{end}}`, want: "/hosts/a:10.0.0.10 /hosts/b:10.0.0.2 /hosts/c:10.0.0.1 "},
		{name: "getvs sorted by value", src: `{{getvs "/hosts/*"}}`, want: "[10.0.0.1 10.0.0.10 10.0.0.2]"},
		{name: "exists", src: `{{exists "/app/name"}} {{exists "/app"}}`, want: "true false"},
		{name: "ls", src: `{{ls "/app"}}`, want: "[empty enabled name port]"},
		{name: "lsdir", src: `{{lsdir "/"}}`, want: "[app hosts]"},
		{name: "reverse in place", src: `{{$s := split "a,b,c" ","}}{{reverse $s}} {{$s}}`, want: "[c b a] [c b a]"},
		{name: "reverse kvs", src: `{{range reverse (gets "/hosts/*")}}{{base .Key}}{{end}}`, want: "cba"},
		{name: "reverse other types unchanged", src: `{{reverse (seq 1 3)}}`, want: "[1 2 3]"},
		{name: "sortByLength stable", src: `{{sortByLength (split "ccc,b,aa,a,bb" ",")}}`, want: "[b a aa bb ccc]"},
		{name: "sortKVByLength", src: `{{range sortKVByLength (gets "/app/*")}}{{base .Key}} {{end}}`, want: "name port empty enabled "},
		{name: "seq", src: `{{seq 3 5}} {{seq 5 3}} {{len (seq 5 3)}}`, want: "[3 4 5] [] 0"},
		{name: "arithmetic", src: `{{add 7 3}} {{sub 7 3}} {{mul 7 3}} {{div 7 3}} {{mod 7 3}} {{div -7 2}} {{mod -7 2}}`, want: "10 4 21 2 1 -3 -1"},
		{name: "atoi", src: `{{add (atoi (getv "/app/port")) 1}}`, want: "8081"},
		{name: "parseBool", src: `{{if parseBool (getv "/app/enabled")}}on{{end}}`, want: "on"},
		{name: "map", src: `{{$m := map "a" 1 "b" "x"}}{{$m.a}}{{$m.b}}`, want: "1x"},
		{name: "empty map", src: `{{len (map)}}`, want: "0"},
		{name: "json", src: `{{$j := json "{\"a\":{\"b\":[1,2]}}"}}{{index $j.a.b 1}}`, want: "2"},
		{name: "jsonArray", src: `{{range jsonArray "[\"x\",\"y\"]"}}{{.}}{{end}}`, want: "xy"},
		{name: "base64", src: `{{base64Encode "kvconf"}} {{base64Decode "a3Zjb25m"}}`, want: "a3Zjb25m kvconf"},
		{name: "strings", src: `{{toUpper "ab"}} {{toLower "AB"}} {{contains "abc" "b"}} {{replace "aaa" "a" "b" 2}} {{trimSuffix "a.conf" ".conf"}}`, want: "AB ab true bba a"},
		{name: "paths", src: `{{base "/a/b"}} {{dir "/a/b"}} {{base ""}} {{dir "b"}}`, want: "b /a . ."},
		{name: "split join", src: `{{join (split "a:b:c" ":") "-"}}`, want: "a-b-c"},
		{name: "fileExists", src: `{{fileExists "/"}} {{fileExists "/nonexistent/kvconf"}}`, want: "true false"},
		{name: "datetime", src: `{{printf "%T" datetime}}`, want: "time.Time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := render(t.Context(), tt.src, kv)
			if err != nil || got != tt.want {
				t.Errorf("%s\n got %q, %v\nwant %q", tt.src, got, err, tt.want)
			}
		})
	}
}

func TestConfdSeqBounds(t *testing.T) {
	t.Parallel()
	src := fmt.Sprintf("{{seq %d %d}}", math.MaxInt-1, math.MaxInt)
	got, err := render(t.Context(), src, nil)
	want := fmt.Sprintf("[%d %d]", math.MaxInt-1, math.MaxInt)
	if err != nil || got != want {
		t.Errorf("%s = %q, %v; want %q", src, got, err, want)
	}
}

// secret is a value that must never show up in an error.
const secret = "s3cr3t-Value"

func TestConfdErrors(t *testing.T) {
	t.Parallel()
	kv := map[string]string{"/secret": secret, "/json": `{"a": ` + secret + `}`}
	tests := []struct {
		name   string
		src    string
		want   string // substring of the error
		is     error  // if set, errors.Is must hold
		hasKey string // if set, errors.As *KeyError with this Key
	}{
		{name: "get missing", src: `{{get "/nope"}}`, want: `error calling get: key "/nope" does not exist`, is: funcs.ErrNotExist, hasKey: "/nope"},
		{name: "getv missing", src: `{{getv "/nope"}}`, want: `error calling getv: key "/nope" does not exist`, is: funcs.ErrNotExist, hasKey: "/nope"},
		{name: "gets bad pattern", src: `{{gets "/a/["}}`, want: `pattern "/a/[": syntax error in pattern`},
		{name: "getvs bad pattern", src: `{{getvs "["}}`, want: `syntax error in pattern`},
		{name: "div by zero", src: `{{div 1 0}}`, want: "error calling div: integer divide by zero"},
		{name: "mod by zero", src: `{{mod 1 0}}`, want: "error calling mod: integer divide by zero"},
		{name: "atoi", src: `{{atoi (getv "/secret")}}`, want: "strconv.Atoi: invalid syntax", is: strconv.ErrSyntax},
		{name: "atoi range", src: `{{atoi "99999999999999999999999"}}`, want: "value out of range", is: strconv.ErrRange},
		{name: "parseBool", src: `{{parseBool (getv "/secret")}}`, want: "strconv.ParseBool: invalid syntax", is: strconv.ErrSyntax},
		{name: "json syntax", src: `{{json (getv "/json")}}`, want: "json: invalid syntax at byte offset 7"},
		{name: "json type", src: `{{json "[1]"}}`, want: "cannot unmarshal array"},
		{name: "jsonArray syntax", src: `{{jsonArray (getv "/secret")}}`, want: "json: invalid syntax at byte offset 1"},
		{name: "base64Decode", src: `{{base64Decode (getv "/secret")}}`, want: "base64: illegal base64 data"},
		{name: "map odd", src: `{{map "a"}}`, want: "invalid map call"},
		{name: "map key type", src: `{{map 1 (getv "/secret")}}`, want: "map keys must be strings, argument 1 is int"},
		{name: "int args", src: `{{add "1" 2}}`, want: `expected integer; found "1"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := render(t.Context(), tt.src, kv)
			if err == nil {
				t.Fatalf("%s: no error", tt.src)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%s: error %q does not contain %q", tt.src, err, tt.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("%s: error %q shows the key's value", tt.src, err)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("%s: error %v is not %v", tt.src, err, tt.is)
			}
			if tt.hasKey != "" {
				ke, ok := errors.AsType[*funcs.KeyError](err)
				if !ok || ke.Key != tt.hasKey {
					t.Errorf("%s: error %v: want *KeyError{%q}", tt.src, err, tt.hasKey)
				}
			}
		})
	}
}

// Not parallel: it sets the environment.
func TestConfdGetenv(t *testing.T) {
	t.Setenv("KVCONF_TEST_SET", "from-env")
	t.Setenv("KVCONF_TEST_EMPTY", "")
	tests := []struct {
		src, want string
	}{
		{`{{getenv "KVCONF_TEST_SET"}}`, "from-env"},
		{`{{getenv "KVCONF_TEST_SET" "dflt"}}`, "from-env"},
		{`[{{getenv "KVCONF_TEST_UNSET_8c1f"}}]`, "[]"},
		{`{{getenv "KVCONF_TEST_UNSET_8c1f" "dflt"}}`, "dflt"},
		{`{{getenv "KVCONF_TEST_EMPTY" "dflt"}}`, "dflt"}, // empty counts as unset, as in confd
	}
	for _, tt := range tests {
		got, err := render(t.Context(), tt.src, nil)
		if err != nil || got != tt.want {
			t.Errorf("%s = %q, %v; want %q", tt.src, got, err, tt.want)
		}
	}
}

func TestConfdDatetime(t *testing.T) {
	t.Parallel()
	before := time.Now()
	got, err := render(t.Context(), `{{datetime.UnixNano}}`, nil)
	after := time.Now()
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseInt(got, 10, 64)
	if err != nil || n < before.UnixNano() || n > after.UnixNano() {
		t.Errorf("datetime = %s (%v), want between %d and %d", got, err, before.UnixNano(), after.UnixNano())
	}
}

// TestConfdLookupsFail checks confd's behaviour when a look-up fails: no
// error, nil addresses and an empty SRV list. The resolver refuses to dial,
// so nothing leaves the machine. The successful paths run against a fake
// DNS server in the template golden tests.
func TestConfdLookupsFail(t *testing.T) {
	t.Parallel()
	var dials atomic.Int32
	r := &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
		dials.Add(1)
		return nil, errors.New("test: no network")
	}}
	ctx := funcs.WithResolver(t.Context(), r)
	src := `{{lookupIP "a.kvconf.invalid"}}{{lookupIPV4 "a.kvconf.invalid"}}{{lookupIPV6 "a.kvconf.invalid"}}` +
		`{{$s := lookupSRV "x" "tcp" "kvconf.invalid"}}{{printf "%#v" $s}}{{len $s}}`
	got, err := render(ctx, src, nil)
	if want := "[][][][]*net.SRV{}0"; err != nil || got != want {
		t.Errorf("failed look-ups render %q, %v; want %q", got, err, want)
	}
	if dials.Load() == 0 {
		t.Error("the resolver from WithResolver was not used")
	}
}

func TestConfdLookupCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		<-ctx.Done() // a server that never answers; only ctx ends the dial
		return nil, ctx.Err()
	}}
	got, err := render(funcs.WithResolver(ctx, r), `{{lookupIP "slow.kvconf.invalid"}}`, nil)
	if err != nil || got != "[]" {
		t.Errorf("cancelled look-up = %q, %v; want []", got, err)
	}
}

func TestWithResolverNil(t *testing.T) {
	t.Parallel()
	// A nil resolver means the default one; the builder must not panic.
	fm, err := funcs.Map(funcs.WithResolver(t.Context(), nil), []string{"confd"}, nil)
	if err != nil || fm["lookupIP"] == nil {
		t.Fatalf("Map with a nil resolver and a nil store: %v", err)
	}
}
