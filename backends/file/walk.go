package file

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// walker adds the leaves of a normalized node tree to kvs. It follows
// aliases and merge keys, and stops on an alias cycle, on excessive
// aliasing (a "billion laughs" document) and when ctx is done.
type walker struct {
	ctx    context.Context
	kvs    map[string]string
	at     map[string]int      // key path → line of the key that set it; nil when no two leaves can share a path
	active map[*yaml.Node]bool // the aliases being followed, and maps being merged

	visits      int // nodes walked
	aliasVisits int // nodes walked under an alias
	aliasDepth  int
}

// errSamePath is the error of two leaves of one document at the same key
// path.
var errSamePath = errors.New("given twice")

// ctxEvery is how many nodes the walk takes between checks of its context.
const ctxEvery = 1 << 12

// walk adds the leaves under n, found at key path p, to w.kvs. line is the
// line of the key or list item that leads to n.
func (w *walker) walk(n *yaml.Node, p string, line int) error {
	if err := w.count(); err != nil {
		return err
	}
	switch n.Kind {
	case yaml.AliasNode:
		if n.Alias == nil {
			return fmt.Errorf("line %d: unknown anchor %q", n.Line, n.Value)
		}
		if w.active[n] {
			return fmt.Errorf("line %d: anchor %q value contains itself", n.Line, n.Value)
		}
		w.active[n] = true
		w.aliasDepth++
		err := w.walk(n.Alias, p, line)
		w.aliasDepth--
		delete(w.active, n)
		return err
	case yaml.MappingNode:
		entries, err := w.entries(n)
		if err != nil {
			return err
		}
		for _, e := range entries {
			k, ok, err := text(e.key)
			if err != nil {
				return err
			}
			if !ok {
				k = "" // a null key (an alias to a null) adds nothing to the path
			}
			if e.merged {
				w.aliasDepth++
			}
			err = w.walk(e.value, path.Join(p, k), e.key.Line)
			if e.merged {
				w.aliasDepth--
			}
			if err != nil {
				return err
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if err := w.walk(c, path.Join(p, strconv.Itoa(i)), c.Line); err != nil {
				return err
			}
		}
	case yaml.ScalarNode:
		v, ok, err := text(n)
		if err != nil || !ok {
			return err // null gives no key
		}
		if w.at != nil {
			if first, dup := w.at[p]; dup {
				return fmt.Errorf("line %d: key path %q: %w, first at line %d", line, p, errSamePath, first)
			}
			w.at[p] = line
		}
		w.kvs[p] = v
	default:
		return fmt.Errorf("line %d: unexpected %s", n.Line, kindName(n.Kind))
	}
	return nil
}

// count counts a visit, and fails when ctx is done or when aliases expand
// the document too much, with the limits of yaml.v3's decoder: past 1,000
// nodes and 100 of them under aliases, at most 99% of the nodes may come
// from aliases, falling to 10% for documents of 400,000 to 4,000,000 nodes.
func (w *walker) count() error {
	w.visits++
	if w.aliasDepth > 0 {
		w.aliasVisits++
	}
	if w.visits%ctxEvery == 0 {
		if err := w.ctx.Err(); err != nil {
			return err
		}
	}
	if w.aliasVisits > 100 && w.visits > 1000 && float64(w.aliasVisits)/float64(w.visits) > aliasRatio(w.visits) {
		return errors.New("document contains excessive aliasing")
	}
	return nil
}

// aliasRatio is the share of nodes that may come from aliases in a
// document of n nodes (yaml.v3's allowedAliasRatio).
func aliasRatio(n int) float64 {
	const low, high = 400_000, 4_000_000
	switch {
	case n <= low:
		return 0.99
	case n >= high:
		return 0.10
	}
	return 0.99 - 0.89*float64(n-low)/float64(high-low)
}

// entry is a key and its value in a map, merged from another map or not.
type entry struct {
	key, value *yaml.Node
	merged     bool
}

// entries returns the keys of map n and their values, with those of the
// maps its merge key ("<<") names: n's own keys win over merged ones, and
// a map merged earlier over one merged later, as yaml.v3 decodes them.
func (w *walker) entries(n *yaml.Node) ([]entry, error) {
	own := make([]entry, 0, len(n.Content)/2)
	var merge *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if isMerge(k) {
			merge = v
			continue
		}
		own = append(own, entry{key: k, value: v})
	}
	if merge == nil {
		return own, nil
	}
	have := make(map[string]bool, len(own))
	for _, e := range own {
		k, _, err := text(e.key)
		if err != nil {
			return nil, err
		}
		have[k] = true
	}
	w.active[n] = true
	defer delete(w.active, n)
	return w.merge(merge, own, have)
}

// merge appends to out the keys of the maps that the merge value m names
// (a map, an alias to one, or a list of these) that are not in have yet.
func (w *walker) merge(m *yaml.Node, out []entry, have map[string]bool) ([]entry, error) {
	var sources []*yaml.Node
	switch m.Kind {
	case yaml.MappingNode, yaml.AliasNode:
		sources = []*yaml.Node{m}
	case yaml.SequenceNode:
		sources = m.Content
	default:
		return nil, errMerge(m)
	}
	for _, src := range sources {
		if src.Kind == yaml.AliasNode && src.Alias != nil {
			src = src.Alias
		}
		if src.Kind != yaml.MappingNode {
			return nil, errMerge(m)
		}
		if w.active[src] {
			return nil, fmt.Errorf("line %d: merged map contains itself", m.Line)
		}
		if err := w.count(); err != nil {
			return nil, err
		}
		w.active[src] = true
		var next *yaml.Node
		for i := 0; i+1 < len(src.Content); i += 2 {
			k, v := src.Content[i], src.Content[i+1]
			if isMerge(k) {
				next = v
				continue
			}
			kt, _, err := text(k)
			if err != nil {
				return nil, err
			}
			if !have[kt] {
				have[kt] = true
				out = append(out, entry{key: k, value: v, merged: true})
			}
		}
		var err error
		if next != nil {
			out, err = w.merge(next, out, have)
		}
		delete(w.active, src)
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func errMerge(m *yaml.Node) error {
	return fmt.Errorf("line %d: map merge requires map or sequence of maps as the value", m.Line)
}

// isMerge reports whether k is the merge key, a plain "<<".
func isMerge(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.Value == "<<" && k.ShortTag() == "!!merge"
}

// text returns the text of scalar n (of its target for an alias), and
// false for null, by the rules of [Client.Snapshot]. The common cases
// (strings, decimal integers, booleans) are read from the node; the others
// are decoded by yaml.
func text(n *yaml.Node) (string, bool, error) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	switch n.ShortTag() {
	case "!!null":
		return "", false, nil
	case "!!str":
		return n.Value, true, nil
	case "!!bool":
		if n.Value == "true" || n.Value == "false" {
			return n.Value, true, nil
		}
	case "!!int":
		if i, err := strconv.ParseInt(n.Value, 10, 64); err == nil && strconv.FormatInt(i, 10) == n.Value {
			return n.Value, true, nil
		}
	}
	var v any
	if err := n.Decode(&v); err != nil {
		return "", false, redact(err)
	}
	s, ok := scalar(v)
	return s, ok, nil
}
