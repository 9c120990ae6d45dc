package file

import (
	"errors"
	"maps"
	"path"
	"slices"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// flattenDecode is the reference that flatten is tested against: it decodes
// the normalized node tree with yaml.v3's decoder (quadratic in the size of
// a map, see flatten) and walks the result. It was flatten until the walk
// of the node tree replaced it. On colliding key paths the last one in
// sorted key order wins, where flatten fails.
func flattenDecode(data []byte, kvs map[string]string) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return err
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
			return nil
		}
		return errors.New("top level is not a map")
	}
	if err := normalize(root, false, new(bool)); err != nil {
		return err
	}
	var v any
	if err := root.Decode(&v); err != nil {
		return err
	}
	walkDecoded(v, "/", kvs)
	return nil
}

func walkDecoded(v any, p string, kvs map[string]string) {
	switch v := v.(type) {
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(v)) {
			walkDecoded(v[k], path.Join(p, k), kvs)
		}
	case map[any]any:
		byKey := make(map[string]any, len(v))
		for k, e := range v {
			s, _ := scalar(k)
			byKey[s] = e
		}
		for _, k := range slices.Sorted(maps.Keys(byKey)) {
			walkDecoded(byKey[k], path.Join(p, k), kvs)
		}
	case []any:
		for i, e := range v {
			walkDecoded(e, path.Join(p, strconv.Itoa(i)), kvs)
		}
	default:
		if s, ok := scalar(v); ok {
			kvs[p] = s
		}
	}
}
