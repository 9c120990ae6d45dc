package haproxy

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/kvconf/kvconf/appliers"
)

// addArgs are the server options "add server" takes in HAProxy 2.6, with
// how many words follow each.
var addArgs = map[string]int{
	"agent-addr": 1, "agent-check": 0, "agent-inter": 1, "agent-port": 1, "agent-send": 1,
	"allow-0rtt": 0, "alpn": 1, "addr": 1, "backup": 0, "ca-file": 1, "check": 0,
	"check-alpn": 1, "check-proto": 1, "check-send-proxy": 0, "check-sni": 1, "check-ssl": 0,
	"check-via-socks4": 0, "ciphers": 1, "ciphersuites": 1, "crl-file": 1, "crt": 1,
	"disabled": 0, "downinter": 1, "enabled": 0, "error-limit": 1, "fall": 1, "fastinter": 1,
	"id": 1, "inter": 1, "maxconn": 1, "maxqueue": 1, "minconn": 1, "no-ssl-reuse": 0,
	"no-tls-tickets": 0, "npn": 1, "observe": 1, "on-error": 1, "on-marked-down": 1,
	"on-marked-up": 1, "pool-low-conn": 1, "pool-max-conn": 1, "pool-purge-delay": 1,
	"port": 1, "proto": 1, "proxy-v2-options": 1, "rise": 1, "send-proxy": 0,
	"send-proxy-v2": 0, "send-proxy-v2-ssl": 0, "send-proxy-v2-ssl-cn": 0, "slowstart": 1,
	"sni": 1, "source": 1, "ssl": 0, "ssl-max-ver": 1, "ssl-min-ver": 1, "tfo": 0,
	"tls-tickets": 0, "track": 1, "usesrc": 1, "verify": 1, "verifyhost": 1, "weight": 1, "ws": 1,
	"force-sslv3": 0, "force-tlsv10": 0, "force-tlsv11": 0, "force-tlsv12": 0, "force-tlsv13": 0,
	"no-sslv3": 0, "no-tlsv10": 0, "no-tlsv11": 0, "no-tlsv12": 0, "no-tlsv13": 0,
}

// dynamicBalance are the balance algorithms of backends that take
// dynamic servers.
var dynamicBalance = map[string]bool{"roundrobin": true, "leastconn": true, "first": true, "random": true}

// opKind is what one step of a plan does.
type opKind int

const (
	opAdd opKind = iota
	opAddr
	opWeight
	opState
	opRemove
)

// op is one step of a plan: a Runtime API command, or for opRemove the
// sequence that removes a server. An opRemove with a cmd is a
// replacement: the server, its option set changed, is removed and cmd
// ("add server") adds it again, to be put in service like an added one.
type op struct {
	kind    opKind
	backend string
	server  string
	before  []string // commands to send before cmd
	cmd     string   // the command; "" for none (opRemove: the add server of a replacement)
	// ready: after cmd, the server, in maintenance, goes in service once
	// its health check passed, if it has one (see [Applier.arm]); after
	// runs then.
	ready  bool
	health bool     // with ready: "enable health" first (a server added with check)
	after  []string // commands to send after cmd, or with ready once in service
	agent  bool     // opRemove: the server has an agent check to disable first
	// cover: a replacement of a server that takes traffic, which may
	// start only while another server of the backend is up (see
	// [Applier.cover]).
	cover bool
}

// adds reports whether o's cmd is an "add server": an added server, or a
// replaced one.
func (o op) adds() bool {
	return o.kind == opAdd || o.kind == opRemove && o.cmd != ""
}

// want is what HAProxy should report of a server once the plan ran.
type want struct {
	host   string
	port   int
	weight int
	maint  bool
	// backup is whether the server is a backup server, compared when
	// backupKnown: when the file says so for certain (see
	// [server.isBackup]) and no default-server line applies.
	backup, backupKnown bool
}

// plan is the Runtime API work that turns the old configuration into the
// new one, and the servers HAProxy should then have, by backend.
type plan struct {
	ops   []op
	state map[string]map[string]want
}

// unsupported is the error for a change the applier does not apply.
func unsupported(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{appliers.ErrUnsupported}, args...)...)
}

// diff compares old and cur and returns the plan that applies the
// difference, or an error wrapping [appliers.ErrUnsupported] when it
// takes more than server changes.
func diff(old, cur *config) (*plan, error) {
	if len(old.sections) != len(cur.sections) {
		return nil, unsupported("sections added or removed")
	}
	p := &plan{state: map[string]map[string]want{}}
	var adds, sets, replaces, removes []op
	var defaults *section // the last defaults section before the backend
	for i, cs := range cur.sections {
		os := old.sections[i]
		if os.header != cs.header {
			return nil, unsupported("section %q became %q (line %d)", os.header, cs.header, cs.line)
		}
		if !slices.Equal(os.lines, cs.lines) {
			return nil, unsupported("a line of section %q changed (line %d)", cs.header, cs.line)
		}
		if cs.kind == "defaults" {
			defaults = cs
		}
		if cs.kind != "backend" {
			continue
		}
		if slices.Equal(serverKeys(os), serverKeys(cs)) {
			p.record(cs, defaults)
			continue
		}
		b := cs.name
		if !safeWord(b) {
			return nil, unsupported("backend %q: a name the Runtime API cannot take", b)
		}
		for _, s := range slices.Concat(cs.servers, os.servers) {
			if !safeWord(s.name) || strings.Contains(s.name, "/") {
				return nil, unsupported("backend %s: server %q: a name the Runtime API cannot take", b, s.name)
			}
		}
		canAdd := addable(cs, defaults)
		for _, s := range cs.servers {
			o, ok := os.byName[s.name]
			if ok && !slices.Equal(o.rest, s.rest) {
				// An option set (backup, check, ...) cannot be changed in
				// place: the server is removed, as a removed server is,
				// and added again with its new options.
				if canAdd != nil {
					return nil, unsupported("backend %s: server %s: options changed, and %v", b, s.name, canAdd)
				}
				if serves(o) && !covered(os, cs, s.name) {
					return nil, unsupported("backend %s: server %s: options changed, and it is the only server in service: none would take its traffic while it is replaced", b, s.name)
				}
				r, err := replaceOp(b, o, s)
				if err != nil {
					return nil, err
				}
				r.cover = serves(o)
				replaces = append(replaces, r)
				continue
			}
			if !ok {
				if canAdd != nil {
					return nil, unsupported("backend %s: server %s added, but %v", b, s.name, canAdd)
				}
				a, err := addOp(b, s)
				if err != nil {
					return nil, err
				}
				adds = append(adds, a)
				continue
			}
			if o.addr != s.addr && !s.ipOK {
				return nil, unsupported("backend %s: server %s: address %q is not an IP and a port", b, s.name, s.addr)
			}
			if o.addr != s.addr {
				a := op{kind: opAddr, backend: b, server: s.name,
					cmd: fmt.Sprintf("set server %s/%s addr %s port %d", b, s.name, s.host, s.port)}
				if !o.maint && othersInService(cs, s.name) {
					// A connection that a client's session keeps to the
					// server would go on to the old address: a pass
					// through maintenance lets them go. The server comes
					// back once its health check passed at the new
					// address; the only server in service stays in
					// service, for want of another.
					a.before = []string{fmt.Sprintf("set server %s/%s state maint", b, s.name)}
					a.ready = !s.maint
				}
				sets = append(sets, a)
			}
			if o.weight != s.weight {
				sets = append(sets, op{kind: opWeight, backend: b, server: s.name,
					cmd: fmt.Sprintf("set server %s/%s weight %d", b, s.name, s.weight)})
			}
			switch {
			case s.maint && !o.maint:
				sets = append(sets, op{kind: opState, backend: b, server: s.name,
					cmd: fmt.Sprintf("set server %s/%s state maint", b, s.name)})
			case !s.maint && o.maint:
				sets = append(sets, op{kind: opState, backend: b, server: s.name, ready: true})
			}
		}
		for _, o := range os.servers {
			if _, ok := cs.byName[o.name]; !ok {
				removes = append(removes, removeOp(b, o))
			}
		}
		p.record(cs, defaults)
	}
	// New servers first, so that the backend never has fewer than it will;
	// then the replacements, while the removed servers still serve.
	p.ops = slices.Concat(adds, sets, replaces, removes)
	return p, nil
}

// serves reports whether s takes traffic when it is up: it is not
// disabled and its weight is not 0.
func serves(s *server) bool {
	return !s.maint && s.weight > 0
}

// covered reports whether backend cur (old before the change) has a
// server other than name that serves while name is replaced: one that
// serves in cur and, if it is replaced too, in old as well (replacements
// go one at a time, each back in service before the next starts). A
// backup server counts: HAProxy sends it the traffic when no other
// server is up.
func covered(old, cur *section, name string) bool {
	for _, s := range cur.servers {
		if s.name == name || !serves(s) {
			continue
		}
		if o, ok := old.byName[s.name]; ok && !slices.Equal(o.rest, s.rest) && !serves(o) {
			continue
		}
		return true
	}
	return false
}

// othersInService reports whether backend s has, in the new
// configuration, a server other than name in service.
func othersInService(s *section, name string) bool {
	for _, srv := range s.servers {
		b, known := srv.isBackup()
		if !known {
			b = slices.Contains(srv.rest, "backup") // to be safe
		}
		if srv.name != name && serves(srv) && !b {
			return true
		}
	}
	return false
}

// serverKeys returns what matters of each server of s, in order.
func serverKeys(s *section) []string {
	out := make([]string, len(s.servers))
	for i, srv := range s.servers {
		out[i] = srv.name + " " + srv.addr + " " + strings.Join(srv.opts, " ")
	}
	return out
}

// record notes the servers of backend s (defaults the defaults section
// that applies to it, or nil) as HAProxy should have them.
func (p *plan) record(s, defaults *section) {
	m := map[string]want{}
	// A default-server line may make servers backup (or not).
	inherit := hasDefaultServer(s) || defaults != nil && hasDefaultServer(defaults)
	for _, srv := range s.servers {
		w := want{port: srv.port, weight: srv.weight, maint: srv.maint}
		w.backup, w.backupKnown = srv.isBackup()
		w.backupKnown = w.backupKnown && !inherit
		if srv.ipOK {
			w.host = srv.host.String()
		} else {
			w.host = "" // not compared
		}
		m[srv.name] = w
	}
	p.state[s.name] = m
}

// hasDefaultServer reports whether section s has a default-server line.
func hasDefaultServer(s *section) bool {
	for _, l := range s.lines {
		if l == "default-server" || strings.HasPrefix(l, "default-server ") {
			return true
		}
	}
	return false
}

// addable returns nil when servers can be added to backend b at run
// time, else why not.
func addable(b, defaults *section) error {
	algo := "roundrobin"
	for _, s := range []*section{defaults, b} {
		if s == nil {
			continue
		}
		for _, l := range s.lines {
			// A line is its words joined by one space (see [section]);
			// a word may hold other white space, such as a form feed.
			keyword, rest, _ := strings.Cut(l, " ")
			switch keyword {
			case "balance":
				if rest != "" {
					algo, _, _ = strings.Cut(rest, " ")
				}
			case "default-server":
				return fmt.Errorf("a default-server line does not apply to added servers")
			}
		}
	}
	if !dynamicBalance[algo] {
		return fmt.Errorf("balance %s does not take added servers", algo)
	}
	return nil
}

// addOp returns the op that adds s to backend b.
func addOp(b string, s *server) (op, error) {
	if !s.ipOK {
		return op{}, unsupported("backend %s: server %s: address %q is not an IP and a port", b, s.name, s.addr)
	}
	a := op{kind: opAdd, backend: b, server: s.name}
	parts := []string{"add server", b + "/" + s.name, netipPort(s)}
	for i := 0; i < len(s.opts); i++ {
		n, ok := addArgs[s.opts[i]]
		if !ok {
			return op{}, unsupported("backend %s: server %s: option %q cannot be set on an added server", b, s.name, s.opts[i])
		}
		if i+n > len(s.opts)-1 {
			return op{}, unsupported("backend %s: server %s: option %q lacks its value", b, s.name, s.opts[i])
		}
		for j := i; j <= i+n; j++ {
			if !safeWord(s.opts[j]) {
				return op{}, unsupported("backend %s: server %s: option %q has a word the Runtime API cannot take", b, s.name, s.opts[i])
			}
		}
		switch s.opts[i] {
		case "check":
			a.health = true
		case "agent-check":
			a.after = append(a.after, "enable agent "+b+"/"+s.name)
		}
		parts = append(parts, s.opts[i:i+n+1]...)
		i += n
	}
	a.cmd = strings.Join(parts, " ")
	switch {
	case !s.maint:
		// A dynamic server starts in maintenance; it goes in service once
		// its health check passed, and its agent is enabled then.
		a.ready = true
	case a.health:
		// A disabled server's check runs all the same, as it would have
		// after a reload.
		a.after = append([]string{"enable health " + b + "/" + s.name}, a.after...)
		a.health = false
	}
	return a, nil
}

// netipPort formats s's address for the Runtime API.
func netipPort(s *server) string {
	if s.host.Is6() {
		return "ipv6@" + s.host.String() + ":" + strconv.Itoa(s.port)
	}
	return s.host.String() + ":" + strconv.Itoa(s.port)
}

// removeOp returns the op that removes server o from backend b.
func removeOp(b string, o *server) op {
	return op{kind: opRemove, backend: b, server: o.name, agent: slices.Contains(o.opts, "agent-check")}
}

// replaceOp returns the op that replaces server o of backend b by s, the
// same name with other options: o's removal, then s's add.
func replaceOp(b string, o, s *server) (op, error) {
	a, err := addOp(b, s)
	if err != nil {
		return op{}, err
	}
	r := removeOp(b, o)
	r.cmd, r.health, r.ready, r.after = a.cmd, a.health, a.ready, a.after
	return r, nil
}

// safeWord reports whether w can be sent as one word of a Runtime API
// command: no spaces, no ';' (which separates commands), no control
// characters, no quotes or backslashes.
func safeWord(w string) bool {
	if w == "" {
		return false
	}
	for _, c := range w {
		if c <= ' ' || c == ';' || c == '"' || c == '\'' || c == '\\' || c == '#' || c == 0x7f {
			return false
		}
	}
	return true
}
