package resource

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestLoadGolden loads every testdata/<case>.toml and compares the outcome
// with testdata/<case>.out (loaded) or testdata/<case>.err (failed).
func TestLoadGolden(t *testing.T) {
	t.Parallel()
	cases, err := filepath.Glob("testdata/*.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) == 0 {
		t.Fatal("no test cases in testdata")
	}
	for _, c := range cases {
		name := strings.TrimSuffix(filepath.Base(c), ".toml")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r, err := Load(c, Options{ConfDir: "testdata", Sets: testSets()})
			got, ext, other := "", ".out", ".err"
			if err != nil {
				var le *LoadError
				if !errors.As(err, &le) {
					t.Errorf("error %v (%T) is not a *LoadError", err, err)
				}
				if r != nil {
					t.Errorf("Load returned a resource with an error")
				}
				got, ext, other = err.Error()+"\n", ".err", ".out"
			} else {
				got = describe(t, r)
			}
			base := strings.TrimSuffix(c, ".toml")
			if strings.HasPrefix(name, "ok_") != (ext == ".out") {
				t.Errorf("case %s: got %s", name, strings.TrimSpace(got))
			}
			if *update {
				if err := os.WriteFile(base+ext, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.Remove(base + other); err != nil && !errors.Is(err, fs.ErrNotExist) {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(base + ext)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("got:\n%s\nwant (%s%s):\n%s", got, base, ext, want)
			}
		})
	}
}

// describe prints what Load made of a resource.
func describe(t *testing.T, r *Resource) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "name: %s\n", r.Name)
	dest := r.Dest()
	if wd, err := os.Getwd(); err == nil {
		// Relative dests become absolute from the working directory.
		if rel, err := filepath.Rel(wd, dest); err == nil && !strings.HasPrefix(rel, "..") {
			dest = "<wd>/" + rel
		}
	}
	fmt.Fprintf(&b, "dest: %s\n", dest)
	fmt.Fprintf(&b, "prefix: %s\n", r.Prefix())
	fmt.Fprintf(&b, "prefixes: %q\n", r.Prefixes())
	if r.modeSet {
		fmt.Fprintf(&b, "mode: %04o\n", octal(r.mode))
	} else {
		b.WriteString("mode: unset\n")
	}
	fmt.Fprintf(&b, "uid: %d\ngid: %d\n", r.uid, r.gid)
	fmt.Fprintf(&b, "timeout: %s\n", r.timeout)
	fmt.Fprintf(&b, "template: %s\n", r.tmpl.Name())
	b.WriteString("config:\n")
	if err := toml.NewEncoder(&b).Encode(configFile{Template: r.Config}); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestLoadErrorMessage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.write("templates/a.tmpl", "a")
	p := e.write("conf.d/haproxy.toml", "[template]\nsrc = \"a.tmpl\"\ndest = \"/x\"\nmode = \"99z\"\n")
	_, err := Load(p, e.opts)
	want := `conf.d/haproxy.toml: template.mode: invalid mode "99z" (want octal, such as "0644")`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
	var le *LoadError
	if !errors.As(err, &le) || le.Field != "template.mode" || le.Path != "conf.d/haproxy.toml" {
		t.Fatalf("got %#v", le)
	}
}

func TestLoadSyntaxErrorLine(t *testing.T) {
	t.Parallel()
	_, err := Load("testdata/err_syntax.toml", Options{ConfDir: "testdata", Sets: testSets()})
	var le *LoadError
	if !errors.As(err, &le) || le.Line != 5 {
		t.Fatalf("got %v, want a *LoadError at line 5", err)
	}
	var pe toml.ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("%v does not wrap a toml.ParseError", err)
	}
}

func TestLoadDir(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.write("templates/a.tmpl", "a")
	res := func(dest string) string { return "[template]\nsrc = \"a.tmpl\"\ndest = " + q(dest) + "\n" }
	e.write("conf.d/b.toml", res(e.dest("b")))
	e.write("conf.d/a.toml", res(e.dest("a")))
	e.write("conf.d/sub/deeper/c.toml", res(e.dest("c")))
	e.write("conf.d/sub/bad.toml", "[template]\nsrc = \"a.tmpl\"\n")
	e.write("conf.d/z.toml", res(e.dest("a")))                // same dest as a.toml
	e.write("conf.d/notes.txt", "not a resource")             // ignored
	e.write("conf.d/d.toml.bak", "[template]\nbroken = true") // ignored
	rs, err := LoadDir(e.opts)
	var names []string
	for _, r := range rs {
		names = append(names, r.Name)
	}
	want := []string{"conf.d/a.toml", "conf.d/b.toml", "conf.d/sub/deeper/c.toml"}
	if !slices.Equal(names, want) {
		t.Errorf("loaded %q, want %q", names, want)
	}
	if err == nil {
		t.Fatal("no error for conf.d/sub/bad.toml and conf.d/z.toml")
	}
	for _, s := range []string{"conf.d/sub/bad.toml: template.dest: missing", "conf.d/z.toml: template.dest: "} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not contain %q", err, s)
		}
	}
}

func TestLoadDirMissing(t *testing.T) {
	t.Parallel()
	_, err := LoadDir(Options{ConfDir: filepath.Join(t.TempDir(), "nope")})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("got %v, want fs.ErrNotExist", err)
	}
}

func TestJoinKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		parts []string
		want  string
	}{
		{"none", nil, "/"},
		{"empty", []string{"", "", ""}, "/"},
		{"root", []string{"/"}, "/"},
		{"relative", []string{"app", "db"}, "/app/db"},
		{"slashes", []string{"/app/", "/db/", "/host/"}, "/app/db/host"},
		{"doubled", []string{"//app//", "db"}, "/app/db"},
		{"global and resource", []string{"/prod", "/app", "/db"}, "/prod/app/db"},
		{"dot dot", []string{"/app", "../db"}, "/db"},
		{"dot dot above root", []string{"..", "x"}, "/x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := JoinKey(tt.parts...); got != tt.want {
				t.Errorf("JoinKey(%q) = %q, want %q", tt.parts, got, tt.want)
			}
		})
	}
}

func FuzzKeyJoin(f *testing.F) {
	f.Add("", "", "")
	f.Add("/prod/", "app", "/db/")
	f.Add("..", "//", "./x/../y")
	f.Fuzz(func(t *testing.T, a, b, c string) {
		j := JoinKey(a, b, c)
		if !strings.HasPrefix(j, "/") {
			t.Fatalf("JoinKey(%q, %q, %q) = %q is not absolute", a, b, c, j)
		}
		if path.Clean(j) != j {
			t.Fatalf("JoinKey(%q, %q, %q) = %q is not clean", a, b, c, j)
		}
		for _, again := range []string{JoinKey(j), JoinKey("/", j), JoinKey(j, ""), JoinKey("", j, "/")} {
			if again != j {
				t.Fatalf("JoinKey(%q, %q, %q) = %q, but joined again gives %q", a, b, c, j, again)
			}
		}
		// ".." is clamped at the root of each join, so only without it
		// does grouping not matter.
		if !strings.Contains(a+b+c, "..") && (JoinKey(JoinKey(a, b), c) != j || JoinKey(a, JoinKey(b, c)) != j) {
			t.Fatalf("JoinKey(%q, %q, %q) is not associative", a, b, c)
		}
	})
}

func TestPrefixes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		global, prefix string
		keys           []string
		want           []string
		wantPrefix     string
	}{
		{"keys only", "", "", []string{"/db", "web"}, []string{"/db", "/web"}, "/"},
		{"resource prefix", "", "/app", []string{"/db"}, []string{"/app/db"}, "/app"},
		{"global prefix", "/prod", "", []string{"/db"}, []string{"/prod/db"}, "/prod"},
		{"global and resource", "prod/", "/app/", []string{"/db/", "/"}, []string{"/prod/app/db", "/prod/app"}, "/prod/app"},
		{"no keys", "/prod", "app", nil, []string{"/prod/app"}, "/prod/app"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.opts.Prefix = tt.global
			fields := []string{"dest = " + q(e.dest("x")), "prefix = " + q(tt.prefix)}
			if tt.keys != nil {
				var qs []string
				for _, k := range tt.keys {
					qs = append(qs, q(k))
				}
				fields = append(fields, "keys = ["+strings.Join(qs, ", ")+"]")
			}
			r := e.resource("x", "x", fields...)
			if got := r.Prefixes(); !slices.Equal(got, tt.want) {
				t.Errorf("Prefixes() = %q, want %q", got, tt.want)
			}
			if got := r.Prefix(); got != tt.wantPrefix {
				t.Errorf("Prefix() = %q, want %q", got, tt.wantPrefix)
			}
		})
	}
}

func TestMergePrefixes(t *testing.T) {
	t.Parallel()
	mk := func(keys ...string) *Resource {
		return &Resource{prefix: "/", Config: Config{Keys: keys}}
	}
	tests := []struct {
		name string
		rs   []*Resource
		want []string
	}{
		{"none", nil, nil},
		{"one", []*Resource{mk("/b", "/a")}, []string{"/a", "/b"}},
		{"duplicates", []*Resource{mk("/a"), mk("/a")}, []string{"/a"}},
		{"covered", []*Resource{mk("/app/db/host"), mk("/app/db"), mk("/web")}, []string{"/app/db", "/web"}},
		{"plain string prefix", []*Resource{mk("/app/dbx"), mk("/app/db")}, []string{"/app/db"}},
		{"root covers all", []*Resource{mk("/x"), mk("/")}, []string{"/"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := MergePrefixes(tt.rs); !slices.Equal(got, tt.want) {
				t.Errorf("MergePrefixes() = %q, want %q", got, tt.want)
			}
		})
	}
}

func FuzzLoadResource(f *testing.F) {
	seeds, err := filepath.Glob("testdata/*.toml")
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	opts := Options{ConfDir: "testdata", Sets: testSets()}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := load("fuzz.toml", data, opts, nil)
		if err != nil {
			if r != nil {
				t.Fatal("load returned a resource with an error")
			}
			return
		}
		var buf bytes.Buffer
		if err := toml.NewEncoder(&buf).Encode(configFile{Template: r.Config}); err != nil {
			t.Fatalf("encode %+v: %v", r.Config, err)
		}
		r2, err := load("fuzz.toml", buf.Bytes(), opts, nil)
		if err != nil {
			t.Fatalf("re-encoded resource does not load: %v\n%s", err, buf.Bytes())
		}
		c1, c2 := r.Config, r2.Config
		if len(c1.Keys) == 0 && len(c2.Keys) == 0 {
			c1.Keys, c2.Keys = nil, nil // [] and absent mean the same
		}
		if !reflect.DeepEqual(c1, c2) {
			t.Fatalf("round trip changed the config:\n%+v\n%+v\n%s", c1, c2, buf.Bytes())
		}
		if r.prefix != r2.prefix || r.dest != r2.dest || r.mode != r2.mode || r.modeSet != r2.modeSet ||
			r.uid != r2.uid || r.gid != r2.gid || r.timeout != r2.timeout {
			t.Fatalf("round trip changed the resource:\n%+v\n%+v", r, r2)
		}
	})
}

// TestLoadBackend: with Options.Backends set, a resource's backend must be
// one of them, and the error names the file, the field and the name.
func TestLoadBackend(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		backend  string
		backends []string
		want     string // error; "" for none
	}{
		{name: "default", backends: []string{""}},
		{name: "named", backend: "meta", backends: []string{"", "meta"}},
		{name: "unchecked", backend: "anything"},
		{name: "unknown", backend: "nope", backends: []string{"", "meta", "files"},
			want: `r.toml: template.backend: unknown backend "nope" (configured: "meta", "files")`},
		{name: "none configured", backend: "meta", backends: []string{""},
			want: `r.toml: template.backend: unknown backend "meta" (no named backends are configured)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := "[template]\nsrc = \"simple.tmpl\"\ndest = \"/tmp/x\"\n"
			if tt.backend != "" {
				src += fmt.Sprintf("backend = %q\n", tt.backend)
			}
			r, err := load("r.toml", []byte(src), Options{ConfDir: "testdata", Sets: testSets(), Backends: tt.backends}, nil)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if r.Config.Backend != tt.backend {
					t.Errorf("Backend = %q, want %q", r.Config.Backend, tt.backend)
				}
				return
			}
			var le *LoadError
			if !errors.As(err, &le) || le.Field != "template.backend" {
				t.Fatalf("error %v, want a *LoadError for template.backend", err)
			}
			if err.Error() != tt.want {
				t.Errorf("error\n%s\nwant\n%s", err, tt.want)
			}
		})
	}
}

// configFile is a resource file with the [Config] fields alone, for
// re-encoding what loaded.
type configFile struct {
	Template Config `toml:"template"`
}
