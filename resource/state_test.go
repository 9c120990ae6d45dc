package resource

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadState(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("server a 10.0.0.1:80\n", 10_000) // several pieces of compareBytes
	flip := func(s string, i int) string { b := []byte(s); b[i] ^= 1; return string(b) }
	tests := []struct {
		name       string
		file, like string
	}{
		{name: "same small", file: "a\n", like: "a\n"},
		{name: "same empty", file: "", like: ""},
		{name: "same big", file: big, like: big},
		{name: "same size, first byte differs", file: big, like: flip(big, 0)},
		{name: "same size, last byte differs", file: big, like: flip(big, len(big)-1)},
		{name: "same size, differs in a later piece", file: big, like: flip(big, compareBytes+5)},
		{name: "file longer", file: big + "x", like: big},
		{name: "file shorter", file: big[:len(big)-1], like: big},
		{name: "file empty", file: "", like: "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := filepath.Join(t.TempDir(), "dest")
			writeFile(t, p, tt.file, 0o640)
			like := []byte(tt.like)
			st, err := readState(p, like)
			if err != nil {
				t.Fatal(err)
			}
			if !st.exists || st.mode != 0o640 {
				t.Errorf("exists %v, mode %v; want true, 0640", st.exists, st.mode)
			}
			if !bytes.Equal(st.data, []byte(tt.file)) {
				t.Errorf("data differs from the file's content (%d bytes against %d)", len(st.data), len(tt.file))
			}
			// The same content is like itself, not a copy.
			shared := len(like) > 0 && len(st.data) > 0 && &st.data[0] == &like[0]
			if want := tt.file == tt.like && len(like) > 0; shared != want {
				t.Errorf("data shares like's memory: %v, want %v", shared, want)
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		t.Parallel()
		st, err := readState(filepath.Join(t.TempDir(), "none"), []byte("a"))
		if err != nil || st.exists || st.data != nil || st.uid != -1 || st.gid != -1 {
			t.Errorf("readState of a missing file = %+v, %v; want a state that does not exist", st, err)
		}
	})
}

// TestApplySizeHint checks the render buffer's size hint: the size of dest
// before the first render, of the last render after it.
func TestApplySizeHint(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dest := e.dest("app.conf")
	writeFile(t, dest, strings.Repeat("x", 1000), 0o644)
	r := e.resource("app", `{{getv "/v"}}`, "dest = "+q(dest), `keys = ["/v"]`)
	if got := r.sizeHint(); got < 1000 {
		t.Errorf("sizeHint before the first render = %d, want at least dest's 1000 bytes", got)
	}
	if _, err := apply(t, r, map[string]string{"/v": strings.Repeat("y", 5000)}); err != nil {
		t.Fatal(err)
	}
	if r.lastSize != 5000 {
		t.Errorf("lastSize = %d after a render of 5000 bytes", r.lastSize)
	}
	if got := r.sizeHint(); got < 5000 {
		t.Errorf("sizeHint after a render of 5000 bytes = %d, want at least that", got)
	}
	if c := readFile(t, dest); c != strings.Repeat("y", 5000) {
		t.Errorf("dest holds %d bytes, want the 5000 rendered", len(c))
	}
}
