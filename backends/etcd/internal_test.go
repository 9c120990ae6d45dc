package etcd

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap" //nolint:depguard // tests the bridge from the etcd client's logger to slog

	"github.com/kvconf/kvconf/internal/tlsfiles"
)

func TestMerge(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   []string
		want []string
	}{
		{name: "none", in: nil, want: []string{}},
		{name: "one", in: []string{"/app"}, want: []string{"/app"}},
		{name: "sorted", in: []string{"/b", "/a"}, want: []string{"/a", "/b"}},
		{name: "duplicates", in: []string{"/a", "/a"}, want: []string{"/a"}},
		{name: "covered", in: []string{"/app/db", "/app"}, want: []string{"/app"}},
		{name: "plain string prefix", in: []string{"/appx", "/app"}, want: []string{"/app"}},
		{name: "not covered", in: []string{"/app/", "/appx"}, want: []string{"/app/", "/appx"}},
		{name: "covered across others", in: []string{"/a", "/a/b", "/a/b/c", "/ab", "/b"}, want: []string{"/a", "/b"}},
		{name: "root", in: []string{"/app", "/", "other"}, want: []string{""}},
		{name: "empty covers all", in: []string{"x", ""}, want: []string{""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := merge(tt.in); !slices.Equal(got, tt.want) {
				t.Errorf("merge(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// keys is a set of keys that exercises prefix boundaries.
var keys = []string{
	"", "/", "/a", "/a/", "/a/b", "/a/b/c", "/ab", "/b", "/b/c", "/c",
	"/a\x00", "/a\xff", "/a\xff\xff", "\xff", "\xff\xff/x", "a", "a/b", "\x00",
}

// naive reports whether key starts with one of prefixes, "/" matching all.
func naive(key string, prefixes []string) bool {
	for _, p := range prefixes {
		if p == "/" || strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// prefixSets are the prefix sets the tests of under and cover try.
var prefixSets = [][]string{
	{"/a"}, {"/a/"}, {"/a", "/b"}, {"/a/", "/b/c"}, {"/a/b", "/ab", "/c"},
	{"/"}, {"/a\xff"}, {"\xff"}, {"/a", "\xff\xff"}, {"a", "/a"}, {"/b", "/a/b/c"},
}

func TestUnder(t *testing.T) {
	t.Parallel()
	for _, prefixes := range prefixSets {
		ps := merge(prefixes)
		for _, k := range keys {
			if got, want := under(k, ps), naive(k, prefixes); got != want {
				t.Errorf("under(%q, merge(%q)) = %t, want %t", k, prefixes, got, want)
			}
		}
	}
}

// inRange reports whether key is in [from, end), an end of "\x00" meaning
// no end.
func inRange(key, from, end string) bool {
	return key >= from && (end == "\x00" || key < end)
}

func TestCover(t *testing.T) {
	t.Parallel()
	for _, prefixes := range prefixSets {
		ps := merge(prefixes)
		from, end := cover(ps)
		if end != "\x00" && end <= from {
			t.Errorf("cover(%q) = [%q, %q), empty", ps, from, end)
		}
		for _, k := range keys {
			if k == "" {
				continue // not a valid etcd key
			}
			if naive(k, prefixes) && !inRange(k, from, end) {
				t.Errorf("cover(%q) = [%q, %q), misses %q", ps, from, end, k)
			}
		}
		for _, p := range ps {
			from, end := span(p)
			for _, k := range keys {
				if k != "" && inRange(k, from, end) != naive(k, []string{p}) {
					t.Errorf("span(%q) = [%q, %q), wrong about %q", p, from, end, k)
				}
			}
		}
	}
	// The range is the tightest: it ends where the last prefix does.
	if from, end := cover([]string{"/a", "/c"}); from != "/a" || end != "/d" {
		t.Errorf("cover(/a, /c) = [%q, %q), want [/a, /d)", from, end)
	}
}

func TestNode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		in     string
		scheme string
		want   string // "" for an error
	}{
		{name: "url", in: "http://etcd1:2379", scheme: "http", want: "http://etcd1:2379"},
		{name: "https url", in: "https://etcd1:2379", scheme: "http", want: "https://etcd1:2379"},
		{name: "trailing slash", in: "http://etcd1:2379/", scheme: "http", want: "http://etcd1:2379"},
		{name: "url without port", in: "https://etcd1", scheme: "http", want: "https://etcd1:2379"},
		{name: "host:port", in: "10.0.0.1:4001", scheme: "http", want: "http://10.0.0.1:4001"},
		{name: "host:port https", in: "etcd1:4001", scheme: "https", want: "https://etcd1:4001"},
		{name: "host", in: "etcd1", scheme: "http", want: "http://etcd1:2379"},
		{name: "spaces", in: " etcd1:1 ", scheme: "http", want: "http://etcd1:1"},
		{name: "ipv6", in: "[::1]:2379", scheme: "http", want: "http://[::1]:2379"},
		{name: "ipv6 bare", in: "::1", scheme: "http", want: "http://[::1]:2379"},
		{name: "ipv6 bracketed", in: "[fe80::1]", scheme: "http", want: "http://[fe80::1]:2379"},
		{name: "ipv6 url", in: "https://[::1]:2379", scheme: "http", want: "https://[::1]:2379"},
		{name: "empty", in: " ", scheme: "http"},
		{name: "other scheme", in: "unix://etcd.sock", scheme: "http"},
		{name: "path", in: "http://etcd1:2379/v2", scheme: "http"},
		{name: "user", in: "http://u:p@etcd1:2379", scheme: "http"},
		{name: "bad port", in: "etcd1:http", scheme: "http"},
		{name: "zero port", in: "etcd1:0", scheme: "http"},
		{name: "empty port", in: "etcd1:", scheme: "http"},
		{name: "no host", in: "http://:2379", scheme: "http"},
		{name: "space in host", in: "etc d1", scheme: "http"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := node(tt.in, tt.scheme)
			if tt.want == "" {
				if err == nil {
					t.Errorf("node(%q) = %q, want an error", tt.in, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("node(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

// fakeDNS answers SRV lookups from a map of record names.
type fakeDNS struct {
	records map[string][]*net.SRV
	asked   []string
}

func (d *fakeDNS) lookup(_ context.Context, service, proto, name string) (string, []*net.SRV, error) {
	if service != "" || proto != "" {
		return "", nil, errors.New("want the full record name")
	}
	d.asked = append(d.asked, name)
	srvs, ok := d.records[name]
	if !ok {
		return "", nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	}
	return name, srvs, nil
}

func TestDiscover(t *testing.T) {
	t.Parallel()
	srv := func(target string, port uint16) *net.SRV { return &net.SRV{Target: target, Port: port} }
	records := map[string][]*net.SRV{
		"_etcd-client-ssl._tcp.secure.example.": {srv("e1.secure.example.", 2379)},
		"_etcd-client._tcp.secure.example.":     {srv("plain.secure.example.", 2379)},
		"_etcd-client._tcp.example.":            {srv("e1.example.", 2379), srv("e2.example.", 2380)},
		"_etcd._tcp.confd.example.":             {srv("c1.confd.example.", 4001)},
		"_etcd-client._tcp.empty.example.":      {srv(".", 0)},
		"_custom._tcp.example.":                 {srv("x.example.", 1)},
	}
	tests := []struct {
		name  string
		cfg   Config
		want  []string // nil for an error
		asked []string
	}{
		{
			name:  "etcd's name",
			cfg:   Config{SRVDomain: "example."},
			want:  []string{"http://e1.example:2379", "http://e2.example:2380"},
			asked: []string{"_etcd-client._tcp.example."},
		},
		{
			name:  "domain without trailing dot",
			cfg:   Config{SRVDomain: "example", Scheme: "http"},
			want:  nil,
			asked: []string{"_etcd-client._tcp.example", "_etcd._tcp.example"},
		},
		{
			name:  "confd's name",
			cfg:   Config{SRVDomain: "confd.example."},
			want:  []string{"http://c1.confd.example:4001"},
			asked: []string{"_etcd-client._tcp.confd.example.", "_etcd._tcp.confd.example."},
		},
		{
			name:  "ssl first with https",
			cfg:   Config{SRVDomain: "secure.example.", Scheme: "https"},
			want:  []string{"https://e1.secure.example:2379"},
			asked: []string{"_etcd-client-ssl._tcp.secure.example."},
		},
		{
			name:  "https from TLS options",
			cfg:   Config{SRVDomain: "secure.example.", TLS: tlsfiles.TLS{ClientCAKeys: "/ca.pem"}},
			want:  []string{"https://e1.secure.example:2379"},
			asked: []string{"_etcd-client-ssl._tcp.secure.example."},
		},
		{
			name:  "no ssl with http",
			cfg:   Config{SRVDomain: "secure.example."},
			want:  []string{"http://plain.secure.example:2379"},
			asked: []string{"_etcd-client._tcp.secure.example."},
		},
		{
			name:  "record",
			cfg:   Config{SRVRecord: "_custom._tcp.example.", SRVDomain: "example."},
			want:  []string{"http://x.example:1"},
			asked: []string{"_custom._tcp.example."},
		},
		{
			name:  "no service",
			cfg:   Config{SRVDomain: "empty.example."},
			want:  nil,
			asked: []string{"_etcd-client._tcp.empty.example.", "_etcd._tcp.empty.example."},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := &fakeDNS{records: records}
			got, err := tt.cfg.endpoints(t.Context(), d.lookup)
			if tt.want == nil {
				if err == nil {
					t.Errorf("endpoints = %q, want an error", got)
				}
			} else if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("endpoints = %q, %v; want %q", got, err, tt.want)
			}
			if !slices.Equal(d.asked, tt.asked) {
				t.Errorf("looked up %q, want %q", d.asked, tt.asked)
			}
		})
	}
}

func TestLogBridge(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	lg := zapLogger(log).Named("etcd-client")
	lg.Debug("hidden")
	lg.With(zap.String("target", "t1")).Warn("retrying", zap.String("error", "unavailable"))
	out := buf.String()
	if strings.Contains(out, "hidden") {
		t.Errorf("debug message logged at level info: %s", out)
	}
	for _, want := range []string{"level=WARN", "msg=retrying", "logger=etcd-client", "target=t1", "error=unavailable"} {
		if !strings.Contains(out, want) {
			t.Errorf("log = %q, want %q in it", out, want)
		}
	}
	zapLogger(nil).Error("discarded") // must not panic
	// The client's warning for each failed attempt is kvconf's debug.
	buf.Reset()
	lg.Warn("retrying of unary invoker failed", zap.String("error", "refused"))
	if buf.Len() != 0 {
		t.Errorf("a per-attempt warning logged at level info: %s", buf.String())
	}
}
