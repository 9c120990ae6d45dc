// Package consulfuncs is the "consul" function set: consul-template's
// service, services and nodes, which read Consul's service catalog as the
// consul backend serves it through the store (see package
// backends/consul/catalog). It lives beside the backend whose data it
// reads, and registers itself with package funcs from its init function,
// as the backends register themselves; backends/all imports it, and
// [funcs.DefaultSets] puts it after sprig and confd when it is linked in.
//
// Its functions read keys outside a resource's own keys, so the set
// declares, with [funcs.RegisterPrefixes], which catalog keys each call
// reads: the resource fetches and watches them too.
package consulfuncs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	texttemplate "text/template"

	"github.com/kvconf/kvconf/backends/consul/catalog"
	"github.com/kvconf/kvconf/funcs"
)

func init() {
	funcs.Register("consul", "Consul's service catalog (service, services, nodes), served and watched by the consul backend", consulFuncs)
	funcs.RegisterPrefixes("consul", consulPrefixes)
}

// ErrNotWatched is wrapped by the errors of the consul set's functions when
// the store holds no catalog data for what they ask: the resource does not
// read a consul backend, or the call names its service or datacenter in a
// way the template's parse could not see (see [consulPrefixes]).
var ErrNotWatched = errors.New("no catalog data for it: the consul functions read Consul's catalog through the consul backend, which serves what the template names as constant strings (a service named by a variable is read from every service of the default datacenter)")

// consulFuncs is the [funcs.Builder] of the "consul" set: consul-template's
// service, services and nodes, reading the catalog keys that the consul
// backend serves (package catalog). Values are decoded once per render.
func consulFuncs(_ context.Context, s *funcs.Store) texttemplate.FuncMap {
	if s == nil {
		s = funcs.NewStore(nil)
	}
	c := &catalogReader{s: s, decoded: map[string]any{}}
	return texttemplate.FuncMap{
		"service":  c.service,
		"services": c.services,
		"nodes":    c.nodes,
	}
}

// catalogReader reads catalog keys from one render's store.
type catalogReader struct {
	s       *funcs.Store
	decoded map[string]any // by key: its decoded value
}

// decode decodes the JSON value of the catalog key of q into a new *T,
// or returns the one decoded before; ok is false when there is no key.
func decode[T any](c *catalogReader, q catalog.Query) (v T, ok bool, err error) {
	key := q.Prefix()
	if d, done := c.decoded[key]; done {
		return d.(T), true, nil
	}
	raw, found := c.s.Lookup(key)
	if !found {
		return v, false, nil
	}
	if err := json.Unmarshal([]byte(raw), &v); err != nil {
		return v, false, fmt.Errorf("%s: malformed catalog value: %w", q, err)
	}
	c.decoded[key] = v
	return v, true, nil
}

// service returns the instances of the service that arg names
// ("[tag.]name[@datacenter]") whose status is passing, or one of those
// that filters name: "any", or statuses such as "passing,warning".
func (c *catalogReader) service(arg string, filters ...string) ([]catalog.Instance, error) {
	a, err := catalog.ParseService(arg)
	if err != nil {
		return nil, err
	}
	keep, err := statusFilter(filters)
	if err != nil {
		return nil, fmt.Errorf("service %q: %w", arg, err)
	}
	q := catalog.Query{Kind: catalog.KindService, Datacenter: a.Datacenter, Name: a.Name}
	all, ok, err := decode[[]catalog.Instance](c, q)
	if err != nil {
		return nil, err
	}
	if !ok {
		every := catalog.Query{Kind: catalog.KindAllServices, Datacenter: a.Datacenter}
		if _, watched := c.s.Lookup(every.Prefix()); !watched {
			return nil, fmt.Errorf("service %q: %w", arg, ErrNotWatched)
		}
		return []catalog.Instance{}, nil // every service is watched: this one has no instance
	}
	out := make([]catalog.Instance, 0, len(all))
	for _, in := range all {
		if keep(in.Status) && (a.Tag == "" || in.Tags.Contains(a.Tag)) {
			out = append(out, in)
		}
	}
	return out, nil
}

// statusFilter returns the test of an instance's status that the service
// function's filters ask for: passing only without filters, every status
// with "any", else the statuses listed (comma-separated, in one argument
// or several).
func statusFilter(filters []string) (func(string) bool, error) {
	if len(filters) == 0 {
		return func(st string) bool { return st == catalog.StatusPassing }, nil
	}
	var want []string
	for _, f := range filters {
		for st := range strings.SplitSeq(f, ",") {
			st = strings.TrimSpace(st)
			switch st {
			case "any":
				return func(string) bool { return true }, nil
			case catalog.StatusPassing, catalog.StatusWarning, catalog.StatusCritical, catalog.StatusMaintenance:
				want = append(want, st)
			default:
				return nil, fmt.Errorf("unknown health filter %q (want any, passing, warning, critical or maintenance)", st)
			}
		}
	}
	return func(st string) bool { return slices.Contains(want, st) }, nil
}

// services returns the services of the catalog with their tags, sorted
// by name; its optional argument is "@datacenter".
func (c *catalogReader) services(args ...string) ([]catalog.Service, error) {
	dc, err := catalog.ParseDatacenter(args)
	if err != nil {
		return nil, fmt.Errorf("services: %w", err)
	}
	q := catalog.Query{Kind: catalog.KindServices, Datacenter: dc}
	v, ok, err := decode[[]catalog.Service](c, q)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%s: %w", q, ErrNotWatched)
	}
	return slices.Clone(v), nil
}

// nodes returns the nodes of the catalog, sorted by name; its optional
// argument is "@datacenter".
func (c *catalogReader) nodes(args ...string) ([]catalog.Node, error) {
	dc, err := catalog.ParseDatacenter(args)
	if err != nil {
		return nil, fmt.Errorf("nodes: %w", err)
	}
	q := catalog.Query{Kind: catalog.KindNodes, Datacenter: dc}
	v, ok, err := decode[[]catalog.Node](c, q)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%s: %w", q, ErrNotWatched)
	}
	return slices.Clone(v), nil
}

// consulPrefixes is the [funcs.PrefixFunc] of the consul set: the catalog
// prefix of each call. A service named by a constant is watched alone; one
// named by anything else (a variable, a field of services' items) makes
// the resource watch every service of the default datacenter. Constant
// arguments are checked here, so a typo fails at load, not at render.
func consulPrefixes(call funcs.Call) ([]string, error) {
	var q catalog.Query
	switch call.Name {
	case "service":
		if len(call.Args) == 0 {
			return nil, errors.New(`want a service, "[tag.]name[@datacenter]"`)
		}
		for _, f := range call.Args[1:] {
			if f.Const {
				if _, err := statusFilter([]string{f.Value}); err != nil {
					return nil, err
				}
			}
		}
		if !call.Args[0].Const {
			q = catalog.Query{Kind: catalog.KindAllServices}
			break
		}
		a, err := catalog.ParseService(call.Args[0].Value)
		if err != nil {
			return nil, err
		}
		q = catalog.Query{Kind: catalog.KindService, Datacenter: a.Datacenter, Name: a.Name}
	case "services", "nodes":
		q.Kind = catalog.KindServices
		if call.Name == "nodes" {
			q.Kind = catalog.KindNodes
		}
		var args []string
		for _, a := range call.Args {
			if !a.Const {
				args = nil // a variable datacenter: read the default one's
				break
			}
			args = append(args, a.Value)
		}
		dc, err := catalog.ParseDatacenter(args)
		if err != nil {
			return nil, err
		}
		q.Datacenter = dc
	default:
		return nil, nil
	}
	return []string{q.Prefix()}, nil
}
