package resource

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kvconf/kvconf/funcs"
)

// TestHookGrace stops an Apply while its check_cmd runs: the hook gets
// SIGTERM first (a trap records it) and is killed only after the grace
// period when it ignores SIGTERM. Either way dest is untouched and no
// stage file stays.
func TestHookGrace(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		check    string
		wantTerm bool // the hook's TERM trap ran
	}{
		{name: "hook stops on SIGTERM", check: `trap 'echo term > ` + "{{.dest}}" + `.term; exit 1' TERM; touch {{.dest}}.started; sleep 30 & wait`, wantTerm: true},
		{name: "hook ignores SIGTERM", check: `trap '' TERM; touch {{.dest}}.started; sleep 30`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.opts.HookGrace = 300 * time.Millisecond
			dest := e.dest("app.conf")
			writeFile(t, dest, "old\n", 0o644)
			r := e.resource("app", "new\n", "dest = "+q(dest), "check_cmd = "+q(tt.check))

			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() {
				_, err := r.Apply(ctx, funcs.NewStore(nil))
				done <- err
			}()
			deadline := time.Now().Add(20 * time.Second)
			for !exists(t, dest+".started") {
				if time.Now().After(deadline) {
					t.Fatal("check_cmd never started")
				}
				time.Sleep(10 * time.Millisecond)
			}
			cancel()
			var err error
			select {
			case err = <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("Apply did not return after its context was cancelled")
			}
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Apply = %v, want context.Canceled", err)
			}
			if _, serr := os.Stat(dest + ".term"); (serr == nil) != tt.wantTerm {
				t.Errorf("TERM trap ran = %v, want %v", serr == nil, tt.wantTerm)
			}
			if c := readFile(t, dest); c != "old\n" {
				t.Errorf("dest = %q, want it untouched", c)
			}
			noStageFiles(t, filepath.Dir(dest))
		})
	}
}
