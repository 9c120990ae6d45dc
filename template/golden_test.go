package template_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/kvconf/kvconf/funcs"
	"github.com/kvconf/kvconf/template"
)

var update = flag.Bool("update", false, "rewrite the want.out and want.err golden files from the current output")

// goldenCase is one directory of testdata (see [template.GoldenCase]).
// Regenerate the expectations, then review the diff, with
//
//	go test ./template -run TestGolden -update
type goldenCase = template.GoldenCase

// loadCases loads every directory of testdata.
func loadCases(t testing.TB) []goldenCase { return template.LoadGoldenCases(t) }

// renderCase parses and renders c as kvconf does. A parse error and a
// render error are both returned as the error.
func renderCase(ctx context.Context, c goldenCase) (string, error) {
	tmpl, err := template.Parse("in.tmpl", c.Src, template.Options{IncludeDir: c.Dir})
	if err != nil {
		return "", err
	}
	var out bytes.Buffer
	if err := tmpl.Render(ctx, &out, funcs.NewStore(c.KV)); err != nil {
		if out.Len() > 0 {
			return "", errors.New("render failed but wrote output")
		}
		return "", err
	}
	return out.String(), nil
}

func TestGolden(t *testing.T) {
	ctx := funcs.WithResolver(t.Context(), startFakeDNS(t))
	for _, c := range loadCases(t) {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			got, err := renderCase(ctx, c)
			outFile, errFile := filepath.Join(c.Dir, "want.out"), filepath.Join(c.Dir, "want.err")
			if *update {
				writeGolden(t, outFile, errFile, got, err)
				return
			}
			wantOut, outErr := os.ReadFile(outFile)
			wantErr, errErr := os.ReadFile(errFile)
			switch {
			case outErr == nil && errErr == nil:
				t.Fatalf("%s has both want.out and want.err", c.Dir)
			case errErr == nil:
				want := strings.TrimSuffix(string(wantErr), "\n")
				if err == nil {
					t.Fatalf("rendered without error, want error:\n%s\noutput:\n%s", want, got)
				}
				if err.Error() != want {
					t.Errorf("error:\n%s\nwant:\n%s", err, want)
				}
			case outErr == nil:
				if err != nil {
					t.Fatalf("error: %v\nwant output:\n%s", err, wantOut)
				}
				if got != string(wantOut) {
					t.Errorf("output:\n%s\nwant:\n%s", got, wantOut)
				}
			default:
				t.Fatalf("%s has neither want.out nor want.err (run go test -update)", c.Dir)
			}
		})
	}
}

// writeGolden records a case's result, removing the other golden file.
func writeGolden(t *testing.T, outFile, errFile, got string, err error) {
	t.Helper()
	file, stale, data := outFile, errFile, got
	if err != nil {
		file, stale, data = errFile, outFile, err.Error()+"\n"
	}
	if werr := os.WriteFile(file, []byte(data), 0o644); werr != nil {
		t.Fatal(werr)
	}
	if rerr := os.Remove(stale); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		t.Fatal(rerr)
	}
}

// TestGoldenCoverage checks that the golden cases call every function of
// the confd set and every sprig_ alias somewhere, so a new function cannot
// land without a golden case.
func TestGoldenCoverage(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("testdata", "*", "*.tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	sub, err := filepath.Glob(filepath.Join("testdata", "*", "*", "*.tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	for _, f := range append(files, sub...) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all.Write(b)
		all.WriteByte('\n')
	}
	fm, err := funcs.Map(t.Context(), []string{"confd"}, funcs.NewStore(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"include"}
	for name := range fm {
		want = append(want, name)
	}
	for _, name := range funcs.SprigCollisions {
		want = append(want, "sprig_"+name)
	}
	slices.Sort(want)
	for _, name := range want {
		if !regexp.MustCompile(`\b` + name + `\b`).MatchString(all.String()) {
			t.Errorf("no golden case calls %s", name)
		}
	}
}

// TestKeyErrorThroughRender checks that a missing key's *funcs.KeyError
// survives text/template's wrapping, for callers that branch on it.
func TestKeyErrorThroughRender(t *testing.T) {
	t.Parallel()
	tmpl, err := template.Parse("t.tmpl", []byte("a\n{{getv \"/x/y\"}}"), template.Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = tmpl.Render(t.Context(), &bytes.Buffer{}, funcs.NewStore(map[string]string{"/x/z": "secret-value"}))
	ke, ok := errors.AsType[*funcs.KeyError](err)
	if !ok || ke.Key != "/x/y" || !errors.Is(err, funcs.ErrNotExist) {
		t.Fatalf("Render error %v: want a *funcs.KeyError for /x/y", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "t.tmpl:2:2") || strings.Contains(msg, "secret-value") {
		t.Errorf("Render error %q: want the file:line and no value", msg)
	}
}

// TestIncludeSymlinkEscape checks that include refuses a symlink inside the
// templates directory that points outside it.
func TestIncludeSymlinkEscape(t *testing.T) {
	t.Parallel()
	outside, dir := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret.tmpl"), []byte("leaked"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "secret.tmpl"), filepath.Join(dir, "link.tmpl")); err != nil {
		t.Skip("symlinks not supported:", err)
	}
	tmpl, err := template.Parse("in.tmpl", []byte(`{{include "link.tmpl"}}`), template.Options{IncludeDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err = tmpl.Render(t.Context(), &out, funcs.NewStore(nil))
	if err == nil || out.Len() > 0 {
		t.Fatalf("include through an escaping symlink: output %q, error %v; want an error", out.String(), err)
	}
}

// TestConcurrentRender renders one parsed template, with includes, from
// several goroutines against different stores (run with -race).
func TestConcurrentRender(t *testing.T) {
	t.Parallel()
	c := goldenCase{Dir: filepath.Join("testdata", "include_data")}
	src, err := os.ReadFile(filepath.Join(c.Dir, "in.tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := template.Parse("in.tmpl", src, template.Options{IncludeDir: c.Dir})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			name := strings.Repeat("n", i+1)
			s := funcs.NewStore(map[string]string{"/app/name": name, "/upstreams/a": "10.0.0.1"})
			for range 20 {
				var out bytes.Buffer
				if err := tmpl.Render(t.Context(), &out, s); err != nil {
					t.Error(err)
					return
				}
				if !strings.Contains(out.String(), "# "+name+"\n") {
					t.Errorf("render %d got another store's data:\n%s", i, out.String())
					return
				}
			}
		})
	}
	wg.Wait()
}

// FuzzRender renders arbitrary template sources against small KV maps,
// seeded with the golden cases. It checks that nothing panics and that a
// failed render writes nothing.
func FuzzRender(f *testing.F) {
	for _, c := range loadCases(f) {
		kv, err := json.Marshal(c.KV)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(c.Src), string(kv))
	}
	// Look-ups must fail fast and stay on the machine.
	noNet := &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("fuzz: no network")
	}}
	f.Fuzz(func(t *testing.T, src, kvJSON string) {
		if costly(src) {
			t.Skip("costly template: see costly")
		}
		var kv map[string]string
		if json.Unmarshal([]byte(kvJSON), &kv) != nil || len(kv) > 64 {
			kv = nil
		}
		tmpl, err := template.Parse("fuzz.tmpl", []byte(src), template.Options{IncludeDir: filepath.Join("testdata", "include_data")})
		if err != nil {
			return
		}
		var out bytes.Buffer
		err = tmpl.Render(funcs.WithResolver(t.Context(), noNet), &out, funcs.NewStore(kv))
		if err != nil && out.Len() > 0 {
			t.Errorf("Render failed (%v) but wrote %d bytes", err, out.Len())
		}
	})
}

var (
	longNumber = regexp.MustCompile(`[0-9]{4,}`)
	assignment = regexp.MustCompile(`[^:]=`)
)

// costly reports sources that could make a single fuzz input run for
// minutes or exhaust memory. The template language can loop, recurse and
// grow values, and sprig can generate RSA keys, so without this the fuzzer
// finds slow inputs, not bugs. The check is deliberately coarse.
func costly(src string) bool {
	if len(src) > 4096 || longNumber.MatchString(src) || assignment.MatchString(src) ||
		strings.Count(src, "range") > 2 {
		return true
	}
	for _, name := range []string{
		"repeat", "until", "seq", "mul", "rand", "gen", "bcrypt", "htpasswd",
		"derivePassword", "getHostByName", "set", "merge", "append", "push", "prepend",
	} {
		if strings.Contains(src, name) {
			return true
		}
	}
	return false
}

// dnsRecord is one answer of the fake DNS server.
type dnsRecord struct {
	name string // absolute, with the final dot
	body dnsmessage.ResourceBody
}

// fakeRecords is what the fake DNS server knows: kvconf.test names only.
func fakeRecords() []dnsRecord {
	srv := func(prio, weight, port uint16, target string) *dnsmessage.SRVResource {
		return &dnsmessage.SRVResource{Priority: prio, Weight: weight, Port: port, Target: dnsmessage.MustNewName(target)}
	}
	return []dnsRecord{
		{"db.kvconf.test.", &dnsmessage.AResource{A: [4]byte{10, 0, 0, 2}}},
		{"db.kvconf.test.", &dnsmessage.AResource{A: [4]byte{10, 0, 0, 10}}},
		{"db.kvconf.test.", &dnsmessage.AAAAResource{AAAA: [16]byte{0: 0xfd, 15: 1}}},
		{"v4.kvconf.test.", &dnsmessage.AResource{A: [4]byte{192, 0, 2, 7}}},
		{"_ldap._tcp.kvconf.test.", srv(10, 5, 389, "ldap2.kvconf.test.")},
		{"_ldap._tcp.kvconf.test.", srv(0, 10, 636, "ldap1.kvconf.test.")},
		{"_ldap._tcp.kvconf.test.", srv(10, 5, 1389, "ldap1.kvconf.test.")},
	}
}

// startFakeDNS starts a tiny DNS server on 127.0.0.1 and returns a resolver
// that asks only it. It is a small fake because real DNS is not reachable
// from the machines the tests run on, and would not give stable answers.
// The server stops, and its goroutine is waited for, when t ends.
func startFakeDNS(t testing.TB) *net.Resolver {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	recs := fakeRecords()
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return // closed
			}
			resp, err := dnsAnswer(buf[:n], recs)
			if err != nil {
				continue // not a query we can parse: drop it, as a server would
			}
			if _, err := pc.WriteTo(resp, from); err != nil {
				t.Logf("fake DNS: write: %v", err)
			}
		}
	})
	t.Cleanup(func() {
		if err := pc.Close(); err != nil {
			t.Errorf("fake DNS: close: %v", err)
		}
		wg.Wait()
	})
	addr := pc.LocalAddr().String()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", addr)
	}}
}

// bodyType returns the DNS type of the records the fake serves.
func bodyType(b dnsmessage.ResourceBody) dnsmessage.Type {
	switch b.(type) {
	case *dnsmessage.AResource:
		return dnsmessage.TypeA
	case *dnsmessage.AAAAResource:
		return dnsmessage.TypeAAAA
	case *dnsmessage.SRVResource:
		return dnsmessage.TypeSRV
	}
	return 0
}

// dnsAnswer builds the reply to the query req: the matching records, an
// empty answer for a known name with no record of the asked type, or
// NXDOMAIN.
func dnsAnswer(req []byte, recs []dnsRecord) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(req)
	if err != nil {
		return nil, err
	}
	q, err := p.Question()
	if err != nil {
		return nil, err
	}
	rcode := dnsmessage.RCodeNameError
	var answers []dnsmessage.ResourceBody
	for _, r := range recs {
		if !strings.EqualFold(r.name, q.Name.String()) {
			continue
		}
		rcode = dnsmessage.RCodeSuccess
		if bodyType(r.body) == q.Type {
			answers = append(answers, r.body)
		}
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{
		ID: h.ID, Response: true, Authoritative: true,
		RecursionDesired: h.RecursionDesired, RecursionAvailable: true, RCode: rcode,
	})
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q); err != nil {
		return nil, err
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	for _, body := range answers {
		hdr := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}
		switch body := body.(type) {
		case *dnsmessage.AResource:
			err = b.AResource(hdr, *body)
		case *dnsmessage.AAAAResource:
			err = b.AAAAResource(hdr, *body)
		case *dnsmessage.SRVResource:
			err = b.SRVResource(hdr, *body)
		}
		if err != nil {
			return nil, err
		}
	}
	return b.Finish()
}
