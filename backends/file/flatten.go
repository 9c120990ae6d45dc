package file

import (
	"errors"
	"fmt"
	"maps"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// flatten parses data, a YAML or JSON document whose top level is a map,
// and adds its leaves to kvs under their paths, by the rules documented on
// [Client.Snapshot]. Errors give the line when the parser does, and never
// include values: the text that yaml quotes in some errors is removed.
func flatten(data []byte, kvs map[string]string) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
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
	if err := normalize(root, false); err != nil {
		return err
	}
	var v any
	if err := root.Decode(&v); err != nil {
		return redact(err)
	}
	walk(v, "/", kvs)
	return nil
}

// normalize rewrites the tags of the scalars under n so that decoding into
// an interface gives what gopkg.in/yaml.v2 gave confd. key reports that n is
// a map key. It does not follow aliases: the nodes they point to are
// rewritten where they are defined.
func normalize(n *yaml.Node, key bool) error {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if err := checkKey(k); err != nil {
				return err
			}
			if err := normalize(k, true); err != nil {
				return err
			}
			if err := normalize(v, false); err != nil {
				return err
			}
		}
	case yaml.SequenceNode, yaml.DocumentNode:
		for _, c := range n.Content {
			if err := normalize(c, false); err != nil {
				return err
			}
		}
	case yaml.ScalarNode:
		normalizeScalar(n, key)
	}
	return nil
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

// walk adds the leaves of v, found at path p, to kvs.
func walk(v any, p string, kvs map[string]string) {
	switch v := v.(type) {
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(v)) {
			walk(v[k], path.Join(p, k), kvs)
		}
	case map[any]any:
		keys := make([]string, 0, len(v))
		byKey := make(map[string]any, len(v))
		for k, e := range v {
			s, _ := scalar(k)
			keys = append(keys, s)
			byKey[s] = e
		}
		slices.Sort(keys)
		for _, k := range keys {
			walk(byKey[k], path.Join(p, k), kvs)
		}
	case []any:
		for i, e := range v {
			walk(e, path.Join(p, strconv.Itoa(i)), kvs)
		}
	default:
		if s, ok := scalar(v); ok {
			kvs[p] = s
		}
	}
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
