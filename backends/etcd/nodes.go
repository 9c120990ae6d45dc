package etcd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/kvconf/kvconf/internal/redact"
)

// defaultPort is etcd's client port, given to nodes written without one.
const defaultPort = "2379"

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

// node returns the endpoint URL of a node written as host, host:port,
// http://host:port or https://host:port, or an error naming it. A node
// without a scheme gets scheme; one without a port gets 2379.
func node(n, scheme string) (string, error) {
	in := n
	n = strings.TrimSpace(n)
	if n == "" {
		return "", errors.New("etcd: empty node (option nodes)")
	}
	host := n
	if strings.Contains(n, "://") {
		u, err := url.Parse(n)
		if err != nil {
			return "", fmt.Errorf("etcd: node %q: %w", redact.URL(in), redact.Error(err, redact.Secrets(in)...))
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			return "", fmt.Errorf("etcd: node %q: scheme %q is not http or https", redact.URL(in), u.Scheme)
		}
		if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return "", fmt.Errorf("etcd: node %q: want scheme://host:port only", redact.URL(in))
		}
		scheme, host = u.Scheme, u.Host
	}
	h, port, err := net.SplitHostPort(host)
	if err != nil {
		// host alone: a name, an IPv4 address or an IPv6 one, bracketed
		// or not.
		h, port = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"), defaultPort
		if (strings.Contains(h, ":") && net.ParseIP(h) == nil) || strings.ContainsAny(h, "[]/ ") {
			return "", fmt.Errorf("etcd: node %q: bad host", redact.URL(in))
		}
	}
	if h == "" {
		return "", fmt.Errorf("etcd: node %q: no host", redact.URL(in))
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return "", fmt.Errorf("etcd: node %q: bad port %q", redact.URL(in), port)
	}
	return scheme + "://" + net.JoinHostPort(h, port), nil
}

// lookupSRV is the signature of [net.Resolver.LookupSRV].
type lookupSRV func(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)

// srvNames returns the SRV records to look up for cfg, in order: the
// srv_record option, or else, for srv_domain D, etcd's own names (those of
// etcd --discovery-srv and etcdctl --discovery-srv) and then confd's:
// _etcd-client-ssl._tcp.D (with scheme https only), _etcd-client._tcp.D and
// _etcd._tcp.D.
func (c *Config) srvNames() []string {
	if c.SRVRecord != "" {
		return []string{c.SRVRecord}
	}
	if c.SRVDomain == "" {
		return nil
	}
	d := c.SRVDomain
	var names []string
	if c.schemeFor() == "https" {
		names = append(names, "_etcd-client-ssl._tcp."+d)
	}
	return append(names, "_etcd-client._tcp."+d, "_etcd._tcp."+d)
}

// discover looks up the SRV records of cfg in order and returns the nodes
// of the first that has any, with cfg's scheme.
func (c *Config) discover(ctx context.Context, lookup lookupSRV) ([]string, error) {
	var errs []error
	scheme := c.schemeFor()
	for _, name := range c.srvNames() {
		_, srvs, err := lookup(ctx, "", "", name)
		if err != nil {
			errs = append(errs, fmt.Errorf("etcd: srv %s: %w", name, err))
			continue
		}
		var nodes []string
		for _, s := range srvs {
			host := strings.TrimSuffix(s.Target, ".")
			if host == "" {
				continue // "." means no service here
			}
			nodes = append(nodes, scheme+"://"+net.JoinHostPort(host, strconv.Itoa(int(s.Port))))
		}
		if len(nodes) > 0 {
			return nodes, nil
		}
		errs = append(errs, fmt.Errorf("etcd: srv %s: no node", name))
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("etcd: srv: %w", err)
	}
	return nil, errors.Join(errs...)
}

// endpoints returns the endpoint URLs of cfg: its nodes, the nodes found
// by DNS SRV, or the default node.
func (c *Config) endpoints(ctx context.Context, lookup lookupSRV) ([]string, error) {
	if c.SRVRecord != "" || c.SRVDomain != "" {
		return c.discover(ctx, lookup)
	}
	return c.nodes()
}

// nodes returns the endpoint URLs of the nodes option, or of the default
// node.
func (c *Config) nodes() ([]string, error) {
	nodes := c.Nodes
	if len(nodes) == 0 {
		nodes = []string{DefaultNode}
	}
	eps := make([]string, 0, len(nodes))
	for _, n := range nodes {
		ep, err := node(n, c.schemeFor())
		if err != nil {
			return nil, err
		}
		eps = append(eps, ep)
	}
	return eps, nil
}

// checkSchemes reports endpoints that mix http and https (the etcd client
// takes the credentials of the first endpoint for all of them), or that
// use http while a TLS option is set.
func (c *Config) checkSchemes(eps []string) error {
	for _, ep := range eps {
		scheme, _, _ := strings.Cut(ep, "://")
		first, _, _ := strings.Cut(eps[0], "://")
		if scheme != first {
			return fmt.Errorf("etcd: nodes mix %s and %s (option nodes)", first, scheme)
		}
	}
	if len(eps) > 0 && strings.HasPrefix(eps[0], "http://") && c.UsesTLS() {
		return errors.New("etcd: TLS options set (client_cert, client_key, client_cakeys or client_insecure) but the nodes use http")
	}
	return nil
}
