package funcs

import (
	"context"
	"sync"
	texttemplate "text/template"

	"github.com/Masterminds/sprig/v3"
)

func init() {
	Register("sprig", "Masterminds sprig v3 text functions; sprig_<name> keeps sprig's meaning of names confd also defines", sprigFuncs)
}

// SprigCollisions lists, sorted, the names that both the sprig and the
// confd sets define. With [DefaultSets] confd's meaning wins for them; the
// sprig set also defines each of them as sprig_<name> (for example
// sprig_join, which takes the separator first), the consul-template
// precedent, so sprig's version stays reachable. A test pins this list, so
// a sprig upgrade cannot change it unnoticed. It is informational: changing
// it does not change the sets.
var SprigCollisions = sprigCollisions()

// sprigCollisions returns a new copy of the names in [SprigCollisions]; the
// sprig builder uses it so that nothing can change the aliases at run time.
func sprigCollisions() []string {
	return []string{
		"add", "atoi", "base", "contains", "dir", "div", "get", "join",
		"mod", "mul", "replace", "reverse", "seq", "split", "sub", "trimSuffix",
	}
}

// sprigFuncs is the [Builder] of the "sprig" set. Sprig's functions do not
// read the store, so the map is built once and shared; [Map] copies it.
func sprigFuncs(context.Context, *Store) texttemplate.FuncMap { return sprigMap() }

// sprigMap builds the sprig set's map on first use; it is never modified.
var sprigMap = sync.OnceValue(func() texttemplate.FuncMap {
	fm := texttemplate.FuncMap(sprig.TxtFuncMap())
	for _, name := range sprigCollisions() {
		if f, ok := fm[name]; ok {
			fm["sprig_"+name] = f
		}
	}
	return fm
})
