package funcs_test

import (
	"context"
	"fmt"
	"os"
	texttemplate "text/template"

	"github.com/kvconf/kvconf/funcs"
)

// ExampleMap composes the default sets (sprig, then confd) bound to a store
// and renders a template with them. confd's join wins over sprig's, which
// stays reachable as sprig_join.
func ExampleMap() {
	s := funcs.NewStore(map[string]string{
		"/app/db/host":     "db.internal",
		"/app/db/port":     "5432",
		"/app/upstreams/b": "10.0.0.2:80",
		"/app/upstreams/a": "10.0.0.1:80",
	})
	fm, err := funcs.Map(context.Background(), funcs.DefaultSets(), s.View("/app", nil))
	if err != nil {
		fmt.Println(err)
		return
	}
	t, err := texttemplate.New("example").Option("missingkey=error").Funcs(fm).Parse(
		`db = {{getv "/db/host"}}:{{getv "/db/port"}}
timeout = {{getv "/db/timeout" "30s"}}
upstreams = {{join (getvs "/upstreams/*") ","}}
names = {{sprig_join "|" (ls "/upstreams")}}
{{range gets "/upstreams/*"}}server {{base .Key | upper}} {{.Value}}
{{end}}`)
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := t.Execute(os.Stdout, nil); err != nil {
		fmt.Println(err)
	}
	// Output:
	// db = db.internal:5432
	// timeout = 30s
	// upstreams = 10.0.0.1:80,10.0.0.2:80
	// names = a|b
	// server A 10.0.0.1:80
	// server B 10.0.0.2:80
}
