package template_test

import (
	"strings"
	"testing"

	"github.com/kvconf/kvconf/funcs"
	"github.com/kvconf/kvconf/template"
)

// TestBindsEveryCalledFunction calls store functions from every place a
// template can call one. A render binds only the functions the template
// calls; one it missed would still be bound to the empty parse-time store
// and fail here with a missing key.
func TestBindsEveryCalledFunction(t *testing.T) {
	t.Parallel()
	src := `{{define "d"}}[{{getv "/a"}}]{{end -}}
action={{getv "/a"}}
pipe={{"/a" | getv}}
paren={{printf "%s" (getv "/a")}}
chain={{(get "/a").Value}}
var={{$v := getv "/a"}}{{$v}}
if={{if getv "/a"}}yes{{else if exists "/b"}}b{{end}}
elseif={{if eq 1 2}}no{{else if exists "/a"}}yes{{end}}
with={{with getv "/a"}}{{.}}{{else}}{{getv "/a"}}{{end}}
range={{range gets "/*"}}{{.Key}}{{end}}
rangeelse={{range ls "/none"}}{{else}}{{getv "/a"}}{{end}}
template={{template "d"}}
templatearg={{template "d" (getv "/a")}}
nested={{if true}}{{range $i, $k := ls "/"}}{{getv (printf "/%s" $k)}}{{end}}{{end}}
`
	tm, err := template.Parse("bind.tmpl", []byte(src), template.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := tm.Render(t.Context(), &out, funcs.NewStore(map[string]string{"/a": "A"})); err != nil {
		t.Fatalf("Render: %v", err)
	}
	for _, want := range []string{"action=A", "pipe=A", "paren=A", "chain=A", "var=A", "if=yes", "elseif=yes",
		"with=A", "range=/a", "rangeelse=A", "template=[A]", "templatearg=[A]", "nested=A"} {
		if !strings.Contains(out.String(), want+"\n") {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
