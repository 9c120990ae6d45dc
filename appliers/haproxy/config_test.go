package haproxy

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kvconf/kvconf/appliers"
)

func TestWords(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		want     []string
		err      bool
	}{
		{"plain", "  server a 1.2.3.4:80  weight 3", []string{"server", "a", "1.2.3.4:80", "weight", "3"}, false},
		{"comment", "bind :80 # x y", []string{"bind", ":80"}, false},
		{"quotes", `http-response set-header X "a b#c" 'd e'`, []string{"http-response", "set-header", "X", "a b#c", "d e"}, false},
		{"escape", `acl x path a\ b`, []string{"acl", "x", "path", "a b"}, false},
		{"unterminated", `x "a`, nil, true},
		{"empty", "   # only a comment", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := words(tt.in)
			if (err != nil) != tt.err || !slices.Equal(got, tt.want) {
				t.Fatalf("words(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.err)
			}
		})
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("testdata/base.cfg")
	if err != nil {
		t.Fatal(err)
	}
	c, err := parse(b)
	if err != nil {
		t.Fatal(err)
	}
	var web *section
	for _, s := range c.sections {
		if s.kind == "backend" && s.name == "web" {
			web = s
		}
	}
	if web == nil {
		t.Fatal("no backend web")
	}
	var names []string
	for _, s := range web.servers {
		names = append(names, s.name)
	}
	if want := []string{"a", "b", "t1", "t2"}; !slices.Equal(names, want) {
		t.Fatalf("servers %q, want %q", names, want)
	}
	a := web.byName["a"]
	if a.weight != 10 || a.port != 80 || a.host.String() != "10.0.0.1" || !a.ipOK || a.maint {
		t.Fatalf("server a = %+v", a)
	}
	if !slices.Equal(web.lines, []string{"balance roundrobin"}) {
		t.Fatalf("lines %q", web.lines)
	}
}

// plans runs diff on base.cfg and base.cfg edited by edit.
func plans(t *testing.T, edit func(string) string) (*plan, error) {
	t.Helper()
	b, err := os.ReadFile("testdata/base.cfg")
	if err != nil {
		t.Fatal(err)
	}
	old, err := parse(b)
	if err != nil {
		t.Fatal(err)
	}
	cur, err := parse([]byte(edit(string(b))))
	if err != nil {
		t.Fatal(err)
	}
	return diff(old, cur)
}

func TestDiff(t *testing.T) {
	t.Parallel()
	r := strings.Replace
	tests := []struct {
		name string
		edit func(string) string
		want []string // the commands, "remove B/S" for a removal
		err  string   // a part of the unsupported error
	}{
		{"nothing", func(s string) string { return s }, nil, ""},
		{"comment and spacing", func(s string) string { return r(s, "balance roundrobin", "balance   roundrobin # same", 1) }, nil, ""},
		{"re-address", func(s string) string { return r(s, "10.0.0.1:80", "10.0.0.9:81", 1) },
			[]string{"set server web/a state maint", "set server web/a addr 10.0.0.9 port 81", "ready web/a"}, ""},
		{"re-address in maintenance", func(s string) string { return r(s, "10.0.0.1:80 weight 10", "10.0.0.9:81 weight 10 disabled", 1) },
			[]string{"set server web/a state maint", "set server web/a addr 10.0.0.9 port 81", "set server web/a state maint"}, ""},
		{"weight", func(s string) string { return r(s, "weight 10", "weight 20", 1) },
			[]string{"set server web/a weight 20"}, ""},
		{"weight to default", func(s string) string { return r(s, " weight 10", "", 1) },
			[]string{"set server web/a weight 1"}, ""},
		{"maint", func(s string) string { return r(s, "weight 10", "weight 10 disabled", 1) },
			[]string{"set server web/a state maint"}, ""},
		{"add", func(s string) string {
			return r(s, "    server b", "    server c 10.0.0.3:80 weight 2 check\n    server b", 1)
		},
			[]string{"add server web/c 10.0.0.3:80 weight 2 check", "enable health web/c", "ready web/c"}, ""},
		{"add without check", func(s string) string {
			return r(s, "    server b", "    server c 10.0.0.3:80 agent-check agent-port 81\n    server b", 1)
		},
			[]string{"add server web/c 10.0.0.3:80 agent-check agent-port 81", "ready web/c", "enable agent web/c"}, ""},
		{"add disabled", func(s string) string {
			return r(s, "    server b", "    server c 10.0.0.3:80 disabled\n    server b", 1)
		},
			[]string{"add server web/c 10.0.0.3:80 disabled"}, ""},
		{"add disabled with check", func(s string) string {
			return r(s, "    server b", "    server c 10.0.0.3:80 disabled check\n    server b", 1)
		},
			[]string{"add server web/c 10.0.0.3:80 disabled check", "enable health web/c"}, ""},
		{"to maintenance", func(s string) string {
			return r(r(s, "10.0.0.2:80 check", "10.0.0.2:80 check disabled", 1), "weight 10", "weight 10 disabled", 1)
		},
			[]string{"set server web/a state maint", "set server web/b state maint"}, ""},
		{"remove", func(s string) string { return r(s, "    server a 10.0.0.1:80 weight 10\n", "", 1) },
			[]string{"remove web/a"}, ""},
		// An option set changes by a replacement: the server leaves (as a
		// removed one does), then comes back with its new options.
		{"backup flip", func(s string) string { return r(s, "weight 10", "weight 10 backup", 1) },
			[]string{"remove web/a", "add server web/a 10.0.0.1:80 weight 10 backup", "ready web/a"}, ""},
		{"backup flip with check", func(s string) string { return r(s, "10.0.0.2:80 check", "10.0.0.2:80 backup check", 1) },
			[]string{"remove web/b", "add server web/b 10.0.0.2:80 backup check", "enable health web/b", "ready web/b"}, ""},
		{"backup flip to maintenance", func(s string) string { return r(s, "weight 10", "weight 10 backup disabled", 1) },
			[]string{"remove web/a", "add server web/a 10.0.0.1:80 weight 10 backup disabled"}, ""},
		{"add, replace, remove", func(s string) string {
			s = r(s, "    server b 10.0.0.2:80 check\n", "", 1)
			s = r(s, "weight 10", "weight 10 backup", 1)
			return r(s, "    server-template", "    server c 10.0.0.3:80\n    server-template", 1)
		},
			// The new server first, then the replacement while the
			// removed server still serves, then the removal.
			[]string{"add server web/c 10.0.0.3:80", "ready web/c", "remove web/a",
				"add server web/a 10.0.0.1:80 weight 10 backup", "ready web/a", "remove web/b"}, ""},
		{"template slots", func(s string) string { return r(s, "t 1-2", "t 1-3", 1) },
			[]string{"add server web/t3 10.0.1.1:8080 check", "enable health web/t3", "ready web/t3"}, ""},
		{"template address", func(s string) string { return r(s, "10.0.1.1:8080", "10.0.1.2:8080", 1) },
			[]string{"set server web/t1 state maint", "set server web/t1 addr 10.0.1.2 port 8080", "ready web/t1",
				"set server web/t2 state maint", "set server web/t2 addr 10.0.1.2 port 8080", "ready web/t2"}, ""},
		{"global option", func(s string) string { return r(s, "global\n", "global\n    maxconn 10\n", 1) }, nil, "section \"global\""},
		{"new backend", func(s string) string { return s + "backend other\n    server x 10.0.0.1:80\n" }, nil, "sections added"},
		{"frontend", func(s string) string { return r(s, "bind :80", "bind :81", 1) }, nil, "frontend f"},
		{"host name", func(s string) string { return r(s, "10.0.0.1:80", "web1.example:80", 1) }, nil, "not an IP"},
		{"static balance add", func(s string) string {
			return r(r(s, "roundrobin", "static-rr", 1), "    server b", "    server c 10.0.0.3:80\n    server b", 1)
		}, nil, ""},
		{"default-server add", func(s string) string {
			return r(r(s, "defaults\n", "defaults\n    default-server inter 1s\n", 1), "    server b", "    server c 10.0.0.3:80\n    server b", 1)
		}, nil, "section \"defaults\""},
		{"unknown option add", func(s string) string {
			return r(s, "    server b", "    server c 10.0.0.3:80 cookie x\n    server b", 1)
		}, nil, "option \"cookie\""},
		{"option change", func(s string) string { return r(s, "10.0.0.2:80 check", "10.0.0.2:80 check cookie z", 1) }, nil, "option \"cookie\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := plans(t, tt.edit)
			if tt.name == "static balance add" {
				// A changed balance line is itself a structural change.
				if !errors.Is(err, appliers.ErrUnsupported) {
					t.Fatalf("diff: %v, want unsupported", err)
				}
				return
			}
			if tt.err != "" {
				if !errors.Is(err, appliers.ErrUnsupported) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("diff: %v; want unsupported with %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := commands(p); !slices.Equal(got, tt.want) {
				t.Fatalf("commands:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// TestDiffReplace checks when a server whose option set changed is
// replaced at run time, and when it is left to the reload: when no other
// server would take its traffic meanwhile.
func TestDiffReplace(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, old, cur string
		want           []string // the commands; nil for unsupported
	}{
		{"only server in service",
			"    server a 10.0.0.1:80\n    server b 10.0.0.2:80 disabled\n",
			"    server a 10.0.0.1:80 backup\n    server b 10.0.0.2:80 disabled\n", nil},
		{"the other at weight 0",
			"    server a 10.0.0.1:80 check\n    server b 10.0.0.2:80 weight 0\n",
			"    server a 10.0.0.1:80 check inter 1s\n    server b 10.0.0.2:80 weight 0\n", nil},
		{"the other goes in maintenance",
			"    server a 10.0.0.1:80\n    server b 10.0.0.2:80\n",
			"    server a 10.0.0.1:80 backup\n    server b 10.0.0.2:80 disabled\n", nil},
		{"the only server, in maintenance",
			"    server a 10.0.0.1:80 disabled\n",
			"    server a 10.0.0.1:80 disabled backup\n",
			[]string{"remove web/a", "add server web/a 10.0.0.1:80 disabled backup"}},
		{"a backup takes the traffic",
			"    server a 10.0.0.1:80\n    server b 10.0.0.2:80 backup\n",
			"    server a 10.0.0.1:80 check\n    server b 10.0.0.2:80 backup\n",
			[]string{"remove web/a", "add server web/a 10.0.0.1:80 check", "enable health web/a", "ready web/a"}},
		{"an added server takes the traffic",
			"    server a 10.0.0.1:80\n",
			"    server a 10.0.0.1:80 backup\n    server c 10.0.0.3:80\n",
			[]string{"add server web/c 10.0.0.3:80", "ready web/c", "remove web/a", "add server web/a 10.0.0.1:80 backup", "ready web/a"}},
		{"two replaced, one at a time",
			"    server a 10.0.0.1:80\n    server b 10.0.0.2:80\n",
			"    server a 10.0.0.1:80 backup\n    server b 10.0.0.2:80 backup\n",
			[]string{"remove web/a", "add server web/a 10.0.0.1:80 backup", "ready web/a",
				"remove web/b", "add server web/b 10.0.0.2:80 backup", "ready web/b"}},
		{"two replaced, one out of service after",
			"    server a 10.0.0.1:80\n    server b 10.0.0.2:80\n",
			"    server a 10.0.0.1:80 backup disabled\n    server b 10.0.0.2:80 backup\n", nil},
		{"agent check",
			"    server a 10.0.0.1:80 agent-check agent-port 81\n    server b 10.0.0.2:80\n",
			"    server a 10.0.0.1:80 agent-check agent-port 82\n    server b 10.0.0.2:80\n",
			[]string{"disable agent web/a", "remove web/a", "add server web/a 10.0.0.1:80 agent-check agent-port 82",
				"ready web/a", "enable agent web/a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			old, err := parse([]byte("backend web\n" + tt.old))
			if err != nil {
				t.Fatal(err)
			}
			cur, err := parse([]byte("backend web\n" + tt.cur))
			if err != nil {
				t.Fatal(err)
			}
			p, err := diff(old, cur)
			if tt.want == nil {
				if !errors.Is(err, appliers.ErrUnsupported) || !strings.Contains(err.Error(), "the only server in service") {
					t.Fatalf("diff: %v; want unsupported, the only server in service", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, o := range p.ops {
				if o.kind == opRemove && o.agent {
					got = append(got, "disable agent "+o.backend+"/"+o.server)
				}
				got = append(got, commands(&plan{ops: []op{o}})...)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("commands:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// TestPlanBackup checks the backup flag the plan wants HAProxy to report,
// and that it is not compared where the file does not say it for certain.
func TestPlanBackup(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, cfg     string
		backup, known bool
	}{
		{"backup", "backend web\n    server a 10.0.0.1:80 weight 2 backup\n", true, true},
		{"active", "backend web\n    server a 10.0.0.1:80 check inter 1s\n", false, true},
		{"a value", "backend web\n    server a 10.0.0.1:80 cookie backup\n", false, false},
		{"an unknown option before", "backend web\n    server a 10.0.0.1:80 cookie x backup\n", false, false},
		{"a value of a known option", "backend web\n    server a 10.0.0.1:80 agent-send backup agent-check\n", false, true},
		{"default-server", "backend web\n    default-server backup\n    server a 10.0.0.1:80\n", false, false},
		{"default-server in defaults", "defaults\n    default-server inter 1s\nbackend web\n    server a 10.0.0.1:80\n", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := parse([]byte(tt.cfg))
			if err != nil {
				t.Fatal(err)
			}
			p, err := diff(c, c)
			if err != nil {
				t.Fatal(err)
			}
			w := p.state["web"]["a"]
			if w.backup != tt.backup || w.backupKnown != tt.known {
				t.Fatalf("want backup %v known %v; plan has %v known %v", tt.backup, tt.known, w.backup, w.backupKnown)
			}
		})
	}
}

// commands lists what a plan sends: "remove B/S" for a removal (then, for
// a replacement, the add server), "ready
// B/S" for a server put in service once its health check passed (after
// "enable health B/S" when the op enables it).
func commands(p *plan) []string {
	var got []string
	for _, o := range p.ops {
		id := o.backend + "/" + o.server
		if o.kind == opRemove {
			got = append(got, "remove "+id)
			if o.cmd == "" {
				continue
			}
		}
		got = append(got, o.before...)
		if o.cmd != "" {
			got = append(got, o.cmd)
		}
		if o.health {
			got = append(got, "enable health "+id)
		}
		if o.ready {
			got = append(got, "ready "+id)
		}
		got = append(got, o.after...)
	}
	return got
}

func TestDiffStaticBalance(t *testing.T) {
	t.Parallel()
	base := "backend web\n    balance static-rr\n    server a 10.0.0.1:80\n"
	old, _ := parse([]byte(base))
	cur, _ := parse([]byte(base + "    server c 10.0.0.3:80\n"))
	if _, err := diff(old, cur); !errors.Is(err, appliers.ErrUnsupported) || !strings.Contains(err.Error(), "static-rr") {
		t.Fatalf("diff: %v", err)
	}
}

func TestParseServersState(t *testing.T) {
	t.Parallel()
	out := "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n" +
		"2 b 2 s2 127.0.0.1 2 4 1 1 4 1 0 0 8 0 0 0 - 9002 - 0 0 - - 0\n2 b 3 s3 127.0.0.2 0 1 3 3 7 1 0 0 2 0 0 0 - 9004 - 0 0 - - 0\n\n"
	got, err := parseServersState(out)
	if err != nil {
		t.Fatal(err)
	}
	if s := got["b"]["s3"]; s.host != "127.0.0.2" || s.port != 9004 || s.weight != 3 || s.admin&adminMaint == 0 {
		t.Fatalf("s3 = %+v", s)
	}
	if s := got["b"]["s2"]; s.admin&adminMaint != 0 {
		t.Fatalf("s2 = %+v: CMAINT alone is not maintenance", s)
	}
	if _, err := parseServersState("2\n"); err == nil {
		t.Fatal("format 2 accepted")
	}
}

func FuzzParseHAProxy(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.cfg")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, b)
	}
	f.Add([]byte("backend b\nserver-template s 1-3 1.2.3.4:80\n"), []byte("backend b\nserver a \"1.2.3.4:80\" weight 300\n"))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		old, err := parse(a)
		if err != nil {
			return
		}
		// Parsing is deterministic, and a file against itself needs nothing.
		p, err := diff(old, old)
		if err != nil || len(p.ops) != 0 {
			t.Fatalf("diff of a file with itself: %v, %d ops", err, len(p.ops))
		}
		cur, err := parse(b)
		if err != nil {
			return
		}
		p, err = diff(old, cur)
		if err != nil {
			if !errors.Is(err, appliers.ErrUnsupported) {
				t.Fatalf("diff error %v does not wrap ErrUnsupported", err)
			}
			return
		}
		for _, o := range p.ops {
			// Every command sent: the op's, those around it, and remove's.
			id := o.backend + "/" + o.server
			for _, c := range slices.Concat(o.before, []string{o.cmd, "disable agent " + id,
				"set server " + id + " state maint", "del server " + id, "enable health " + id,
				"set server " + id + " state ready", "set server " + id + " state drain", "set server " + id + " health down"}, o.after) {
				if strings.ContainsAny(c, ";\n\r\x00") {
					t.Fatalf("command %q could smuggle another", c)
				}
			}
		}
	})
}

func TestDiffReaddressOnlyServer(t *testing.T) {
	t.Parallel()
	old, _ := parse([]byte("backend web\n    server a 10.0.0.1:80\n    server b 10.0.0.2:80 disabled\n"))
	cur, _ := parse([]byte("backend web\n    server a 10.0.0.9:80\n    server b 10.0.0.2:80 disabled\n"))
	p, err := diff(old, cur)
	if err != nil {
		t.Fatal(err)
	}
	// The only server in service is not taken out of it.
	if len(p.ops) != 1 || len(p.ops[0].before) != 0 || p.ops[0].cmd != "set server web/a addr 10.0.0.9 port 80" {
		t.Fatalf("ops %+v", p.ops)
	}
}

func TestDiffBackFromMaintenance(t *testing.T) {
	t.Parallel()
	old, _ := parse([]byte("backend web\n    server a 10.0.0.1:80 disabled check\n    server b 10.0.0.2:80 disabled\n    server c 10.0.0.3:80\n"))
	cur, _ := parse([]byte("backend web\n    server a 10.0.0.9:80 check\n    server b 10.0.0.2:80\n    server c 10.0.0.3:80\n"))
	p, err := diff(old, cur)
	if err != nil {
		t.Fatal(err)
	}
	// Whether a server has a health check to wait for is HAProxy's to say
	// (a default-server line may give one): each goes through the wait.
	want := []string{"set server web/a addr 10.0.0.9 port 80", "ready web/a", "ready web/b"}
	if got := commands(p); !slices.Equal(got, want) {
		t.Fatalf("commands:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
