package consul

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/kvconf/kvconf/internal/redact"
)

// defaultPort is Consul's HTTP port, given to nodes written without one.
const defaultPort = "8500"

// address is one Consul HTTP API endpoint.
type address struct {
	scheme string // http or https
	host   string // host:port
}

func (a address) String() string { return a.scheme + "://" + a.host }

// schemeFor returns the scheme of nodes written without one and of nodes
// found by DNS SRV: the scheme option, or else https when a TLS option is
// set, or else http.
func (c *Config) schemeFor() string {
	switch {
	case c.Scheme != "":
		return c.Scheme
	case c.UsesTLS():
		return "https"
	default:
		return "http"
	}
}

// parseNode returns the address of a node written as host, host:port,
// http://host:port or https://host:port, or an error naming it. A node
// without a scheme gets scheme; one without a port gets 8500. from names
// where the node came from, for errors.
func parseNode(n, scheme, from string) (address, error) {
	in := n
	n = strings.TrimSpace(n)
	if n == "" {
		return address{}, fmt.Errorf("consul: empty node (%s)", from)
	}
	host := n
	if strings.Contains(n, "://") {
		u, err := url.Parse(n)
		if err != nil {
			return address{}, fmt.Errorf("consul: node %q (%s): %w", redact.URL(in), from, redact.Error(err, redact.Secrets(in)...))
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			return address{}, fmt.Errorf("consul: node %q (%s): scheme %q is not http or https", redact.URL(in), from, u.Scheme)
		}
		if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			// The user part is not echoed: it may hold a password.
			return address{}, fmt.Errorf("consul: node with scheme %s (%s): want scheme://host:port only", u.Scheme, from)
		}
		scheme, host = u.Scheme, u.Host
	}
	h, port, err := net.SplitHostPort(host)
	if err != nil {
		h, port = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"), defaultPort
		if (strings.Contains(h, ":") && net.ParseIP(h) == nil) || strings.ContainsAny(h, "[]/@ ") {
			return address{}, fmt.Errorf("consul: node %q (%s): bad host", redact.URL(in), from)
		}
	}
	if h == "" {
		return address{}, fmt.Errorf("consul: node %q (%s): no host", redact.URL(in), from)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return address{}, fmt.Errorf("consul: node %q (%s): bad port %q", redact.URL(in), from, port)
	}
	return address{scheme: scheme, host: net.JoinHostPort(h, port)}, nil
}

// nodes returns the addresses of the nodes option, or else of
// CONSUL_HTTP_ADDR (env, the value of that variable), or else of
// [DefaultNode].
func (c *Config) nodes(env string) ([]address, error) {
	nodes, from := c.Nodes, "option nodes"
	if len(nodes) == 0 && env != "" {
		nodes, from = []string{env}, "CONSUL_HTTP_ADDR"
	}
	if len(nodes) == 0 {
		nodes, from = []string{DefaultNode}, "default node"
	}
	out := make([]address, 0, len(nodes))
	for _, n := range nodes {
		a, err := parseNode(n, c.schemeFor(), from)
		if err != nil {
			return nil, err
		}
		if a.scheme == "http" && c.UsesTLS() {
			return nil, fmt.Errorf("consul: TLS options set (client_cert, client_key, client_cakeys or client_insecure) but node %s uses http", a)
		}
		out = append(out, a)
	}
	return out, nil
}

// lookupSRV is the signature of [net.Resolver.LookupSRV].
type lookupSRV func(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)

// srvName returns the SRV record to look up: the srv_record option, or
// else confd's _consul._tcp.D for the srv_domain option D.
func (c *Config) srvName() string {
	if c.SRVRecord != "" {
		return c.SRVRecord
	}
	return "_consul._tcp." + c.SRVDomain
}

// discover looks up the SRV record of cfg and returns its nodes, in the
// order of the record's priorities and weights, with cfg's scheme.
func (c *Config) discover(ctx context.Context, lookup lookupSRV) ([]address, error) {
	name := c.srvName()
	_, srvs, err := lookup(ctx, "", "", name)
	if err != nil {
		return nil, fmt.Errorf("consul: srv %s: %w", name, err)
	}
	var out []address
	for _, s := range srvs {
		host := strings.TrimSuffix(s.Target, ".")
		if host == "" {
			continue // "." means no service here
		}
		out = append(out, address{scheme: c.schemeFor(), host: net.JoinHostPort(host, strconv.Itoa(int(s.Port)))})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("consul: srv %s: no node", name)
	}
	return out, nil
}
