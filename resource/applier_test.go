package resource

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/kvconf/kvconf/appliers"
)

// TestApplierLoadErrors checks that a bad [template.apply] table is a load
// error naming the file and the key.
func TestApplierLoadErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		apply string
		want  string
	}{
		{"unknown type", "type = \"nope\"", `conf.d/r.toml: template.apply.type: unknown applier "nope"`},
		{"missing type", "cmd = \"true\"", "conf.d/r.toml: template.apply.type: missing"},
		{"unknown key", "type = \"command\"\ncmd = \"true\"\nsokcet = \"x\"", `conf.d/r.toml: template.apply.sokcet: unknown key for applier "command"`},
		{"missing cmd", "type = \"command\"", "conf.d/r.toml: template.apply.cmd: missing"},
		{"bad signal", "type = \"signal\"\nsignal = \"SIGNOPE\"", `conf.d/r.toml: template.apply.signal: unknown signal "SIGNOPE"`},
		{"wrong value type", "type = \"command\"\ncmd = 3", "conf.d/r.toml: template.apply:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.write("templates/r.tmpl", "x")
			p := e.write("conf.d/r.toml", "[template]\nsrc = \"r.tmpl\"\ndest = "+q(e.dest("r"))+"\n[template.apply]\n"+tt.apply+"\n")
			_, err := Load(p, e.opts)
			var le *LoadError
			if !errors.As(err, &le) {
				t.Fatalf("Load: %v, want a *LoadError", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load: %v\nwant it to contain %q", err, tt.want)
			}
		})
	}
}

// TestApplierPaths checks the pipeline with an applier: applied live, no
// reload_cmd; or the fallback reload_cmd with its rollback.
func TestApplierPaths(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		applyCmd   string // the command applier's cmd
		reload     string // reload_cmd, "" for none
		wantRes    Result
		wantErr    bool
		wantDest   string
		wantReload bool // reload_cmd ran
	}{
		{"applied", "true", "touch RELOADED", Applied, false, "new", false},
		{"fallback", "exit 3", "touch RELOADED", Updated, false, "new", true},
		{"fallback fails, rollback", "exit 3", "touch RELOADED; exit 1", Unchanged, true, "old", true},
		{"fallback without reload_cmd", "exit 3", "", Updated, false, "new", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			dest := e.dest("r")
			writeFile(t, dest, "old", 0o644)
			mark := filepath.Join(e.dir, "RELOADED")
			fields := []string{"dest = " + q(dest)}
			if tt.reload != "" {
				fields = append(fields, "reload_cmd = "+q("cd "+e.dir+" && "+tt.reload))
			}
			fields = append(fields, "[template.apply]", "type = \"command\"",
				"cmd = "+q("test \"$(cat {{.dest}})\" = old && "+tt.applyCmd))
			r := e.resource("r", "new", fields...)
			if r.Applier() != "command" {
				t.Fatalf("Applier() = %q", r.Applier())
			}
			res, err := apply(t, r, nil)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Apply: %v, want error %v", err, tt.wantErr)
			}
			if res != tt.wantRes {
				t.Fatalf("Apply = %v, want %v", res, tt.wantRes)
			}
			if got := readFile(t, dest); got != tt.wantDest {
				t.Fatalf("dest = %q, want %q", got, tt.wantDest)
			}
			if got := exists(t, mark); got != tt.wantReload {
				t.Fatalf("reload_cmd ran: %v, want %v", got, tt.wantReload)
			}
			noStageFiles(t, e.out)
			// Unchanged now: the applier does not run again.
			if res, err := apply(t, r, nil); tt.wantDest == "new" && (err != nil || res != Unchanged) {
				t.Fatalf("second Apply = %v, %v; want unchanged", res, err)
			}
		})
	}
}

// TestApplierSyncOnly checks that -sync-only runs no applier.
func TestApplierSyncOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.opts.SyncOnly = true
	mark := filepath.Join(e.dir, "APPLIED")
	r := e.resource("r", "new", "dest = "+q(e.dest("r")), "[template.apply]", "type = \"command\"", "cmd = "+q("touch "+mark))
	if res, err := apply(t, r, nil); err != nil || res != Updated {
		t.Fatalf("Apply = %v, %v", res, err)
	}
	if exists(t, mark) {
		t.Fatal("applier ran under SyncOnly")
	}
}

// TestApplierEventsAndOnce checks the observer's events of both paths,
// and that Once (the -onetime run) uses the applier too.
func TestApplierEventsAndOnce(t *testing.T) {
	t.Parallel()
	for _, live := range []bool{true, false} {
		t.Run(map[bool]string{true: "runtime", false: "fallback"}[live], func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			rec := &recorder{}
			e.opts.Observer = rec
			dest := e.dest("r")
			writeFile(t, dest, "old", 0o644)
			mark := filepath.Join(e.dir, "RELOADED")
			cmd := "true"
			if !live {
				cmd = "exit 1"
			}
			r := e.resource("r", "{{getv \"/k\"}}", "dest = "+q(dest), "reload_cmd = "+q("touch "+mark),
				"[template.apply]", "type = \"command\"", "cmd = "+q(cmd))
			_, b := newBackend(map[string]string{"/k": "new"})
			if err := Once(t.Context(), b, []*Resource{r}); err != nil {
				t.Fatal(err)
			}
			if got := readFile(t, dest); got != "new" {
				t.Fatalf("dest = %q", got)
			}
			if exists(t, mark) == live {
				t.Fatalf("reload_cmd ran: %v, want %v", !live, !live)
			}
			want := "rendered applied written done"
			if !live {
				want = "rendered apply fallback! written reload done" // ! marks an Err
			}
			if got := strings.Join(rec.kinds(r.Name), " "); got != want {
				t.Fatalf("events %q, want %q", got, want)
			}
		})
	}
}

// recordConfig is the "test-record" applier: a small fake, as no real
// applier reports what it was given. It sends Change.New to the channel
// its Key names in recorded.
type recordConfig struct {
	Key string `toml:"key"`
}

var recorded sync.Map // key → chan []byte

func init() {
	appliers.Register("test-record", func() appliers.Config { return new(recordConfig) })
}

func (c *recordConfig) New() (appliers.Applier, error) { return recordApplier(c.Key), nil }

type recordApplier string

func (a recordApplier) Apply(_ context.Context, c appliers.Change, _ appliers.Env) error {
	if ch, ok := recorded.Load(string(a)); ok {
		ch.(chan []byte) <- c.New
	}
	return nil
}

// TestApplierGetsRenderedContent checks that the applier is given what
// was rendered, not what the stage file's path leads to when it runs:
// whoever can write dest's directory can swap the stage file, after
// check_cmd, for a link to a file only root can read (done here by
// check_cmd itself).
func TestApplierGetsRenderedContent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	secret := e.write("secret", "root-only\n")
	ch := make(chan []byte, 1)
	recorded.Store(t.Name(), ch)
	r := e.resource("r", "rendered\n", "dest = "+q(e.dest("r")),
		"check_cmd = "+q("ln -sf "+secret+" {{.src}}"),
		"[template.apply]", `type = "test-record"`, "key = "+q(t.Name()))
	if _, err := apply(t, r, nil); err != nil {
		t.Fatal(err)
	}
	if got := string(<-ch); got != "rendered\n" {
		t.Fatalf("the applier was given %q, want the rendered content", got)
	}
}
