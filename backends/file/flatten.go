package file

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// flatten parses data, a YAML or JSON document whose top level is a map,
// and adds its leaves to kvs under their paths, by the rules documented on
// [Client.Snapshot]. Errors give the line when the parser does, and never
// include values: the text that yaml quotes in some errors is removed.
//
// It walks yaml's node tree once, resolving merge keys and aliases itself,
// rather than decoding the tree into maps: yaml.v3's decoder checks every
// map for duplicate keys pair by pair, which is quadratic in the size of a
// map (200,000 keys took minutes). normalize does that check with a set.
// Two leaves of the document at the same key path ("" and ".." under one
// map, or "a/b" beside a: {b: ...}) are an error naming the path. flatten
// checks ctx as it walks.
func flatten(ctx context.Context, data []byte, kvs map[string]string) error {
	var doc yaml.Node
	err := yaml.NewDecoder(&ctxReader{ctx: ctx, r: bytes.NewReader(data)}).Decode(&doc)
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, io.EOF):
		return nil // empty file, or only comments
	case err != nil:
		return redact(err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil // empty file, or only comments
	}
	root := doc.Content[0]
	switch {
	case root.Kind == yaml.MappingNode:
	case root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null":
		return nil
	default:
		return fmt.Errorf("line %d: top level is a %s, want a map", root.Line, kindName(root.Kind))
	}
	var shared bool
	if err := normalize(root, false, &shared); err != nil {
		return err
	}
	w := walker{ctx: ctx, kvs: kvs, active: make(map[*yaml.Node]bool)}
	if shared {
		w.at = make(map[string]int)
	}
	return w.walk(root, "/", root.Line)
}

// ctxReader reads from r until ctx is done. yaml's parser reads its input
// 512 bytes at a time as it goes, so that parsing a large document stops
// soon after ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r *ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// normalize rewrites the tags of the scalars under n so that decoding into
// an interface gives what gopkg.in/yaml.v2 gave confd. key reports that n is
// a map key. It does not follow aliases: the nodes they point to are
// rewritten where they are defined. It rejects duplicate and non-scalar map
// keys, and sets *shared when a key may give the same key path as another
// (see [ownSegment]).
func normalize(n *yaml.Node, key bool, shared *bool) error {
	switch n.Kind {
	case yaml.MappingNode:
		if err := uniqueKeys(n); err != nil {
			return err
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if err := checkKey(k); err != nil {
				return err
			}
			if !*shared && !ownSegment(k) {
				*shared = true
			}
			if err := normalize(k, true, shared); err != nil {
				return err
			}
			if err := normalize(v, false, shared); err != nil {
				return err
			}
		}
	case yaml.SequenceNode, yaml.DocumentNode:
		for _, c := range n.Content {
			if err := normalize(c, false, shared); err != nil {
				return err
			}
		}
	case yaml.ScalarNode:
		normalizeScalar(n, key)
	}
	return nil
}

// uniqueKeys rejects a map that has the same key twice, as yaml.v3's
// decoder does (same kind, same text), in time linear in the size of the
// map.
func uniqueKeys(n *yaml.Node) error {
	const small = 16 // below this, comparing pairs is cheaper than a map
	if len(n.Content) <= 2*small {
		for i := 0; i+1 < len(n.Content); i += 2 {
			for j := i + 2; j+1 < len(n.Content); j += 2 {
				if ki, kj := n.Content[i], n.Content[j]; ki.Kind == kj.Kind && ki.Value == kj.Value {
					return dupKey(kj, ki)
				}
			}
		}
		return nil
	}
	// Keys of one kind share a set: nearly all are scalars.
	sets := make(map[yaml.Kind]map[string]*yaml.Node, 1)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		first := sets[k.Kind]
		if first == nil {
			first = make(map[string]*yaml.Node, len(n.Content)/2)
			sets[k.Kind] = first
		}
		if f, ok := first[k.Value]; ok {
			return dupKey(k, f)
		}
		first[k.Value] = k
	}
	return nil
}

func dupKey(k, first *yaml.Node) error {
	return fmt.Errorf("line %d: mapping key %q already defined at line %d", k.Line, k.Value, first.Line)
}

// ownSegment reports whether map key k adds one path segment of its own:
// it is written out (not an alias, whose text may equal another key's) and
// has no "/" and is not "", "." or "..", which path.Join cleans away. Keys
// that are distinct in a map and all own segments give distinct key paths,
// so that the walk need not check for two leaves at one path.
func ownSegment(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.Value != "" && k.Value != "." && k.Value != ".." && !strings.Contains(k.Value, "/")
}

// checkKey rejects map keys that are not scalars (YAML's "? [a, b] : c"),
// which have no path.
func checkKey(k *yaml.Node) error {
	n := k
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: a map key is a %s, want a scalar", k.Line, kindName(n.Kind))
	}
	return nil
}

// quoted is the set of scalar styles whose text is a string whatever it
// looks like.
const quoted = yaml.DoubleQuotedStyle | yaml.SingleQuotedStyle | yaml.LiteralStyle | yaml.FoldedStyle

// bigInt matches an integer literal; one that yaml resolved as a float is
// too large for 64 bits.
var bigInt = regexp.MustCompile(`^[-+]?[0-9][0-9_]*$`)

func normalizeScalar(n *yaml.Node, key bool) {
	tag := n.ShortTag()
	switch {
	case key:
		if tag != "!!merge" {
			n.Tag = "!!str" // keys as written
		}
	case tag == "!!timestamp":
		n.Tag = "!!str" // yaml.v2 gave the text, yaml.v3 a time.Time
	case tag == "!!float" && n.Style&yaml.TaggedStyle == 0 && bigInt.MatchString(n.Value):
		n.Tag = "!!str"
	case tag == "!!str" && n.Style&(quoted|yaml.TaggedStyle) == 0:
		if b, ok := yaml11Bool(n.Value); ok {
			n.Tag, n.Value = "!!bool", strconv.FormatBool(b)
		}
	}
}

// yaml11Bool reports whether s is one of the plain booleans of YAML 1.1 that
// YAML 1.2 (and yaml.v3) reads as strings, and its value.
func yaml11Bool(s string) (value, ok bool) {
	switch s {
	case "y", "Y", "yes", "Yes", "YES", "on", "On", "ON":
		return true, true
	case "n", "N", "no", "No", "NO", "off", "Off", "OFF":
		return false, true
	}
	return false, false
}

// scalar returns the text of a decoded scalar, and false for null.
func scalar(v any) (string, bool) {
	switch v := v.(type) {
	case nil:
		return "", false
	case string:
		return v, true
	case bool:
		return strconv.FormatBool(v), true
	case int:
		return strconv.Itoa(v), true
	case int64:
		return strconv.FormatInt(v, 10), true
	case uint64:
		return strconv.FormatUint(v, 10), true
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), true
	default:
		return fmt.Sprint(v), true
	}
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.SequenceNode:
		return "list"
	case yaml.MappingNode:
		return "map"
	case yaml.ScalarNode:
		return "scalar"
	case yaml.AliasNode:
		return "alias"
	}
	return "document"
}

// redact removes from err's text what yaml quotes between backticks, which
// may be a value (yaml: cannot decode !!str `s3cret` as a !!int).
func redact(err error) error {
	msg := err.Error()
	if !strings.Contains(msg, "`") {
		return err
	}
	var b strings.Builder
	for {
		before, rest, ok := strings.Cut(msg, "`")
		b.WriteString(before)
		if !ok {
			break
		}
		_, after, ok := strings.Cut(rest, "`")
		if !ok {
			break
		}
		b.WriteString("(value hidden)")
		msg = after
	}
	return errors.New(b.String())
}
