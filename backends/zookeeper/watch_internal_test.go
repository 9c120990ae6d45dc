package zookeeper

import (
	"maps"
	"testing"

	"github.com/kvconf/kvconf/backends/zookeeper/zkwire"
)

// TestApplyMalformedPaths applies notifications with paths that no
// ZooKeeper server sends but a broken or hostile one can: each is
// dropped, without a panic and without a read. A real server cannot be
// made to send them, hence the direct call.
func TestApplyMalformedPaths(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"", "x", "app/k", "/app/k/", "/app//k", "/app/./k", "/app/../k", "//"} {
		for _, typ := range []zkwire.EventType{zkwire.EventNodeCreated, zkwire.EventNodeDeleted, zkwire.EventNodeDataChanged} {
			s := &watchState{
				ps:      []string{"/app/"},
				nodes:   map[string]*wnode{"/app/k": {data: "v", known: true}},
				keys:    map[string]string{"/app/k": "v"},
				touched: map[string]struct{}{},
				dirty:   map[string]struct{}{},
			}
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Errorf("apply(type %d, path %q) panicked: %v", typ, p, r)
					}
				}()
				s.apply([]zkwire.Event{{Type: typ, Path: p}})
			}()
			if len(s.dirty) != 0 || len(s.touched) != 0 {
				t.Errorf("apply(type %d, path %q): dirty %v, touched %v, want none", typ, p, s.dirty, s.touched)
			}
			if ch := s.reconcile(); len(ch) != 0 || !maps.Equal(s.keys, map[string]string{"/app/k": "v"}) {
				t.Errorf("apply(type %d, path %q): changes %v, keys %v", typ, p, ch, s.keys)
			}
		}
	}
}
