package funcs_test

import (
	"slices"
	"strings"
	"testing"
	texttemplate "text/template"

	"github.com/kvconf/kvconf/funcs"
)

// TestSprigCollisions pins [funcs.SprigCollisions] to the names the two
// sets really share, so that a sprig upgrade that adds or drops one fails
// here instead of silently changing what a template calls.
func TestSprigCollisions(t *testing.T) {
	t.Parallel()
	s := funcs.NewStore(nil)
	sprigFM, err := funcs.Map(t.Context(), []string{"sprig"}, s)
	if err != nil {
		t.Fatal(err)
	}
	confdFM, err := funcs.Map(t.Context(), []string{"confd"}, s)
	if err != nil {
		t.Fatal(err)
	}
	var shared []string
	for name := range sprigFM {
		if _, ok := confdFM[name]; ok && !strings.HasPrefix(name, "sprig_") {
			shared = append(shared, name)
		}
	}
	slices.Sort(shared)
	if !slices.Equal(shared, funcs.SprigCollisions) {
		t.Errorf("sprig and confd share\n%q\nbut SprigCollisions is\n%q", shared, funcs.SprigCollisions)
	}
	if len(shared) != 16 {
		t.Errorf("%d shared names, want the 16 of sprig v3.3.0", len(shared))
	}

	var aliases []string
	for name := range sprigFM {
		if n, ok := strings.CutPrefix(name, "sprig_"); ok {
			aliases = append(aliases, n)
		}
	}
	slices.Sort(aliases)
	if !slices.Equal(aliases, funcs.SprigCollisions) {
		t.Errorf("sprig set defines sprig_ aliases for %q, want exactly %q", aliases, funcs.SprigCollisions)
	}
	if !slices.Contains(funcs.Names(), "sprig") || funcs.Description("sprig") == "" {
		t.Errorf("sprig is not registered with a description: %q", funcs.Names())
	}
}

// TestSetOrder checks that the later set wins on shared names and that the
// sprig_ aliases keep sprig's argument order.
func TestSetOrder(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		sets []string
		src  string
		want string
	}{
		{name: "default: confd join", sets: funcs.DefaultSets(), src: `{{join (split "a,b" ",") "-"}}`, want: "a-b"},
		{name: "default: sprig_join", sets: funcs.DefaultSets(), src: `{{sprig_join "-" (split "a,b" ",")}}`, want: "a-b"},
		{name: "default: confd replace", sets: funcs.DefaultSets(), src: `{{replace "aXa" "a" "b" -1}}`, want: "bXb"},
		{name: "default: sprig_replace", sets: funcs.DefaultSets(), src: `{{"aXa" | sprig_replace "a" "b"}}`, want: "bXb"},
		{name: "default: sprig non-colliding", sets: funcs.DefaultSets(), src: `{{upper "x"}}{{default "d" ""}}`, want: "Xd"},
		{name: "sprig last: sprig join", sets: []string{"confd", "sprig"}, src: `{{join "-" (splitList "," "a,b")}} {{(split "," "a,b")._1}}`, want: "a-b b"},
		{name: "sprig alone", sets: []string{"sprig"}, src: `{{sprig_join "-" (list "a" "b")}} {{join "+" (list 1 2)}}`, want: "a-b 1+2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fm, err := funcs.Map(t.Context(), tt.sets, funcs.NewStore(nil))
			if err != nil {
				t.Fatal(err)
			}
			tmpl, err := texttemplate.New("t").Funcs(fm).Parse(tt.src)
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			if err := tmpl.Execute(&b, nil); err != nil || b.String() != tt.want {
				t.Errorf("%s = %q, %v; want %q", tt.src, b.String(), err, tt.want)
			}
		})
	}
}

func TestMapUnknownSet(t *testing.T) {
	t.Parallel()
	_, err := funcs.Map(t.Context(), []string{"confd", "nope"}, funcs.NewStore(nil))
	if err == nil || !strings.Contains(err.Error(), `unknown function set "nope"`) {
		t.Errorf("Map with an unknown set: error %v", err)
	}
}
