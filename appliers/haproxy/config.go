package haproxy

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// maxTemplateSlots bounds the servers one server-template line makes.
const maxTemplateSlots = 10000

// sectionKeywords are the words that open a section of haproxy.cfg.
var sectionKeywords = map[string]bool{
	"global": true, "defaults": true, "frontend": true, "backend": true, "listen": true,
	"userlist": true, "peers": true, "resolvers": true, "mailers": true, "program": true,
	"http-errors": true, "ring": true, "cache": true, "fcgi-app": true, "dynamic-update": true,
	"log-forward": true, "crt-store": true, "traces": true, "acme": true,
}

// config is haproxy.cfg as far as the applier needs it.
type config struct {
	sections []*section
}

// section is one section: its header and its lines, the server lines of a
// backend apart.
type section struct {
	kind, name string
	header     string   // the header's words, joined by one space
	lines      []string // every other line's words, joined by one space, in order
	servers    []*server
	byName     map[string]*server
	line       int // of the header, 1-based; 0 for the lines before any section
}

// server is one server of a backend, from a server line or a slot of a
// server-template line.
type server struct {
	name   string
	addr   string // as written, such as "127.0.0.1:8080"
	host   netip.Addr
	port   int      // 0 when not a plain port
	ipOK   bool     // host is an IP literal and port a plain port
	weight int      // 1 by default
	maint  bool     // disabled
	opts   []string // every word after the address
	rest   []string // opts without weight W, disabled and enabled
	line   int
}

// words splits one line of haproxy.cfg into words, as HAProxy does:
// spaces separate words; '#' outside quotes starts a comment; backslash
// escapes the next character; "..." and '...' quote.
func words(line string) ([]string, error) {
	var out []string
	var b strings.Builder
	inWord := false
	var quote byte
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
				continue
			}
			if c == '\\' && quote == '"' && i+1 < len(line) {
				i++
				c = line[i]
			}
			b.WriteByte(c)
		case c == '\\':
			if i+1 >= len(line) {
				return nil, errors.New("backslash at end of line")
			}
			i++
			b.WriteByte(line[i])
			inWord = true
		case c == '"' || c == '\'':
			quote = c
			inWord = true
		case c == '#':
			i = len(line)
		case c == ' ' || c == '\t' || c == '\r':
			if inWord {
				out = append(out, b.String())
				b.Reset()
				inWord = false
			}
		default:
			b.WriteByte(c)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, errors.New("unterminated quote")
	}
	if inWord {
		out = append(out, b.String())
	}
	return out, nil
}

// parse parses haproxy.cfg. It knows sections and the server and
// server-template lines of backends; every other line is kept as its
// words, to be compared.
func parse(data []byte) (*config, error) {
	c := &config{}
	cur := &section{byName: map[string]*server{}}
	c.sections = append(c.sections, cur)
	for n, line := range strings.Split(string(data), "\n") {
		ws, err := words(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n+1, err)
		}
		if len(ws) == 0 {
			continue
		}
		if sectionKeywords[ws[0]] {
			cur = &section{kind: ws[0], header: strings.Join(ws, " "), byName: map[string]*server{}, line: n + 1}
			if len(ws) > 1 {
				cur.name = ws[1]
			}
			c.sections = append(c.sections, cur)
			continue
		}
		if cur.kind == "backend" && (ws[0] == "server" || ws[0] == "server-template") {
			srvs, err := parseServer(ws, n+1)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", n+1, err)
			}
			for _, s := range srvs {
				if _, dup := cur.byName[s.name]; dup {
					return nil, fmt.Errorf("line %d: backend %s: server %s twice", n+1, cur.name, s.name)
				}
				cur.byName[s.name] = s
				cur.servers = append(cur.servers, s)
			}
			continue
		}
		cur.lines = append(cur.lines, strings.Join(ws, " "))
	}
	return c, nil
}

// parseServer parses the words of a server or server-template line.
func parseServer(ws []string, line int) ([]*server, error) {
	if ws[0] == "server" {
		if len(ws) < 3 {
			return nil, errors.New("server: want a name and an address")
		}
		return []*server{newServer(ws[1], ws[2], ws[3:], line)}, nil
	}
	// server-template <prefix> <num | range> <fqdn>[:<port>] [params*]
	if len(ws) < 4 {
		return nil, errors.New("server-template: want a prefix, a number and an address")
	}
	lo, hi := 1, 0
	if a, b, ok := strings.Cut(ws[2], "-"); ok {
		var err1, err2 error
		lo, err1 = strconv.Atoi(a)
		hi, err2 = strconv.Atoi(b)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("server-template: bad range %q", ws[2])
		}
	} else {
		var err error
		if hi, err = strconv.Atoi(ws[2]); err != nil {
			return nil, fmt.Errorf("server-template: bad number %q", ws[2])
		}
	}
	if lo < 0 || hi < lo || hi-lo >= maxTemplateSlots {
		return nil, fmt.Errorf("server-template: bad range %q", ws[2])
	}
	out := make([]*server, 0, hi-lo+1)
	for i := lo; i <= hi; i++ {
		out = append(out, newServer(ws[1]+strconv.Itoa(i), ws[3], ws[4:], line))
	}
	return out, nil
}

// newServer makes a server from its name, address and options.
func newServer(name, addr string, opts []string, line int) *server {
	s := &server{name: name, addr: addr, weight: 1, opts: opts, line: line}
	s.host, s.port, s.ipOK = splitAddr(addr)
	for i := 0; i < len(opts); i++ {
		switch opts[i] {
		case "weight":
			if i+1 < len(opts) {
				if w, err := strconv.Atoi(opts[i+1]); err == nil && w >= 0 && w <= 256 {
					s.weight = w
					i++
					continue
				}
			}
			s.rest = append(s.rest, opts[i])
		case "disabled":
			s.maint = true
		case "enabled":
			s.maint = false
		default:
			s.rest = append(s.rest, opts[i])
		}
	}
	return s
}

// isBackup reports whether s is a backup server, and whether its line
// says so for certain: known is false when s has an option of which the
// applier does not know how many words follow (one that [addArgs] lacks),
// so that "backup" may be that option's value.
func (s *server) isBackup() (backup, known bool) {
	if !slices.Contains(s.opts, "backup") {
		return false, true
	}
	for i := 0; i < len(s.opts); i++ {
		n, ok := addArgs[s.opts[i]]
		if !ok {
			return false, false
		}
		if s.opts[i] == "backup" {
			backup = true
		}
		i += n
	}
	return backup, true
}

// splitAddr splits a server address into an IP and a plain port, such as
// "127.0.0.1:80", "ipv4@10.0.0.1:80" or "ipv6@::1:80". ok is false for
// anything else (a host name, no port, a port range or offset).
func splitAddr(a string) (netip.Addr, int, bool) {
	for _, p := range []string{"ipv4@", "ipv6@"} {
		a = strings.TrimPrefix(a, p)
	}
	i := strings.LastIndexByte(a, ':')
	if i < 0 {
		return netip.Addr{}, 0, false
	}
	host := strings.TrimSuffix(strings.TrimPrefix(a[:i], "["), "]")
	ip, err := netip.ParseAddr(host)
	if err != nil || ip.Zone() != "" {
		return netip.Addr{}, 0, false
	}
	port, err := strconv.Atoi(a[i+1:])
	if err != nil || port < 1 || port > 65535 || a[i+1] == '+' {
		return netip.Addr{}, 0, false
	}
	return ip, port, true
}
