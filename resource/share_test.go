package resource

import (
	"testing"

	"github.com/kvconf/kvconf/funcs"
)

// TestLoadDirSharesTemplates checks that resources of one LoadDir that
// render the same template with the same sets share one parsed template,
// each still rendering its own prefix, and that other sets parse anew.
func TestLoadDirSharesTemplates(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.write("templates/t.tmpl", `{{getv "/x"}}`)
	e.write("conf.d/a.toml", "[template]\nsrc = \"t.tmpl\"\ndest = "+q(e.dest("a"))+"\nprefix = \"/a\"\n")
	e.write("conf.d/b.toml", "[template]\nsrc = \"t.tmpl\"\ndest = "+q(e.dest("b"))+"\nprefix = \"/b\"\n")
	e.write("conf.d/c.toml", "[template]\nsrc = \"t.tmpl\"\ndest = "+q(e.dest("c"))+"\nprefix = \"/a\"\nfuncs = [\"confd\"]\n")
	rs, err := LoadDir(e.opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 3 {
		t.Fatalf("loaded %d resources, want 3", len(rs))
	}
	if rs[0].tmpl != rs[1].tmpl {
		t.Error("a and b render one template with the same sets but parsed it twice")
	}
	if rs[0].tmpl == rs[2].tmpl {
		t.Error("c enables other sets but shares a's parsed template")
	}
	s := funcs.NewStore(map[string]string{"/a/x": "A", "/b/x": "B"})
	for i, want := range []string{"A", "B", "A"} {
		if _, err := rs[i].Apply(t.Context(), s); err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, rs[i].Dest()); got != want {
			t.Errorf("%s wrote %q, want %q", rs[i].Name, got, want)
		}
	}
}
