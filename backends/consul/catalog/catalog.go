// Package catalog defines how Consul's service catalog travels through the
// store: the keys under which the consul backend publishes services,
// service listings and nodes, the JSON form of their values, and the
// parsing of the arguments of the template functions that read them
// (service, services, nodes, in package funcs).
//
// It is shared by the backend, which serves the keys, and by the function
// set, which reads them, and it depends on neither.
//
// # Keys
//
// Catalog keys start with [Namespace], "consul:", which no key/value key
// does (those start with "/"), so they never show in get, gets, ls and the
// other key/value functions. Each key ends with "/" and escapes "/" in
// its parts, so that no key is a string prefix of another one's key
// unless it is meant to cover it:
//
//	consul:service/DC/NAME/  the instances of service NAME (every status)
//	consul:service/DC/       every service of DC: the keys above, plus this
//	                         key itself, whose value lists the names
//	consul:services/DC/      the services of DC with their tags
//	consul:nodes/DC/         the nodes of DC
//
// DC is empty for the datacenter the backend reads by default.
package catalog

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// Namespace starts every catalog key.
const Namespace = "consul:"

// Kind is what a catalog key or prefix holds.
type Kind int

// Kinds of catalog queries.
const (
	// KindService is one service's instances.
	KindService Kind = iota + 1
	// KindAllServices is every service's instances in a datacenter.
	KindAllServices
	// KindServices is the list of services and their tags.
	KindServices
	// KindNodes is the list of nodes.
	KindNodes
)

// Query is what a catalog prefix asks the backend for.
type Query struct {
	Kind Kind
	// Datacenter is empty for the backend's default datacenter.
	Datacenter string
	// Name is the service's name, for KindService.
	Name string
}

// Prefix returns the store prefix of q, which is also the key of its
// value (for KindAllServices, the key of the list of names).
func (q Query) Prefix() string {
	dc := url.PathEscape(q.Datacenter)
	switch q.Kind {
	case KindService:
		return Namespace + "service/" + dc + "/" + url.PathEscape(q.Name) + "/"
	case KindAllServices:
		return Namespace + "service/" + dc + "/"
	case KindServices:
		return Namespace + "services/" + dc + "/"
	case KindNodes:
		return Namespace + "nodes/" + dc + "/"
	}
	return ""
}

// String describes q for error messages, in the syntax of the template
// functions: service "web@dc1", services, nodes "@dc1".
func (q Query) String() string {
	at := ""
	if q.Datacenter != "" {
		at = "@" + q.Datacenter
	}
	switch q.Kind {
	case KindService:
		return fmt.Sprintf("service %q", q.Name+at)
	case KindAllServices:
		return fmt.Sprintf("every service%s", strings.Replace(at, "@", " in ", 1))
	case KindServices:
		return "services" + quoteIf(at)
	case KindNodes:
		return "nodes" + quoteIf(at)
	}
	return "unknown catalog query"
}

func quoteIf(s string) string {
	if s == "" {
		return ""
	}
	return fmt.Sprintf(" %q", s)
}

// IsKey reports whether k is a catalog key or prefix.
func IsKey(k string) bool { return strings.HasPrefix(k, Namespace) }

// ParsePrefix returns the query of a catalog prefix made by
// [Query.Prefix], or false for anything else.
func ParsePrefix(p string) (Query, bool) {
	rest, ok := strings.CutPrefix(p, Namespace)
	if !ok || !strings.HasSuffix(rest, "/") {
		return Query{}, false
	}
	parts := strings.Split(strings.TrimSuffix(rest, "/"), "/")
	unescape := func(s string) (string, bool) {
		u, err := url.PathUnescape(s)
		return u, err == nil
	}
	var q Query
	switch {
	case parts[0] == "service" && len(parts) == 2:
		q.Kind = KindAllServices
	case parts[0] == "service" && len(parts) == 3:
		q.Kind = KindService
		if q.Name, ok = unescape(parts[2]); !ok || q.Name == "" {
			return Query{}, false
		}
	case parts[0] == "services" && len(parts) == 2:
		q.Kind = KindServices
	case parts[0] == "nodes" && len(parts) == 2:
		q.Kind = KindNodes
	default:
		return Query{}, false
	}
	if q.Datacenter, ok = unescape(parts[1]); !ok {
		return Query{}, false
	}
	return q, true
}

// ErrSyntax is wrapped by the errors of [ParseService] and [ParseDatacenter].
var ErrSyntax = errors.New("catalog: bad argument")

// ServiceArg is the parsed argument of the service function.
type ServiceArg struct {
	// Tag, when not empty, keeps only the instances with this tag.
	Tag string
	// Name is the service's name.
	Name string
	// Datacenter is empty for the backend's default datacenter.
	Datacenter string
}

// ParseService parses the argument of the service function, as
// consul-template writes it: "[tag.]name[@datacenter]". The tag is
// everything before the last dot of the part before "@", so a tag may hold
// dots and a name may not.
func ParseService(s string) (ServiceArg, error) {
	var a ServiceArg
	rest, dc, hasDC := strings.Cut(s, "@")
	if hasDC {
		if dc == "" || strings.ContainsAny(dc, "@/") {
			return a, fmt.Errorf("%w: %q: datacenter after @ is empty or malformed", ErrSyntax, s)
		}
		a.Datacenter = dc
	}
	if i := strings.LastIndexByte(rest, '.'); i >= 0 {
		a.Tag, rest = rest[:i], rest[i+1:]
		if a.Tag == "" {
			return a, fmt.Errorf("%w: %q: empty tag before the dot", ErrSyntax, s)
		}
	}
	if rest == "" {
		return a, fmt.Errorf("%w: %q: no service name (want [tag.]name[@datacenter])", ErrSyntax, s)
	}
	a.Name = rest
	return a, nil
}

// ParseDatacenter parses the optional argument of services and nodes,
// "@datacenter"; no argument means the default datacenter.
func ParseDatacenter(args []string) (string, error) {
	switch {
	case len(args) == 0:
		return "", nil
	case len(args) > 1:
		return "", fmt.Errorf("%w: want at most one argument, \"@datacenter\", got %d", ErrSyntax, len(args))
	}
	dc, ok := strings.CutPrefix(args[0], "@")
	if !ok || dc == "" || strings.ContainsAny(dc, "@/") {
		return "", fmt.Errorf("%w: %q: want \"@datacenter\"", ErrSyntax, args[0])
	}
	return dc, nil
}

// Health statuses of an instance, Consul's names.
const (
	StatusPassing     = "passing"
	StatusWarning     = "warning"
	StatusCritical    = "critical"
	StatusMaintenance = "maintenance"
)

// Tags is a list of tags, with a method for templates.
type Tags []string

// Contains reports whether t holds tag.
func (t Tags) Contains(tag string) bool { return slices.Contains(t, tag) }

// Instance is one instance of a service, as the service function returns
// it.
type Instance struct {
	// Name is the service's name.
	Name string
	// ID is the instance's service ID.
	ID string
	// Node is the name of the node it runs on.
	Node string
	// NodeAddress is the node's address.
	NodeAddress string
	// Address is the service's address, or the node's when the service
	// has none.
	Address string
	// Port is the service's port.
	Port int
	// Tags are the instance's tags, in registration order.
	Tags Tags
	// Meta is the instance's service metadata.
	Meta map[string]string
	// NodeMeta is the node's metadata.
	NodeMeta map[string]string
	// Datacenter is the node's datacenter.
	Datacenter string
	// Status is the worst status of the instance's and its node's checks
	// (passing without checks), or maintenance.
	Status string
}

// ServiceMeta returns Meta, under consul-template's name for it.
func (in Instance) ServiceMeta() map[string]string { return in.Meta }

// NodeDatacenter returns Datacenter, under consul-template's name for it.
func (in Instance) NodeDatacenter() string { return in.Datacenter }

// SortInstances sorts instances by node, then ID, so that output does not
// flap with the order Consul answers in.
func SortInstances(is []Instance) {
	slices.SortStableFunc(is, func(a, b Instance) int {
		if c := strings.Compare(a.Node, b.Node); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}

// Service is one service of the catalog, as the services function returns
// it.
type Service struct {
	// Name is the service's name.
	Name string
	// Tags are the tags of all its instances, sorted, without duplicates.
	Tags Tags
}

// Node is one node of the catalog, as the nodes function returns it.
type Node struct {
	// Node is the node's name.
	Node string
	// ID is the node's ID.
	ID string
	// Address is the node's address.
	Address string
	// Datacenter is the node's datacenter.
	Datacenter string
	// TaggedAddresses are the node's other addresses, such as "lan" and
	// "wan".
	TaggedAddresses map[string]string
	// Meta is the node's metadata.
	Meta map[string]string
}
