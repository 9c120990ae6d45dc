package haproxy

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/kvconf/kvconf/appliers"
)

// testdata/show-servers-state.txt and show-stat.csv are replies of the
// Debian HAProxy 2.6.12 for a backend web whose servers a and n are down
// (their check refused: L4CON) and b and m are up, all four in drain.

func TestParseServersStateCheck(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("testdata/show-servers-state.txt")
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseServersState(string(b))
	if err != nil {
		t.Fatal(err)
	}
	for name, down := range map[string]bool{"a": true, "b": false, "m": false, "n": true} {
		s, ok := got["web"][name]
		switch {
		case !ok:
			t.Fatalf("no server %s in %v", name, got)
		case (s.op == srvStopped) != down:
			t.Errorf("server %s: op state %d, want down %v", name, s.op, down)
		case (s.checkResult == chkFailed) != down:
			t.Errorf("server %s: check result %d, want failed %v", name, s.checkResult, down)
		case s.checkState&chkEnabled == 0:
			t.Errorf("server %s: check state %#x, want enabled", name, s.checkState)
		case s.admin&adminMaint != 0:
			t.Errorf("server %s: admin state %#x: drain is not maintenance", name, s.admin)
		}
	}
}

func TestParseCheckStat(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("testdata/show-stat.csv")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, out, server string
		want              checkStat
		err               bool
	}{
		{"failed", string(b), "n", checkStat{"L4CON", "Layer4 connection problem"}, false},
		{"passed", string(b), "m", checkStat{"L4OK", "Layer4 check passed"}, false},
		{"in progress", strings.Replace(string(b), ",L4CON,", ",* L4CON,", 1), "a", checkStat{"L4CON", "Layer4 connection problem"}, false},
		{"no server", string(b), "x", checkStat{}, true},
		{"empty", "", "a", checkStat{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseCheckStat(tt.out, "web", tt.server)
			if (err != nil) != tt.err || got != tt.want {
				t.Fatalf("parseCheckStat = %+v, %v; want %+v, error %v", got, err, tt.want, tt.err)
			}
		})
	}
}

// TestParseStatBackup reads bck, the backup flag that "show servers state"
// lacks, from "show stat": the reply of HAProxy 2.6.12 with server m made
// a backup server.
func TestParseStatBackup(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("testdata/show-stat.csv")
	if err != nil {
		t.Fatal(err)
	}
	// The columns status,weight,act,bck of server m.
	out := strings.Replace(string(b), "web,m,0,0,0,0,,0,0,0,,0,,0,0,0,0,DRAIN,1,1,0,", "web,m,0,0,0,0,,0,0,0,,0,,0,0,0,0,DRAIN,1,0,1,", 1)
	if out == string(b) {
		t.Fatal("testdata/show-stat.csv: no row for server m")
	}
	got, err := parseStat(out)
	if err != nil {
		t.Fatal(err)
	}
	for name, backup := range map[string]bool{"a": false, "b": false, "m": true, "n": false} {
		if s, ok := got["web"][name]; !ok || s.backup != backup {
			t.Errorf("server %s: %+v (found %v), want backup %v", name, s, ok, backup)
		}
	}
	if _, err := parseStat("# pxname,svname,status\nweb,a,UP\n"); err == nil {
		t.Error("a reply without bck accepted")
	}
}

func TestCheckError(t *testing.T) {
	t.Parallel()
	var err error = &CheckError{Backend: "web", Server: "s2", Status: "L4CON", Desc: "Layer4 connection problem"}
	err = fmt.Errorf("wrapped: %w", err)
	var ce *CheckError
	if !errors.As(err, &ce) || errors.Is(err, appliers.ErrUnsupported) {
		t.Fatalf("%v: not a CheckError, or unsupported", err)
	}
	if want := "haproxy: server web/s2: health check failed: L4CON (Layer4 connection problem)"; ce.Error() != want {
		t.Errorf("message %q, want %q", ce.Error(), want)
	}
	ce = &CheckError{Backend: "web", Server: "s2", Timeout: 10 * time.Second}
	if want := "haproxy: server web/s2: health check did not pass within check_timeout 10s: last check status unknown"; ce.Error() != want {
		t.Errorf("message %q, want %q", ce.Error(), want)
	}
}

func TestConfigCheckTimeout(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"", defaultCheckTimeout, false},
		{"30s", 30 * time.Second, false},
		{"0s", 0, true},
		{"-1s", 0, true},
		{"soon", 0, true},
	}
	for _, tt := range tests {
		c := &Config{Socket: "/run/haproxy/admin.sock", CheckTimeout: tt.in}
		ap, err := c.New()
		if tt.err {
			var oe *appliers.OptionError
			if !errors.As(err, &oe) || oe.Key != "check_timeout" {
				t.Errorf("check_timeout %q: error %v, want an OptionError for check_timeout", tt.in, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("check_timeout %q: %v", tt.in, err)
		}
		if got := ap.(*Applier).check; got != tt.want {
			t.Errorf("check_timeout %q: %v, want %v", tt.in, got, tt.want)
		}
	}
}

// TestSample decodes sample.toml, every key known, into a Config that
// makes an applier with the sample's timeouts.
func TestSample(t *testing.T) {
	t.Parallel()
	var doc struct {
		Template struct {
			Apply toml.Primitive `toml:"apply"`
		} `toml:"template"`
	}
	md, err := toml.Decode(new(Config).Sample(), &doc)
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Type string `toml:"type"`
		Config
	}
	if err := md.PrimitiveDecode(doc.Template.Apply, &c); err != nil {
		t.Fatal(err)
	}
	if u := md.Undecoded(); len(u) != 0 {
		t.Fatalf("sample keys not in Config: %v", u)
	}
	ap, err := c.New()
	if err != nil {
		t.Fatal(err)
	}
	if a := ap.(*Applier); c.Type != "haproxy-runtime" || a.check != 10*time.Second || a.drain != 10*time.Second {
		t.Fatalf("sample: type %q, check_timeout %v, drain_timeout %v", c.Type, a.check, a.drain)
	}
}

// TestSettleTimeoutInPoll: when check_timeout runs out while the first
// poll of "show servers state" waits for its reply, the server had no
// verdict in time: a *CheckError with the timeout, not an API error.
// (A socket that accepts and never answers stands in for a HAProxy too
// busy to answer, which a test cannot make the real one be.)
func TestSettleTimeoutInPoll(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "admin.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var held sync.WaitGroup
	t.Cleanup(func() { _ = l.Close(); held.Wait() })
	held.Go(func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				_ = c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c) // read nothing, answer nothing
		}
	})
	a := &Applier{client: newClient(sock, 300*time.Millisecond), check: 100 * time.Millisecond}
	err = a.settle(t.Context(), []*wait{{backend: "web", server: "s2"}}, appliers.Env{Logger: slog.New(slog.DiscardHandler)})
	var ce *CheckError
	if !errors.As(err, &ce) || ce.Backend != "web" || ce.Server != "s2" || ce.Timeout != 100*time.Millisecond {
		t.Fatalf("settle: %v; want a CheckError for web/s2 with timeout 100ms", err)
	}
}
